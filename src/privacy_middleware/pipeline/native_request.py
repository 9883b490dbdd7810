"""A protected route's request body in one native pass (`_native.request_pass`), sealed in one call.

The Python steps of a protected route read a JSON request body in turn: the strict reader (orjson,
duplicate keys, depth), the lazy reading (msgspec levels), the shape guard and card-code removal
(pipeline/shapes.py), the free-text detectors (pipeline/free_text.py), field protection
(pipeline/protect.py) and the card sentinel (middleware.py), and the body is written back with
msgspec. For a plan made of those steps only, with plain key paths, the C pass reads the raw bytes
once: it checks what the strict reader and the shape guard check, locates the planned values,
deletes card codes in card objects and stripped fields, and looks for card data where the sentinel
would (fields/_native.c says exactly what). Python then validates the few planned values with the
same functions as the field engine, seals them in one call (`FieldEngine._seal`) and splices the
envelopes into the original bytes: no orjson dump of the whole body.

The pass accepts only bodies whose re-encoding by the Python path is the input byte for byte but
for whitespace between tokens (no escape, ASCII, numbers as orjson writes them), so the splice is
the Python path's output; whitespace goes where that path's writing back drops it (the top level
and the members the rules declare; the other members are copied as sent), and only from a changed
body (an unchanged one is forwarded as sent). Anything else, and anything that would refuse or
change the body in another way (a detector hit, a validation error, a duplicate key, a case variant
of a declared key, a card number or card-code key left where the sentinel looks), is a fallback: the
request takes the Python path, which decides it (fail closed; the refusals are the Python path's
own). `COUNTS` counts both, per reason (tests/properties/test_native_request.py compares the two
paths; the checkout bench asserts it measured this one).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import msgspec

from ..asgi.strict_json import MAX_JSON_DEPTH
from ..crypto.cards import CardBrand, card_brand
from ..errors import PrivacyError
from ..fields import native
from ..fields.detectors import detect
from ..fields.engine import ENVELOPE_PREFIXES, FieldEngine, guest_subject
from ..fields.shape_guard import CARD_CODE_NAMES, is_card_code_key
from ..fields.validators import validate_card_number, validate_field
from .free_text import FreeTextGuard
from .plan import Exchange, RoutePlan
from .protect import ProtectRequestFields
from .shapes import GuardRequestShape

_native: Any = getattr(native, "_native", None)
# Entry kinds, as `_native.c` numbers them.
OBJECT, SEAL, KEEP, STRIP, TEXT, WATCH = range(6)
# Fallback reasons, as `_native.c` numbers them, and the ones decided here.
REASONS = {
    2: "shape",
    3: "duplicate_key",
    4: "depth",
    5: "declared",
    6: "value",
    7: "card_code",
    8: "card_hint",
    9: "limit",
    20: "detector",
    21: "refusal",
    22: "missing",
    23: "no_sealer",
}
_SEALED = ("encrypt", "encrypt_deterministic")
# Off: every request takes the Python path (the tests compare the two).
ENABLED = _native is not None
_encode = msgspec.json.Encoder().encode


# A route whose bodies keep falling back pays the C pass and then the Python path on every request:
# after FALLBACKS_BEFORE_REST fallbacks in a row its program rests (the Python path alone) for REST
# requests, then is tried again. Both paths decide every body alike (tests/properties), so resting
# changes only the cost, never the outcome.
FALLBACKS_BEFORE_REST = 8
REST = 64


class Counts:
    """Requests this pass forwarded (`passes`), handed to the Python path (`fallbacks`, by reason) and
    sent there without trying while their program rested (`rested`)."""

    __slots__ = ("fallbacks", "passes", "rested")

    def __init__(self) -> None:
        self.passes = 0
        self.rested = 0
        self.fallbacks: Counter[str] = Counter()

    def reset(self) -> None:
        self.passes = self.rested = 0
        self.fallbacks.clear()


COUNTS = Counts()


@dataclass(frozen=True, slots=True)
class _Field:
    """A located field rule (not a stripped one: those are deleted in C), its look-ups done once."""

    slot: int
    required: bool
    validate_as: str
    select: str
    transform: str  # keep, encrypt or encrypt_deterministic
    category: str
    last4: bytes | None  # b',"<key>_last4":' when the rule adds the last four digits
    brand: bytes | None  # b',"<key>_brand":' when it adds the brand


@dataclass(frozen=True, slots=True)
class Program:
    capsule: Any
    fields: tuple[_Field, ...]
    texts: tuple[tuple[int, tuple[str, ...]], ...]  # (slot, detector kinds) per free-text rule
    protect: ProtectRequestFields
    engine: FieldEngine
    # the fields to seal (transform encrypt or encrypt_deterministic), in the rules' order, and what a
    # request in which all of them are present seals: transforms, categories, (transform, count)
    sealed: tuple[_Field, ...]
    transforms: tuple[str, ...]
    categories: tuple[str, ...]
    tally: tuple[tuple[str, int], ...]
    # [fallbacks in a row, requests left to rest]: the only mutable part, per route
    streak: list[int] = field(default_factory=lambda: [0, 0], compare=False)


def _plain(key: str) -> bool:
    """A key the pass compares byte for byte: printable ASCII, nothing JSON escapes."""
    return key.isascii() and key.isprintable() and '"' not in key and "\\" not in key


class _Unsupported(Exception):
    pass


class _Tree:
    def __init__(self) -> None:
        self.nodes: list[dict[str, list[Any]]] = [{}]

    def node(self, path: tuple[str, ...]) -> int:
        index = 0
        for key in path:
            entry = self.nodes[index].get(key)
            if entry is None:
                self.nodes.append({})
                entry = self.nodes[index][key] = [OBJECT, len(self.nodes) - 1]
            elif entry[0] != OBJECT:
                raise _Unsupported
            index = entry[1]
        return index

    def leaf(self, path: tuple[str, ...], key: str, kind: int, arg: int) -> None:
        node = self.nodes[self.node(path)]
        if key in node:
            raise _Unsupported
        node[key] = [kind, arg]


_STEPS = [GuardRequestShape, ProtectRequestFields]
_STEPS_WITH_TEXT = [GuardRequestShape, FreeTextGuard, ProtectRequestFields]


def build(plan: RoutePlan) -> Program | None:
    """The program of a plan whose request steps this pass does exactly, else None."""
    spec = plan.spec
    body = spec.request
    if _native is None or body is None or plan.lazy_request is None:
        return None
    kinds = [type(step) for step in plan.on_requests]
    if kinds not in (
        [GuardRequestShape, ProtectRequestFields],
        [GuardRequestShape, FreeTextGuard, ProtectRequestFields],
    ):
        return None
    protect = plan.on_requests[-1]
    assert isinstance(protect, ProtectRequestFields)
    texts_step = plan.on_requests[1] if len(kinds) == 3 else None
    if protect.body is not body or (isinstance(texts_step, FreeTextGuard) and texts_step.rules != spec.free_text):
        return None
    if body.rules.graphql or body.records.steps or body.subject is not None:
        return None
    tree = _Tree()
    fields: list[_Field] = []
    slots = 0
    try:
        for selector in body.personal_objects:
            path = selector.plain_path
            if path is None:
                return None
            tree.node((*path[0], path[1]))
        for compiled in body.fields:
            rule = compiled.rule
            path = compiled.selector.plain_path
            if path is None or rule.blind_index or rule.transform not in ("keep", "strip", *_SEALED):
                return None
            parents, last = path
            if not all(_plain(key) for key in (*parents, last)) or any(map(is_card_code_key, parents)):
                return None
            if is_card_code_key(last) and rule.transform != "strip":
                return None
            if rule.transform == "strip":
                tree.leaf(parents, last, STRIP, 0)
                continue
            sealed = rule.transform in _SEALED
            tree.leaf(parents, last, SEAL if sealed else KEEP, slots)
            companions = rule.companions if sealed else []
            if not set(companions) <= {"last4", "brand"}:
                return None
            for companion in companions:
                tree.leaf(parents, f"{last}_{companion}", WATCH, 0)
            fields.append(
                _Field(
                    slots,
                    rule.required,
                    rule.validate_as,
                    rule.select,
                    rule.transform,
                    rule.category,
                    b',"' + last.encode() + b'_last4":' if "last4" in companions else None,
                    b',"' + last.encode() + b'_brand":' if "brand" in companions else None,
                )
            )
            slots += 1
        texts = []
        for free_text in spec.free_text:
            path = free_text.selector.plain_path
            if path is None or not all(_plain(key) for key in (*path[0], path[1])):
                return None
            if any(map(is_card_code_key, (*path[0], path[1]))):
                return None
            tree.leaf(path[0], path[1], TEXT, slots)
            texts.append((slots, tuple(free_text.rule.detect)))
            slots += 1
    except _Unsupported:
        return None
    if slots > 64 or len(tree.nodes) > 4096:
        return None
    table = tuple(tuple((key.encode(), kind, arg) for key, (kind, arg) in node.items()) for node in tree.nodes)
    # Whitespace between tokens is read where the Python path's writing back is known: the top level
    # decoded by msgspec (written without whitespace), each member the rules declare read whole (written
    # without whitespace) and every other member copied as sent (fields/lazy.py).
    top = plan.lazy_request
    declared = {key for key, (kind, _) in tree.nodes[0].items() if kind != WATCH}
    spaces = (
        not top.whole
        and top.each is None
        and set(top.keys) == declared
        and all(child.whole for child in top.keys.values())
    )
    codes = tuple(sorted(name.encode() for name in CARD_CODE_NAMES))
    if not all(b"c" in code for code in codes):  # the C pass looks at keys that hold a c (or 13 digits)
        return None
    capsule = _native.request_compile((table, slots, codes, MAX_JSON_DEPTH, spaces))
    to_seal = tuple(planned for planned in fields if planned.transform in _SEALED)
    transforms = tuple(planned.transform for planned in to_seal)
    categories = tuple(planned.category for planned in to_seal)
    tally = _tally(transforms)
    return Program(
        capsule, tuple(fields), tuple(texts), protect, protect.engine, to_seal, transforms, categories, tally
    )


def _tally(transforms: tuple[str, ...]) -> tuple[tuple[str, int], ...]:
    """How many fields each sealing transform sealed (the fields metric), those that sealed any."""
    return tuple((transform, transforms.count(transform)) for transform in _SEALED if transform in transforms)


_PROGRAMS: dict[int, tuple[RoutePlan, Program | None]] = {}


def program_for(plan: RoutePlan) -> Program | None:
    """`build(plan)`, once per plan (the plans are built at start-up: a bounded set is kept)."""
    kept = _PROGRAMS.get(id(plan))
    if kept is not None and kept[0] is plan:
        return kept[1]
    program = build(plan)
    if len(_PROGRAMS) < 1024:
        _PROGRAMS[id(plan)] = (plan, program)
    return program


def _fallback(program: Program, reason: int) -> None:
    COUNTS.fallbacks[REASONS.get(reason, str(reason))] += 1
    streak = program.streak
    streak[0] += 1
    if streak[0] >= FALLBACKS_BEFORE_REST:
        streak[0], streak[1] = 0, REST


def wake() -> None:
    """Every program tried again on its next request (tests compare both paths body by body)."""
    for _, program in _PROGRAMS.values():
        if program is not None:
            program.streak[:] = [0, 0]


async def forward(program: Program, ex: Exchange, body: bytes) -> bytes | None:
    """The body to forward (the input itself when nothing changes), with the exchange updated as the
    Python steps update it; None when the Python path must decide (nothing was changed then)."""
    streak = program.streak
    if streak[1]:  # resting: this route's bodies kept falling back
        streak[1] -= 1
        COUNTS.rested += 1
        return None
    found = _native.request_pass(program.capsule, body)
    if type(found) is int:
        _fallback(program, found)
        return None
    slots, removals, strips, spaces = found
    for slot, detectors in program.texts:
        located = slots[slot]
        if located is not None and detect(located[0], detectors):
            _fallback(program, 20)  # the free-text guard refuses or redacts it, and records why
            return None
    engine = program.engine
    principal = ex.ctx.principal
    subject = (principal.subject if principal else None) or guest_subject(principal)
    cipher = engine.cipher
    sealing = bool(subject) and cipher is not None and getattr(cipher, "subject_sealer", None) is not None
    edits: list[tuple[int, int, bytes]] = [(start, end, b"") for start, end in removals]
    sealed: list[_Field] = []  # the fields to seal, in the rules' order, with their clear texts and spans
    texts: list[str] = []
    places: list[tuple[int, int]] = []
    companions: dict[int, bytes] = {}  # per closing brace, in the rules' order
    try:
        for planned in program.fields:
            located = slots[planned.slot]
            if located is None:
                if planned.required:
                    _fallback(program, 22)
                    return None
                continue
            value, start, end, close = located
            kind = planned.validate_as
            brand: CardBrand | None = None
            if not kind:
                pan = None
            elif kind == "card_number":  # its digits and their brand, decided once
                pan, brand = validate_card_number(value, planned.select)
            else:
                pan = validate_field(kind, value, planned.select)
            if planned.transform == "keep":
                continue
            if type(value) is str and value.startswith(ENVELOPE_PREFIXES):
                _fallback(program, 21)  # already_protected
                return None
            if not sealing:
                _fallback(program, 23)
                return None
            text = pan if pan is not None else str(value)
            if planned.last4 is not None:
                companions[close] = companions.get(close, b"") + planned.last4 + _encode(text[-4:])
            if planned.brand is not None:
                if pan is None:  # not a validated card number: its brand from the text
                    brand = card_brand(text)
                companions[close] = companions.get(close, b"") + planned.brand + _encode(str(brand) if brand else None)
            sealed.append(planned)
            texts.append(text)
            places.append((start, end))
    except PrivacyError:
        _fallback(program, 21)  # the field engine refuses it: the Python path does, in its own order
        return None
    count = len(sealed)
    tally: tuple[tuple[str, int], ...] = ()
    if count:
        assert subject  # refused above without one
        if count == len(program.sealed):  # every sealed field present: the route's own lists
            transforms, categories, tally = program.transforms, program.categories, program.tally
        else:
            transforms = tuple([planned.transform for planned in sealed])
            categories = tuple([planned.category for planned in sealed])
            tally = _tally(transforms)
        envelopes = await engine.seal_texts(subject, texts, transforms, categories)
        # as JSON strings: one encoding of the list, split at its commas (an envelope holds none; when
        # a value does, the parts do not match and each is encoded alone)
        quoted = _encode(envelopes)[1:-1].split(b",")
        if len(quoted) != count:
            quoted = [_encode(envelope) for envelope in envelopes]
        edits += [(start, end, quote) for (start, end), quote in zip(places, quoted, strict=True)]
        ex.ctx.facts.sealed_for = frozenset((subject,))
        if companions:
            edits += [(close, close, added) for close, added in companions.items()]
    COUNTS.passes += 1
    streak[0] = 0
    ex.request_has_json = True
    if not edits:
        return body
    ex.request_changed = True
    if spaces:  # the Python path writes a changed body back without them
        edits += [(start, end, b"") for start, end in spaces]
    counters = program.protect.counters
    if strips:
        counters["strip"](strips)
    for transform, done in tally:
        counters[transform](done)
    edits.sort()  # no two edits start at one place (a brace's companions are one edit), none overlap
    out = []
    at = 0
    for start, end, replacement in edits:
        out.append(body[at:start])
        out.append(replacement)
        at = end
    out.append(body[at:])
    return b"".join(out)
