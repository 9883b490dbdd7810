"""Moved to `policy/selectors.py` (the policy model addresses fields; the engine walks them).

Kept as a re-export for code written against the old place; import from `policy.selectors`.
"""

from ..policy.selectors import ANY, Location, Selector, SelectorError, Step, compile_selector

__all__ = ["ANY", "Location", "Selector", "SelectorError", "Step", "compile_selector"]
