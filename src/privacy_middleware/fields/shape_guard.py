"""Request shapes the policy can interpret exactly, or a refusal (DESIGN.md §9).

A route's field selectors describe where protected values live. A body that differs from that
picture only in spelling or shape would slip past the field engine while the shop (Go, Jackson,
System.Text.Json match keys case-insensitively) still reads it. So, along every declared path:

- a key equal to a declared key after Unicode NFKC and casefolding, but spelled differently, is
  refused (`ambiguous_key`);
- a container of the wrong type (an array or scalar where an object is declared, an object or
  scalar where an array is, a container where a value is) is refused (`wrong_container_type`).

Card security codes are removed from any object that holds a card, wherever it sits
(`remove_card_codes`): PCI DSS forbids storing them even when encrypted.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from ..crypto.cards import card_brand, length_valid, luhn_valid
from ..errors import PrivacyError
from ..policy.compile import CompiledBody
from ..policy.selectors import Selector

CARD_CODE_NAMES = frozenset(
    {
        "cvv",
        "cvv2",
        "cvc",
        "cvc2",
        "csc",
        "cid",
        "cav2",
        "cvn",
        "securitycode",
        "cardsecuritycode",
        "cardverificationcode",
        "cardverificationvalue",
        "verificationcode",
        "cardcvv",
        "cardcvc",
    }
)
_NOT_ALNUM = re.compile(r"[^0-9a-z]")
_CONTAINERS = (dict, list)  # a tuple: `isinstance` takes it faster than `dict | list`
_PAN_TEXT = re.compile(r"[0-9][0-9 \-]{11,30}[0-9]")


def fold(key: str) -> str:
    """The spelling-blind form of a key: NFKC, then casefold."""
    if key.isascii():
        return key.lower()
    return unicodedata.normalize("NFKC", key).casefold()


def is_card_code_key(key: str) -> bool:
    """`cvv`, `CVC2`, `security_code`, `Card-Security-Code`, full-width forms..."""
    return _NOT_ALNUM.sub("", fold(key)) in CARD_CODE_NAMES


def looks_like_pan(value: Any) -> bool:
    """13-19 digits (spaces or dashes allowed), a known scheme's range and length, Luhn-valid."""
    if isinstance(value, int) and not isinstance(value, bool):
        text = str(value)
    elif isinstance(value, str) and _PAN_TEXT.fullmatch(value.strip()):
        text = value.strip().replace(" ", "").replace("-", "")
    else:
        return False
    if not 13 <= len(text) <= 19 or not text.isdigit():
        return False
    brand = card_brand(text)
    return brand is not None and length_valid(text, brand) and luhn_valid(text)


# Keys repeat across bodies: the spelling-blind check (NFKC, casefold, a regex) is asked once per
# distinct key; the bound keeps odd bodies from growing it.
_code_key = lru_cache(maxsize=4096)(is_card_code_key)


def holds_card(obj: dict[str, Any], name: str | int | None) -> bool:
    """An object holds a card when it is named like one or carries a card number."""
    if isinstance(name, str) and "card" in fold(name):
        return True
    return any(looks_like_pan(value) for value in obj.values())


def remove_card_codes(document: Any, name: str | int | None = None) -> int:
    """Delete CVV-like keys from every object that holds a card; returns how many were removed."""
    removed = 0
    if isinstance(document, dict):
        # the card-code keys first (cached per key): only an object that has one is asked whether it
        # holds a card (its values' card-number check)
        if any(map(_code_key, document)) and holds_card(document, name):
            for key in [k for k in document if _code_key(k)]:
                del document[key]
                removed += 1
        for key, value in document.items():
            if isinstance(value, _CONTAINERS):
                removed += remove_card_codes(value, key)
    elif isinstance(document, list):
        for value in document:
            if isinstance(value, _CONTAINERS):
                removed += remove_card_codes(value, name)
    return removed


@dataclass(slots=True)
class _Node:
    keys: dict[str, _Node] = field(default_factory=dict)
    folded: dict[str, str] = field(default_factory=dict)
    items: _Node | None = None
    values: _Node | None = None
    # A declared field ends here: its value must not be a container (unless the rule strips it).
    leaf: bool = False
    leaf_may_be_container: bool = True
    # Prepared by `_index`, in the order of `keys`: (key, child, how), `how` being _WALK (the child has
    # keys, items or values of its own), _SINGLE (a declared value that must not be a container) or
    # _ANY (nothing to check below).
    children: tuple[tuple[str, _Node, int], ...] = ()
    # Undeclared keys already seen here that fold to no declared key (bounded).
    benign: set[str] = field(default_factory=set)


_WALK, _SINGLE, _ANY = 0, 1, 2
_BENIGN_KEYS = 256


def _add(root: _Node, selector: Selector, *, leaf: bool, container_ok: bool) -> None:
    node = root
    for step in selector.steps:
        if step.kind == "key":
            key = str(step.value)
            node = node.keys.setdefault(key, _Node())
        elif step.kind in ("items", "index"):
            node.items = node.items or _Node()
            node = node.items
        else:
            node.values = node.values or _Node()
            node = node.values
    if leaf:
        node.leaf = True
        node.leaf_may_be_container = node.leaf_may_be_container and container_ok


def _index(node: _Node) -> None:
    node.folded = {fold(key): key for key in node.keys}
    node.children = tuple((key, child, _how(child)) for key, child in node.keys.items())
    for child in node.keys.values():
        _index(child)
    for optional in (node.items, node.values):
        if optional is not None:
            _index(optional)


def _how(node: _Node) -> int:
    if node.keys or node.items is not None or node.values is not None:
        return _WALK
    return _SINGLE if node.leaf and not node.leaf_may_be_container else _ANY


class ShapeGuard:
    """The declared skeleton of a request body, checked before any field rule runs."""

    def __init__(self, body: CompiledBody) -> None:
        self.root = _Node()
        records_root = _Node()
        for rule in body.fields:
            _add(records_root, rule.selector, leaf=True, container_ok=rule.rule.transform == "strip")
        if body.subject is not None:
            _add(records_root, body.subject, leaf=True, container_ok=False)
        for selector in body.personal_objects:
            _add(records_root, selector, leaf=False, container_ok=True)
        # Records: the record skeleton hangs under the records selector.
        node = self.root
        for step in body.records.steps:
            if step.kind == "key":
                node = node.keys.setdefault(str(step.value), _Node())
            elif step.kind in ("items", "index"):
                node.items = node.items or _Node()
                node = node.items
            else:
                node.values = node.values or _Node()
                node = node.values
        assert node is not None
        node.keys.update(records_root.keys)
        node.items = node.items or records_root.items
        node.values = node.values or records_root.values
        _index(self.root)

    def check(self, document: Any) -> None:
        """Raise 422 `ambiguous_key` or `wrong_container_type`, naming the path, never the value."""
        self._check(self.root, document, [])

    def _check(self, node: _Node, value: Any, path: list[str | int]) -> None:
        if value is None:
            return
        wants_object = bool(node.keys)
        wants_array = node.items is not None
        wants_values = node.values is not None
        if wants_object or wants_array or wants_values:
            ok = (
                (wants_object and isinstance(value, dict))
                or (wants_array and isinstance(value, list))
                or (wants_values and isinstance(value, _CONTAINERS))
            )
            if not ok and not (node.leaf and node.leaf_may_be_container):
                raise _wrong_type(path, "an object" if wants_object else "an array")
        elif node.leaf and not node.leaf_may_be_container and isinstance(value, _CONTAINERS):
            raise _wrong_type(path, "a single value")
        if isinstance(value, dict):
            if node.keys:
                extra = value.keys() - node.keys
                if extra and not extra <= node.benign:
                    for key in value:
                        if key not in node.keys:
                            declared = node.folded.get(fold(key))
                            if declared is not None:
                                raise PrivacyError(
                                    "ambiguous_key",
                                    f"The key at {_path([*path, key])} differs from the declared "
                                    f"{_path([*path, declared])} only in case or Unicode form.",
                                    422,
                                    extra={"field": _path([*path, key])},
                                )
                    if len(node.benign) + len(extra) <= _BENIGN_KEYS:  # bounded: a body's keys never grow it past
                        node.benign |= extra
                # A declared value is checked here (no call); a declared container is walked.
                for key, child, how in node.children:
                    if key in value:
                        if how == _WALK:
                            self._check(child, value[key], [*path, key])
                        elif how == _SINGLE and isinstance(value[key], _CONTAINERS):
                            raise _wrong_type([*path, key], "a single value")
            if node.values is not None:
                for key, item in value.items():
                    self._check(node.values, item, [*path, key])
        elif isinstance(value, list):
            child_node = node.items or node.values
            if child_node is not None:
                for index, item in enumerate(value):
                    self._check(child_node, item, [*path, index])


def field_path(parts: list[str | int]) -> str:
    """`$.a.b[3]`, with `['...']` for keys that are not plain names (never a value)."""
    out = "$"
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.isidentifier() and part.isascii():
            out += f".{part}"
        else:
            out += "['" + part.replace("\\", "\\\\").replace("'", "\\'") + "']"
    return out


_path = field_path


def _wrong_type(path: list[str | int], expected: str) -> PrivacyError:
    where = _path(path)
    return PrivacyError(
        "wrong_container_type",
        f"The value at {where} must be {expected}, as the policy declares.",
        422,
        extra={"field": where},
    )
