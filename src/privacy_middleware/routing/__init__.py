"""Route identity: which planned route a request really reaches (app router or one canonicaliser)."""
