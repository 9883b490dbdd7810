"""The one field engine: classify fields with compiled selectors, then transform them.

It serves request protection (validate, strip, encrypt, tokenise), response disclosure (what a
recipient may see, default deny), and any other place that touches personal fields (outbound
sharing, export), so the rules are enforced the same way everywhere.
"""

from __future__ import annotations

import hashlib
import hmac
import operator
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import compress
from typing import Any, Protocol

from cachetools import LRUCache

from ..crypto.cards import card_brand, normalise_pan
from ..crypto.shaped import TokenShape
from ..errors import PrivacyError
from ..policy.access import card_categories, grant_for, owner_transform
from ..policy.compile import CompiledBody, CompiledField, compile_shapes, plain_paths
from ..policy.schema import FieldRule, Policy
from ..policy.selectors import Location, Selector
from ..policy.transforms import key_free_functions
from ..principal import Principal
from . import native
from .validators import validate_field


class FieldCipher(Protocol):
    """What the engine needs from the key service (crypto/)."""

    async def encrypt(self, value: str, *, category: str, subject: str) -> str: ...
    async def encrypt_deterministic(self, value: str, *, category: str, subject: str) -> str: ...
    async def decrypt(self, token: str, *, category: str, subject: str) -> str: ...
    async def tokenise(self, value: str, *, category: str, subject: str) -> str: ...
    async def detokenise(self, token: str, *, category: str, subject: str) -> str: ...
    async def blind_index(self, value: str, *, category: str) -> str: ...
    async def tokenise_shaped(
        self, value: str, *, category: str, subject: str, shape: TokenShape, deterministic: bool = False
    ) -> str: ...
    async def detokenise_shaped(self, token: str, *, category: str, subject: str) -> str | None: ...


ENVELOPE_PREFIXES = ("pe1.", "pd1.", "tok_")


def is_protected(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(ENVELOPE_PREFIXES)


@dataclass(slots=True)
class FieldReport:
    """What a pass over a body did, for metrics and the audit (categories only, never values)."""

    transformed: dict[str, int] = field(default_factory=dict)
    categories: set[str] = field(default_factory=set)
    subjects: set[str] = field(default_factory=set)
    unknown_dropped: int = 0
    unknown_kept: int = 0
    legacy_plaintext: int = 0
    reveal_failures: int = 0
    blocked_subjects: int = 0

    def count(self, transform: str) -> None:
        self.transformed[transform] = self.transformed.get(transform, 0) + 1


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who will receive a response: decides the output transform per category."""

    principal: Principal | None
    recipient: str
    grants: dict[str, str]
    purpose: str | None = None
    # Whether the subject reading their own records sees their full card number (`[cards].reveal`).
    reveal_cards: bool = False

    def is_subject(self, subject: str | None) -> bool:
        return bool(subject) and self.principal is not None and self.principal.subject == subject

    def grant_for(self, category: str) -> tuple[str, str | None]:
        """(transform, the granted category that decided it): `policy.access.grant_for`."""
        return grant_for(self.grants, category)

    def transform_for(self, category: str) -> str:
        return self.grant_for(category)[0]


class Pseudonymiser:
    """Keyed HMAC per recipient scope, so two partners' pseudonyms cannot be joined."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret
        # One per recipient scope (a handful per policy): its HMAC-SHA256 key as the two SHA-256 states
        # after the padded key blocks (RFC 2104), so a pseudonym costs two state copies, not a key setup.
        self._keys: dict[str, tuple[Any, Any]] = {}

    def pseudonym(self, value: Any, scope: str) -> str:
        states = self._keys.get(scope)
        if states is None:
            states = _hmac_states(hmac.new(self._secret, b"pseudonym:" + scope.encode(), hashlib.sha256).digest())
            if len(self._keys) < 1024:
                self._keys[scope] = states
        inner = states[0].copy()
        inner.update(str(value).encode())
        outer = states[1].copy()
        outer.update(inner.digest())
        return f"ps_{outer.hexdigest()[:32]}"


def _hmac_states(key: bytes) -> tuple[Any, Any]:
    """HMAC-SHA256 of `key` as its inner and outer hash states (what hmac.digest computes per call)."""
    block = key.ljust(64, b"\0")  # the scope keys are 32-byte digests: never longer than a block
    return (
        hashlib.sha256(bytes(b ^ 0x36 for b in block)),
        hashlib.sha256(bytes(b ^ 0x5C for b in block)),
    )


def records_of(body: CompiledBody, document: Any) -> Iterator[Any]:
    yield from body.records.values(document)


def guest_subject(principal: Principal | None) -> str | None:
    """A guest (from their checkout or an order capability) owns the records that name no subject:
    the shop keeps guest orders without an account id (docs/guests.md)."""
    if principal is not None and principal.claims.get("guest") is True:
        return principal.subject
    return None


def record_subject(body: CompiledBody, record: Any, fallback: str | None) -> str | None:
    if body.subject is None:
        return fallback
    for value in body.subject.values(record):
        if value is not None and not isinstance(value, dict | list):
            return str(value)
    return None


def record_key_of(body: CompiledBody, record: Any) -> str | None:
    """The shop's own id of a record (the shape's `record_key`), as text."""
    if body.record_key is None:
        return None
    for value in body.record_key.values(record):
        if value is not None and not isinstance(value, dict | list | bool):
            return str(value)
    return None


PLAN_CACHE_SIZE = 1024
_SEALED = frozenset({"encrypt", "encrypt_deterministic"})
# A field waiting for its subject's key: (container, key, clear text, transform, category, subject).
_Sealing = tuple[Any, str | int, str, str, str, str]


class FieldEngine:
    def __init__(self, policy: Policy, pseudonymiser: Pseudonymiser, cipher: FieldCipher | None = None) -> None:
        self.policy = policy
        # What marks a kept value that may need the slow path (an envelope or token prefix, an address at
        # our token domain), searched for in a group's values joined between NULs: it never misses one
        # (each value follows a NUL and precedes one); a NUL inside a value at worst sends the group to
        # the exact loop.
        self._suspect = (*("\x00" + prefix for prefix in ENVELOPE_PREFIXES), f"@{policy.tokens.email_domain}\x00")
        # The same marks for the native pass: kept strings starting or ending with them take the Python path.
        self._needles = (ENVELOPE_PREFIXES, (f"@{policy.tokens.email_domain}",))
        # Whether `disclose_bytes` may use the native pass (fields/native.py); off: always None.
        self.native = native.AVAILABLE
        self.pseudonymiser = pseudonymiser
        self.cipher = cipher
        # Plans for the bodies compiled at start-up (routes, outbound endpoints, shapes): a fixed set,
        # so the cache is bounded; an LRU bound keeps a caller compiling bodies on the fly from growing it.
        self._plans: LRUCache[int, DisclosurePlan] = LRUCache(maxsize=PLAN_CACHE_SIZE)
        # The same plans by body id, never evicted once in, and no more of them than the LRU holds.
        self._hot_plans: dict[int, DisclosurePlan] = {}
        self.shapes: dict[str, CompiledBody] = compile_shapes(policy)
        self.masks = key_free_functions()
        self.card_categories = card_categories(policy)

    # --- the way in --------------------------------------------------------------------------

    async def protect_request(self, body: CompiledBody, document: Any, principal: Principal | None) -> FieldReport:
        """Validate and transform classified request fields in place; raises PrivacyError to refuse.

        Checks, strips and companions run without an await; encryptions wait until every field is
        checked and then take one key look-up per subject (none when the key is cached), so a body of
        plain encrypted fields costs one await. Blind indexes and tokens still await the key service
        field by field, in order.
        """
        report = FieldReport()
        transformed = report.transformed
        categories = report.categories
        fallback = principal.subject if principal else None
        guest = guest_subject(principal)
        # a cipher that hands out a subject's key seals a request's fields without an await each
        sealing = getattr(self.cipher, "subject_sealer", None) is not None
        batch: list[_Sealing] | None = [] if sealing else None
        paths = plain_paths(body)
        for record in records_of(body, document):
            subject = record_subject(body, record, fallback) or guest
            for index, rule in enumerate(body.fields):
                spec = rule.rule
                places: Any
                if paths is None:
                    places = [(location.parent, location.key) for location in rule.selector.find(record)]
                else:  # Selector.find of a plain key path, inline (no Location made)
                    parents, last = paths[index]
                    node = record
                    for key in parents:
                        node = node.get(key) if isinstance(node, dict) else None
                    places = ((node, last),) if isinstance(node, dict) and last in node else ()
                if not places and spec.required:
                    raise PrivacyError(
                        "missing_field",
                        f"The field {spec.select!r} is required on this route.",
                        422,
                        extra={"field": spec.select},
                    )
                for parent, key in places:
                    value = parent[key]
                    if value is None:
                        continue
                    categories.add(spec.category)
                    text = self._check_value(spec, parent, key, value, subject, report)
                    if text is None:
                        continue
                    assert subject is not None  # _check_value refuses a field to transform without one
                    if batch is not None and not spec.blind_index and spec.transform in _SEALED:
                        batch.append((parent, key, text, spec.transform, spec.category, subject))
                        transformed[spec.transform] = transformed.get(spec.transform, 0) + 1
                        report.subjects.add(subject)
                    else:
                        await self._transform_one(rule, Location(parent, key), text, subject, report, batch)
        if batch:
            await self._seal(batch)
        return report

    async def _sealer(self, subject: str) -> Any:
        """The subject's sealer: the cipher's cached one (nothing awaited that waits), else looked up."""
        cipher: Any = self.cipher
        cached = getattr(cipher, "cached_sealer", None)
        sealer = cached(subject) if cached is not None else None
        return sealer if sealer is not None else await cipher.subject_sealer(subject)

    @staticmethod
    def _in_one_call(
        sealer: Any, texts: Sequence[str], transforms: Sequence[str], categories: Sequence[str]
    ) -> list[str] | None:
        """One subject's randomised envelopes, more than one, in one `encrypt_values` call (values in,
        envelopes out, the categories' contexts kept); None where that does not apply."""
        count = len(texts)
        values = getattr(sealer, "encrypt_values", None)
        if values is None or count < 2 or transforms.count("encrypt") != count:
            return None
        sealed: list[str] = values(texts, categories)
        return sealed

    async def _seal(self, batch: list[_Sealing]) -> None:
        """Seal the batched fields with each subject's key, looked up once per subject."""
        if not batch:
            return
        sealers: dict[str, Any] = {}
        # the batch by column, in C: containers, keys, clear texts, transforms, categories, subjects
        parents, keys, texts, transforms, categories, subjects = zip(*batch, strict=True)
        subject = subjects[0]
        if subjects.count(subject) == len(batch):  # one subject (a checkout): perhaps sealed in one call
            sealer = sealers[subject] = await self._sealer(subject)
            sealed = self._in_one_call(sealer, texts, transforms, categories)
            if sealed is not None:
                for parent, key, value in zip(parents, keys, sealed, strict=True):
                    parent[key] = value
                return
        for parent, key, text, transform, category, subject in batch:
            sealer = sealers.get(subject)
            if sealer is None:
                sealer = sealers[subject] = await self._sealer(subject)
            if transform == "encrypt":
                parent[key] = sealer.encrypt(text, category)
            else:
                parent[key] = sealer.encrypt_deterministic(text, category)

    async def seal_texts(
        self, subject: str, texts: list[str], transforms: tuple[str, ...], categories: tuple[str, ...]
    ) -> list[str]:
        """The envelopes of one subject's clear texts, in order, each under its transform and category:
        what `_seal` writes into a batch's containers, handed back as a list (pipeline/native_request.py
        splices them into the raw body). Randomised envelopes only, more than one: one `encrypt_values`
        call, as `_seal` does; otherwise `_seal` itself."""
        count = len(texts)
        if count > 1 and transforms.count("encrypt") == count:
            sealed = self._in_one_call(await self._sealer(subject), texts, transforms, categories)
            if sealed is not None:
                return sealed
        out: list[Any] = [None] * count
        await self._seal(
            [
                (out, index, text, transform, category, subject)
                for index, (text, transform, category) in enumerate(zip(texts, transforms, categories, strict=True))
            ]
        )
        return out

    def _check_one(
        self, rule: CompiledField, location: Location, subject: str | None, report: FieldReport
    ) -> str | None:
        """Validate one field, strip it or add its companions; the clear text to transform, or None."""
        value = location.get()
        if value is None:
            return None
        report.categories.add(rule.rule.category)
        return self._check_value(rule.rule, location.parent, location.key, value, subject, report)

    def _check_value(
        self, spec: FieldRule, parent: Any, key: str | int, value: Any, subject: str | None, report: FieldReport
    ) -> str | None:
        """`_check_one` of a present value (not None) at `parent[key]`, its category counted."""
        if spec.transform == "strip":
            if isinstance(parent, dict):  # Location.delete
                parent.pop(str(key), None)
            else:
                parent[key] = None  # keep positions stable in arrays
            report.count("strip")
            return None
        pan = validate_field(spec.validate_as, value, spec.select) if spec.validate_as else None
        if spec.transform == "keep":
            return None
        if isinstance(value, str) and value.startswith(ENVELOPE_PREFIXES):  # is_protected, inline
            raise PrivacyError(
                "already_protected",
                f"The field {spec.select!r} already holds a protected value; send the clear value.",
                422,
                extra={"field": spec.select},
            )
        if not isinstance(value, str | int | float):
            raise PrivacyError(
                "unprotectable_field",
                f"The field {spec.select!r} must be a string or number.",
                422,
                extra={"field": spec.select},
            )
        if self.cipher is None:
            raise PrivacyError("key_service_unavailable", "No key service is configured.", 503)
        if not subject:
            raise PrivacyError(
                "subject_required", "This route stores protected data and needs a signed-in customer.", 401
            )
        # a card number's digits as its validation normalised them (`validate_field`)
        text = pan if pan is not None else str(value)
        if spec.companions and isinstance(parent, dict) and isinstance(key, str):
            if "last4" in spec.companions:
                parent[f"{key}_last4"] = text[-4:]
            if "brand" in spec.companions:
                brand = card_brand(text)
                parent[f"{key}_brand"] = str(brand) if brand else None
        return text

    async def _transform_one(
        self,
        rule: CompiledField,
        location: Location,
        text: str,
        subject: str,
        report: FieldReport,
        batch: list[_Sealing] | None,
    ) -> None:
        """The field's blind index and transform where the key service is awaited for it."""
        spec = rule.rule
        assert self.cipher is not None  # _check_value refused without one
        parent = location.parent
        if spec.blind_index and isinstance(parent, dict) and isinstance(location.key, str):
            parent[f"{location.key}_index"] = await self.cipher.blind_index(text, category=spec.category)
        if batch is not None and spec.transform in _SEALED:
            batch.append((parent, location.key, text, spec.transform, spec.category, subject))
        elif spec.transform == "encrypt":
            location.set(await self.cipher.encrypt(text, category=spec.category, subject=subject))
        elif spec.transform == "encrypt_deterministic":
            location.set(await self.cipher.encrypt_deterministic(text, category=spec.category, subject=subject))
        elif spec.transform == "tokenise" and spec.token_format:
            location.set(
                await self.cipher.tokenise_shaped(
                    text,
                    category=spec.category,
                    subject=subject,
                    shape=self.token_shape(spec),
                    deterministic=spec.deterministic,
                )
            )
        elif spec.transform == "tokenise":
            location.set(await self.cipher.tokenise(text, category=spec.category, subject=subject))
        report.count(spec.transform)
        report.subjects.add(subject)

    async def tokenise_card(self, number: str, subject: str) -> str:
        """A card number found where no rule of the route expected it, as a token from the vault
        (`[cards].unplanned = "tokenise"`), under the policy's card category and the caller's key."""
        if self.cipher is None:
            raise PrivacyError("key_service_unavailable", "No key service is configured.", 503)
        return await self.cipher.tokenise(normalise_pan(number), category=self.policy.cards.category, subject=subject)

    # --- the way out -------------------------------------------------------------------------

    @property
    def cached_plans(self) -> int:
        """How many disclosure plans the engine holds (bounded by PLAN_CACHE_SIZE)."""
        return len(self._plans)

    def _plan(self, body: CompiledBody) -> DisclosurePlan:
        plan = self._hot_plans.get(id(body))  # a plain dict first: the LRU's get is several Python calls
        if plan is not None and plan.body is body:
            return plan
        plan = self._plans.get(id(body))
        if plan is None or plan.body is not body:
            plan = self._plans[id(body)] = DisclosurePlan.build(body)
        if len(self._hot_plans) < PLAN_CACHE_SIZE:  # the first plans asked for (the routes'), bounded
            self._hot_plans[id(body)] = plan
        return plan

    async def disclose(
        self,
        body: CompiledBody,
        document: Any,
        viewer: Viewer,
        blocked: Callable[[str], Awaitable[bool]] | None = None,
        owners: Callable[[list[str]], Awaitable[dict[str, str]]] | None = None,
    ) -> FieldReport:
        """Rewrite a response in place so it holds only what this viewer may see.

        A record's subject is the one it names; else, when the body has a record key and `owners`
        is given, the subject the record was bound to when the shop created it; else the caller.

        Fields addressed by plain key paths (the common case) are handled by direct dict access;
        values that need a key (protected ones) or a transform other than keep/drop, and selectors
        with wildcards, take the general path through `_disclose_one`.
        """
        report = FieldReport()
        root = document
        if body.rules.graphql:
            root = document.get("data") if isinstance(document, dict) else None
            if root is None:
                return report
        plan = self._plan(body)
        transforms = plan.transforms(viewer)
        program = plan.program(viewer.recipient, transforms)
        own_transforms = plan.own_transforms(self.card_categories, viewer.reveal_cards)
        own_program = plan.program("\x00own-reveal" if viewer.reveal_cards else "\x00own", own_transforms)
        blocked_program = plan.program("\x00blocked", ("drop",) * len(body.fields))
        fields = body.fields
        fallback = viewer.principal.subject if viewer.principal else None
        seen_categories = report.categories
        subjects = report.subjects
        kept = dropped = 0
        verdicts: dict[str, bool] = {}
        subject_path = plan.subject_path
        principal_subject = viewer.principal.subject if viewer.principal else None
        guest = guest_subject(viewer.principal)
        shaped_email = "@" + self.policy.tokens.email_domain
        bound = await self._bound_owners(body, root, subject_path, owners)
        unknown_at = plan.unknown_at
        action = body.rules.unknown_fields
        suspect = self._suspect
        for record in plan.records(root):
            if subject_path is not None:
                found = follow(record, subject_path)
                subject = str(found) if found is not None and not isinstance(found, dict | list) else None
            else:
                subject = record_subject(body, record, None)
            if subject is None and bound:
                subject = bound.get(record_key_of(body, record) or "")
            if subject is None and body.subject is None:
                subject = fallback
            if subject is None and guest is not None:
                subject = guest
            own = bool(subject) and principal_subject == subject
            steps = own_program if own else program
            if not own and blocked is not None and subject:
                if subject not in verdicts:
                    verdicts[subject] = await blocked(subject)
                if verdicts[subject]:
                    steps = blocked_program
                    report.blocked_subjects += 1
            slow: list[tuple[CompiledField, Location, str]] = []
            unknown: list[tuple[dict[str, Any], frozenset[str]]] | None = None
            record_kept = 0
            for group, (parent, drops, drop_set, keeps, others, kept_values, kept_categories) in enumerate(steps):
                depth = len(parent)
                obj = record.get(parent[0]) if depth == 1 else follow(record, parent) if depth else record
                if type(obj) is not dict:
                    if isinstance(obj, dict) and unknown_at[group] is not None:  # a dict subclass: checked as before
                        unknown = unknown or []
                        unknown.append((obj, unknown_at[group]))  # type: ignore[arg-type]
                    continue
                static = unknown_at[group]
                if static is not None and obj.keys() - static:
                    unknown = unknown or []
                    unknown.append((obj, static))
                if drops:
                    if obj.keys() <= drop_set:  # every key of the object goes: emptied in one call
                        dropped += len(obj)
                        obj.clear()
                    else:
                        for key in drops:
                            if key in obj:
                                del obj[key]
                                dropped += 1
                if kept_values is not None:
                    # Every kept key present and a plain string, none suspect: kept as they are, in one pass.
                    try:
                        joined = "\x00" + "\x00".join(kept_values(obj)) + "\x00"
                    except (KeyError, TypeError):  # a key absent, a value None or not a string: the loop
                        joined = ""
                    if joined:
                        for needle in suspect:
                            if needle in joined:
                                break
                        else:
                            seen_categories.update(kept_categories)
                            record_kept += len(kept_categories)
                            keeps = ()
                for key, index, category, shaped in keeps:
                    value = obj.get(key)
                    if value is None:
                        continue
                    if type(value) is str and (
                        shaped or value.startswith(ENVELOPE_PREFIXES) or value.endswith(shaped_email)
                    ):
                        slow.append((fields[index], Location(obj, key), "keep"))
                        continue
                    seen_categories.add(category)
                    record_kept += 1
                for key, index, transform in others:
                    if key in obj:
                        slow.append((fields[index], Location(obj, key), transform))
            if record_kept:
                kept += record_kept
                if subject:
                    subjects.add(subject)
            classified: set[tuple[int, str | int]] | None = None
            if plan.complex:
                classified = set()
                for index in plan.complex:
                    transform = (
                        own_transforms[index] if own else "drop" if steps is blocked_program else transforms[index]
                    )
                    for location in list(fields[index].selector.locations(record)):
                        classified.add((id(location.parent), location.key))
                        slow.append((fields[index], location, transform))
            for rule, location, transform in slow:
                await self._disclose_one(rule, location, transform, subject, viewer, report)
            if unknown is not None:
                for obj, static in unknown:
                    _unknown_keys(obj, static, classified, own, action, report)
            if plan.personal_rest:
                self._unknown_fields(body, plan, record, classified, own, report)
        if kept:
            report.transformed["keep"] = report.transformed.get("keep", 0) + kept
        if dropped:
            report.transformed["drop"] = report.transformed.get("drop", 0) + dropped
        return report

    async def disclose_bytes(
        self,
        body: CompiledBody,
        raw: bytes,
        viewer: Viewer,
        blocked: Callable[[str], Awaitable[bool]] | None = None,
        owners: Callable[[list[str]], Awaitable[dict[str, str]]] | None = None,
    ) -> tuple[bytes, FieldReport] | None:
        """`disclose` on a JSON response's bytes, in one native pass (fields/native.py): the body
        `orjson.dumps` would give after `disclose`, and the same report; None when that pass does not
        apply to this plan, viewer or body, and the caller parses the body and calls `disclose`.

        The pass handles records that are not the viewer's own and whose subject is not blocked for
        this recipient: a record without a subject that a guest or a bound owner could own, a record
        of the viewer's own, or a blocked subject gives None (after asking `blocked`, as `disclose`
        would, for each subject).
        """
        if not self.native or body.rules.graphql:
            return None
        plan = self._plan(body)
        program = plan.native_program(viewer.recipient, plan.transforms(viewer), self._needles)
        if program is None:
            return None
        got = native.disclose(program, raw)
        if got is None:
            return None
        out, kept, dropped, seen, subjects, kept_subjects = got
        principal = viewer.principal
        principal_subject = principal.subject if principal is not None else None
        if principal_subject and principal_subject in subjects:
            return None  # the viewer's own records: the owner's transforms
        if None in subjects and (
            guest_subject(principal) is not None or (owners is not None and body.record_key is not None)
        ):
            return None  # a record a guest or a bound owner may own
        if blocked is not None and any(subjects):  # None and "" name nobody to ask about
            for subject in dict.fromkeys(subjects):
                if subject and await blocked(subject):
                    return None  # a restricted or objecting subject: every field dropped, counted
        report = FieldReport()
        if kept:
            report.transformed["keep"] = kept
        if dropped:
            report.transformed["drop"] = dropped
        categories = plan.categories
        if kept:  # a category is seen only where a kept value was present
            report.categories.update(compress(categories, seen))
        report.subjects.update(kept_subjects)
        return out, report

    @staticmethod
    async def _bound_owners(
        body: CompiledBody,
        root: Any,
        subject_path: tuple[str, ...] | None,
        owners: Callable[[list[str]], Awaitable[dict[str, str]]] | None,
    ) -> dict[str, str]:
        """The bound owners of the records that do not name a subject (one look-up per response)."""
        if owners is None or body.record_key is None:
            return {}
        keys = []
        for record in records_of(body, root):
            named = follow(record, subject_path) if subject_path is not None else record_subject(body, record, None)
            if named is None or isinstance(named, dict | list):
                key = record_key_of(body, record)
                if key:
                    keys.append(key)
        return await owners(keys) if keys else {}

    async def _disclose_one(
        self,
        rule: CompiledField,
        location: Location,
        transform: str,
        subject: str | None,
        viewer: Viewer,
        report: FieldReport,
    ) -> None:
        category = rule.rule.category
        value = location.get()
        if transform == "drop":
            location.delete()
            report.count("drop")
            return
        if value is None:
            return
        report.categories.add(category)
        if subject:
            report.subjects.add(subject)
        if transform == "ciphertext":
            if not is_protected(value):
                location.delete()
            report.count(transform)
            return
        shaped = self._maybe_shaped(rule.rule, value)
        if is_protected(value) or shaped is not None:
            value = await self._reveal(value, category, subject, report, shaped)
            if value is None:
                location.set({"error": "unreadable", "code": "decryption_failed"})
                return
        elif self.cipher is not None and rule.rule.transform != "keep":
            report.legacy_plaintext += 1
        if transform == "keep":
            location.set(value)
        elif transform == "pseudonymise":
            scope = self.policy.recipients.get(viewer.recipient)
            location.set(
                self.pseudonymiser.pseudonym(value, (scope.pseudonym_scope if scope else "") or viewer.recipient)
            )
        else:
            location.set(self.masks[transform](value))
        report.count(transform)

    def token_shape(self, rule: FieldRule) -> TokenShape:
        return TokenShape(
            rule.token_format or "email",
            length=rule.token_length,
            prefix=rule.token_prefix,
            email_domain=self.policy.tokens.email_domain,
        )

    def _maybe_shaped(self, rule: FieldRule, value: Any) -> TokenShape | None:
        """The shape of a token this field may hold: declared by the rule, or an address at our domain."""
        if not isinstance(value, str) or self.cipher is None:
            return None
        shape = self.token_shape(rule)
        if rule.token_format or shape.looks_shaped(value):
            return shape if shape.looks_shaped(value) else None
        return None

    async def _reveal(
        self, value: str, category: str, subject: str | None, report: FieldReport, shaped: TokenShape | None = None
    ) -> Any:
        if self.cipher is None:
            raise PrivacyError("key_service_unavailable", "No key service is configured.", 503)
        if not subject:
            report.reveal_failures += 1
            return None
        try:
            if shaped is not None and not is_protected(value):
                found = await self.cipher.detokenise_shaped(value, category=category, subject=subject)
                return value if found is None else found  # not in the vault: a plain value of that shape
            if value.startswith("tok_"):
                return await self.cipher.detokenise(value, category=category, subject=subject)
            return await self.cipher.decrypt(value, category=category, subject=subject)
        except PrivacyError as error:
            if error.status == 503:
                raise
            report.reveal_failures += 1
            return None

    def _unknown_fields(
        self,
        body: CompiledBody,
        plan: DisclosurePlan,
        record: Any,
        classified: set[tuple[int, str | int]] | None,
        own: bool,
        report: FieldReport,
    ) -> None:
        action = body.rules.unknown_fields
        for selector, path, static_keys in plan.personal_rest:
            if path is None:
                objects: Any = selector.values(record)
            else:
                objects = (record.get(path[0]) if len(path) == 1 else follow(record, path),)
            for obj in objects:
                if isinstance(obj, dict):
                    _unknown_keys(obj, static_keys, classified, own, action, report)


def _unknown_keys(
    obj: dict[str, Any],
    static_keys: frozenset[str],
    classified: set[tuple[int, str | int]] | None,
    own: bool,
    action: str,
    report: FieldReport,
) -> None:
    """Keys of a personal object that no rule classifies: kept (counted), dropped or refused."""
    extra = obj.keys() - static_keys  # found in C; most objects have none
    if not extra:
        return
    for key in [key for key in obj if key in extra]:  # in the document's order
        if classified is not None and (id(obj), key) in classified:
            continue
        if own or action == "keep":
            report.unknown_kept += 1
        elif action == "drop":
            del obj[key]
            report.unknown_dropped += 1
        else:
            raise PrivacyError(
                "unclassified_field",
                "The shop's response holds a personal-data field the policy does not classify.",
                502,
            )


# Per parent object: its key path; the keys to drop (and as a set); the keys kept as they are, each with
# its rule's index, category and whether the rule declares a token format; the keys needing another transform.
# With the kept keys of a group of two or more plain (not token-shaped) keeps: a getter of all their
# values at once and their categories, for the check of the whole group in one pass (else None, ()).
GroupProgram = tuple[
    tuple[str, ...],
    tuple[str, ...],
    frozenset[str],
    tuple[tuple[str, int, str, bool], ...],
    tuple[tuple[str, int, str], ...],
    Callable[[Any], Any] | None,
    tuple[str, ...],
]


def key_path(selector: Selector) -> tuple[str, ...] | None:
    """The selector as a plain tuple of keys, or None when it has wildcards or indexes."""
    if all(step.kind == "key" for step in selector.steps):
        return tuple(str(step.value) for step in selector.steps)
    return None


def follow(node: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


@dataclass(slots=True)
class DisclosurePlan:
    """A body's field rules arranged for fast disclosure: plain key paths grouped by parent object."""

    body: CompiledBody
    groups: tuple[tuple[tuple[str, ...], tuple[tuple[str, int], ...]], ...]
    complex: tuple[int, ...]
    personal: tuple[tuple[Selector, tuple[str, ...] | None, frozenset[str]], ...]
    subject_path: tuple[str, ...] | None
    categories: tuple[str, ...]
    # Per group (aligned with `groups`): the keys the rules of that parent name when the parent is a
    # personal object whose unknown keys can be found while the group is visited (no rule can replace
    # or remove the object itself, no wildcard rule); None otherwise. `personal_rest`: the personal
    # objects checked in a pass of their own after the record's rules, as before.
    unknown_at: tuple[frozenset[str] | None, ...] = ()
    personal_rest: tuple[tuple[Selector, tuple[str, ...] | None, frozenset[str]], ...] = ()
    # `records` as keys to a list whose items are the records (`$.orders[*]`), else None: the walk.
    records_list: tuple[str, ...] | None = None
    hoisted: bool = True
    _by_recipient: dict[str, tuple[str, ...]] = field(default_factory=dict)
    _own: dict[bool, tuple[str, ...]] = field(default_factory=dict)
    _programs: dict[str, tuple[GroupProgram, ...]] = field(default_factory=dict)
    _native: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def build(cls, body: CompiledBody, *, hoist: bool = True) -> DisclosurePlan:
        """`hoist=False` gives the plan without the work moved to plan build (unknown keys found in a
        pass of their own, records by the selector's walk, drops one by one): the property tests'
        reference for what the hoisted plan must give."""
        groups: dict[tuple[str, ...], list[tuple[str, int]]] = {}
        complex_rules: list[int] = []
        for index, rule in enumerate(body.fields):
            steps = rule.selector.steps
            if steps and all(step.kind == "key" for step in steps):
                parent = tuple(str(step.value) for step in steps[:-1])
                groups.setdefault(parent, []).append((str(steps[-1].value), index))
            else:
                complex_rules.append(index)
        personal = []
        for selector in body.personal_objects:
            path = key_path(selector)
            static = frozenset(key for key, _ in groups.get(path, ())) if path is not None else frozenset()
            personal.append((selector, path, static))
        rule_paths = [key_path(rule.selector) for rule in body.fields]
        fused: dict[tuple[str, ...], frozenset[str]] = {}
        rest = []
        for selector, path, static in personal:
            if (
                hoist
                and not complex_rules
                and path is not None
                and path in groups
                and path not in fused
                # a rule on the object or an ancestor could replace or remove it before the old pass
                and not any(p is not None and len(p) <= len(path) and path[: len(p)] == p for p in rule_paths)
            ):
                fused[path] = static
            else:
                rest.append((selector, path, static))
        steps = body.records.steps
        records_list = None
        if hoist and steps and steps[-1].kind == "items" and all(step.kind == "key" for step in steps[:-1]):
            records_list = tuple(str(step.value) for step in steps[:-1])
        return cls(
            body=body,
            groups=tuple((parent, tuple(entries)) for parent, entries in groups.items()),
            complex=tuple(complex_rules),
            personal=tuple(personal),
            subject_path=key_path(body.subject) if body.subject is not None else None,
            categories=tuple(rule.rule.category for rule in body.fields),
            unknown_at=tuple(fused.get(parent) for parent in groups),
            personal_rest=tuple(rest),
            records_list=records_list,
            hoisted=hoist,
        )

    def records(self, root: Any) -> Iterator[Any] | list[Any]:
        """The records of a body: the list itself for `$.keys[*]`, else the selector's walk."""
        if self.records_list is not None:
            node = follow(root, self.records_list)
            return node if isinstance(node, list) else []
        return self.body.records.values(root)

    def program(self, key: str, transforms: tuple[str, ...]) -> tuple[GroupProgram, ...]:
        """Per parent object: keys to drop, keys kept as they are, keys needing another transform."""
        cached = self._programs.get(key)
        if cached is None:
            built = []
            fields = self.body.fields
            for parent, entries in self.groups:
                drops = tuple(k for k, i in entries if transforms[i] == "drop")
                keeps = tuple(
                    (k, i, self.categories[i], bool(fields[i].rule.token_format))
                    for k, i in entries
                    if transforms[i] == "keep"
                )
                others = tuple((k, i, transforms[i]) for k, i in entries if transforms[i] not in ("drop", "keep"))
                # Without hoisting only an empty object passes `keys() <= set()`: the drops go one by one.
                bulk = self.hoisted and len(keeps) >= 2 and not any(shaped for _k, _i, _c, shaped in keeps)
                built.append(
                    (
                        parent,
                        drops,
                        frozenset(drops) if self.hoisted else frozenset(),
                        keeps,
                        others,
                        operator.itemgetter(*(k for k, _i, _c, _s in keeps)) if bulk else None,
                        tuple(c for _k, _i, c, _s in keeps) if bulk else (),
                    )
                )
            cached = self._programs[key] = tuple(built)
        return cached

    def native_program(
        self, key: str, transforms: tuple[str, ...], needles: tuple[tuple[str, ...], tuple[str, ...]]
    ) -> Any:
        """The native pass's program for these transforms (fields/native.py), or None: built once per key."""
        if key not in self._native:
            self._native[key] = native.build(self, transforms, *needles) if self.hoisted else None
        return self._native[key]

    def own_transforms(self, cards: frozenset[str], reveal_cards: bool) -> tuple[str, ...]:
        """The transform of every field rule for the subject reading their own record."""
        cached = self._own.get(reveal_cards)
        if cached is None:
            cached = self._own[reveal_cards] = tuple(owner_transform(cards, c, reveal_cards) for c in self.categories)
        return cached

    def transforms(self, viewer: Viewer) -> tuple[str, ...]:
        """The transform of every field rule for this viewer's recipient (computed once per recipient)."""
        cached = self._by_recipient.get(viewer.recipient)
        if cached is None:
            cached = tuple(viewer.transform_for(category) for category in self.categories)
            self._by_recipient[viewer.recipient] = cached
        return cached
