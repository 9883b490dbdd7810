"""Declarative shop adapters: the policy names the shop's tables or models, no code is written."""
