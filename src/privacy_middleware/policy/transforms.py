"""Output transforms by name: the one table a recipient's grants (`sees`) are checked against.

Read by the policy loader (which names are valid), the renderer (what each means in plain words),
the field engine (what to run) and `policy explain`. A key-free transform names its function as
`"module:function"` (value in, value out, imported once by the engine); the four without one need
what only the engine holds (keys, the recipient's pseudonym scope) and are built into it.

Adding a transform: one function in a module of your own (or `fields/masks.py`) and one line here.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class OutputTransform:
    says: str  # what the recipient gets, in the words of the rendered privacy notice
    function: str | None = None  # "module:function" for key-free transforms; None: built into the engine


MASKS = "privacy_middleware.fields.masks"

OUTPUT_TRANSFORMS: dict[str, OutputTransform] = {
    "keep": OutputTransform("in full"),
    "drop": OutputTransform("nothing"),
    "ciphertext": OutputTransform("encrypted data only, without the key"),
    "pseudonymise": OutputTransform("a pseudonym, not the value"),
    "mask:last4": OutputTransform("last four characters only", f"{MASKS}:last4"),
    "mask:card": OutputTransform("a card number's last four digits only", f"{MASKS}:card"),
    "mask:email": OutputTransform("masked e-mail address", f"{MASKS}:email"),
    "mask:phone": OutputTransform("masked phone number", f"{MASKS}:phone"),
    "mask:full": OutputTransform("fully masked", f"{MASKS}:full"),
    "generalise:postal_prefix": OutputTransform("the postal area only", f"{MASKS}:postal_area"),
    "generalise:birth_year": OutputTransform("the year of birth only", f"{MASKS}:year_of_birth"),
    "generalise:country": OutputTransform("the country only", f"{MASKS}:country_only"),
}


def key_free_functions() -> dict[str, Callable[[Any], Any]]:
    """Every transform with a function, imported (the engine calls this once)."""
    functions: dict[str, Callable[[Any], Any]] = {}
    for name, transform in OUTPUT_TRANSFORMS.items():
        if transform.function is not None:
            module, _, attribute = transform.function.partition(":")
            functions[name] = getattr(importlib.import_module(module), attribute)
    return functions
