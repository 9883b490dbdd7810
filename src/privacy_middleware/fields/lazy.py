"""Lazy projection: decode a JSON body only where the policy looks, copy the rest as raw bytes.

Pure-Python dict walking is what a filtered or protected body costs. A route's selectors name the
few paths the field engine reads (records, fields, the subject, personal objects, free text); msgspec
decodes the body level by level along those paths only (`dict[str, msgspec.Raw]`), and every value
off them stays a `msgspec.Raw` slice of the input that is never turned into Python objects and is
written back byte for byte. The field engine runs unchanged on such a partly decoded document:
along its paths it holds the same dicts, lists and values as a full parse.

A value the policy addresses is decoded with orjson, as the full parse would. What differs from a
full parse is confined to the raw subtrees: they are copied as sent (whitespace, escapes, number
spelling), where a full parse re-serialises them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec
import orjson

from ..policy.compile import CompiledBody, RouteSpec
from ..policy.selectors import Selector
from .card_sentinel import may_hold_card_data

Raw = msgspec.Raw
_LEVEL = msgspec.json.Decoder(dict[str, msgspec.Raw] | list[msgspec.Raw] | str | int | float | bool | None)
_encode = msgspec.json.Encoder().encode


@dataclass(slots=True)
class Skeleton:
    """The paths of a body the policy reads: keys to descend, a wildcard child, or a whole value."""

    keys: dict[str, Skeleton] = field(default_factory=dict)
    each: Skeleton | None = None
    whole: bool = False

    def add(self, selector: Selector, *, whole: bool) -> None:
        node = self
        for step in selector.steps:
            if step.kind == "key":
                node = node.keys.setdefault(str(step.value), Skeleton())
            else:  # items, index, values: every child (an index is rare; decoding all is still exact)
                node.each = node.each or Skeleton()
                node = node.each
        node.whole = node.whole or whole

    def under(self, selector: Selector) -> Skeleton:
        """The node a selector leads to (created), to hang a record's skeleton below it."""
        node = self
        for step in selector.steps:
            if step.kind == "key":
                node = node.keys.setdefault(str(step.value), Skeleton())
            else:
                node.each = node.each or Skeleton()
                node = node.each
        return node


def _add_body(top: Skeleton, body: CompiledBody) -> None:
    base = top.keys.setdefault("data", Skeleton()) if body.rules.graphql else top
    node = base.under(body.records)
    paths = [(rule.selector, True) for rule in body.fields]
    if body.subject is not None:
        paths.append((body.subject, True))
    paths += [(selector, False) for selector in body.personal_objects]
    for selector, whole in paths:
        node.add(selector, whole=whole)


def _collapse(node: Skeleton) -> bool:
    """Mark whole every node whose children are all whole: one orjson call decodes a small object
    faster than a level of msgspec and a call per key. True when the node is whole."""
    children = [*node.keys.values(), *([node.each] if node.each is not None else [])]
    if node.whole:
        return True
    collapsible = [_collapse(child) for child in children]
    if children and all(collapsible):
        node.whole = True
    return node.whole


def response_skeleton(body: CompiledBody) -> Skeleton:
    """What disclosure reads of a response: records, their fields and subject, personal objects' keys."""
    top = Skeleton()
    _add_body(top, body)
    record = (top.keys.get("data", top) if body.rules.graphql else top).under(body.records)
    for child in [*record.keys.values(), *([record.each] if record.each is not None else [])]:
        _collapse(child)  # below a record only: the record level itself stays lazy
    return top


def request_skeleton(spec: RouteSpec) -> Skeleton:
    """What the request steps of a protected route read: its body rules, free text, the birth date.

    Below the records, an object whose every declared child is read whole is read whole itself (its
    other keys decoded too, as a full parse would): the parsed body hands it over without a level of
    msgspec and a call per key (`decode_request`). The records' own level stays lazy."""
    top = Skeleton()
    if spec.request is not None:
        _add_body(top, spec.request)
        for rule in spec.request.fields:  # the forbidden-category guard reads them from the root
            top.add(rule.selector, whole=True)
    for free_text in spec.free_text:
        top.add(free_text.selector, whole=True)
    if spec.minors_birth_date is not None:
        top.add(spec.minors_birth_date, whole=True)
    if spec.request is not None:
        base = top.keys.get("data", top) if spec.request.rules.graphql else top
        record = base.under(spec.request.records)
        for child in [*record.keys.values(), *([record.each] if record.each is not None else [])]:
            _collapse(child)
    return top


def decode(body: bytes | Raw, skeleton: Skeleton, raws: list[tuple[Any, Any]] | None = None) -> Any:
    """The body decoded along the skeleton; raises msgspec.DecodeError for malformed JSON.

    `raws`, when given, receives (container, key) of every value left raw, so a caller can look at
    those bytes (the card-data checks do) and decode the ones it must.
    """
    if skeleton.whole:
        return orjson.loads(body if type(body) is bytes else memoryview(body))
    value = _LEVEL.decode(body)
    if type(value) is dict:
        keys = skeleton.keys
        each = skeleton.each
        for key, item in value.items():
            child = keys.get(key, each)
            if child is not None:
                value[key] = decode(item, child, raws)
            elif raws is not None:
                raws.append((value, key))
    elif type(value) is list:
        each = skeleton.each
        if each is not None:
            for index, item in enumerate(value):
                value[index] = decode(item, each, raws)
        elif raws is not None:
            raws.extend((value, index) for index in range(len(value)))
    return value


def encode(document: Any) -> bytes:
    """The document as JSON; raw subtrees are copied as they came."""
    return _encode(document)


def decode_request(body: bytes, skeleton: Skeleton, parsed: Any) -> Any:
    """A request body decoded along the skeleton, with every raw value that may hold card data
    (a run of 13 digits, a card-code word, non-ASCII or `\\u` escapes that could spell either)
    decoded too, so the card checks that walk the whole body see it.

    `parsed` is the strict reader's full parse of the same bytes (duplicates and depth are checked
    over the whole body there): the values the skeleton reads whole, and the suspect raw ones, are
    taken from it, so no part of the body is parsed twice by orjson. msgspec only splits the levels
    that keep raw values."""
    places: list[tuple[Any, Any, Any]] = []
    document = _along(body, skeleton, parsed, places)
    if not places:
        return document
    if len(places) == 1:
        suspect = _suspect(bytes(places[0][0][places[0][1]]))
    else:
        # One prefilter over all of them (a NUL between two breaks any digit run or word), then each.
        suspect = _suspect(b"\0".join([bytes(parent[key]) for parent, key, _ in places]))
    if suspect:
        for parent, key, value in places:
            if len(places) == 1 or _suspect(bytes(parent[key])):
                parent[key] = value
    return document


def _along(body: bytes | Raw, skeleton: Skeleton, parsed: Any, places: list[tuple[Any, Any, Any]]) -> Any:
    """`decode` of the same bytes as `parsed`, whose values stand in for the ones read whole; each
    raw value's (container, key, parsed value) goes to `places`."""
    if skeleton.whole:
        return parsed
    value = _LEVEL.decode(body)
    if type(value) is dict:
        keys = skeleton.keys
        each = skeleton.each
        for key, item in value.items():
            child = keys.get(key, each)
            if child is not None:
                value[key] = _along(item, child, parsed[key], places)
            else:
                places.append((value, key, parsed[key]))
    elif type(value) is list:
        each = skeleton.each
        if each is not None:
            for index, item in enumerate(value):
                value[index] = _along(item, each, parsed[index], places)
        else:
            places.extend((value, index, parsed[index]) for index in range(len(value)))
    return value


def _suspect(raw: bytes) -> bool:
    return not raw.isascii() or (b"\\" in raw and b"\\u" in raw) or may_hold_card_data(raw)


def materialise(document: Any) -> Any:
    """A fully decoded copy (raw subtrees parsed), for code that must see every value."""
    if isinstance(document, Raw):
        return orjson.loads(bytes(document))
    if isinstance(document, dict):
        return {key: materialise(value) for key, value in document.items()}
    if isinstance(document, list):
        return [materialise(value) for value in document]
    return document
