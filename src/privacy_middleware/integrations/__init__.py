"""Shop-platform integrations: adapters (the subject-rights seam), webhook receivers, policy presets.

One package per platform; `common` holds what they share. Nothing here is imported by the
middleware itself: an operator picks the platform and wires its pieces in.
"""
