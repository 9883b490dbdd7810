"""The card-data sentinel at the ASGI edge: request bodies on every route, planned or not.

A route the policy does not plan for card data must not receive one: a JSON or form body holding
a card number or a card security code key is refused (422 `card_data_on_unprotected_route`, the
field path, never the value) and audited with the route. Where the policy says
`[cards].unplanned = "tokenise"`, a card number in a JSON body is replaced by a token from the vault
for the signed-in caller instead (card codes are still refused: they are never kept). Bodiless
requests cost one header scan; a body without a run of 13 digits or a CVV-like word costs one
byte-level prefilter.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote_to_bytes

import orjson

from ..audit import events
from ..audit.refusals import AuditSink, audit_refusal
from ..errors import PrivacyError
from ..fields.card_sentinel import (
    find_card_data,
    find_card_data_in_form,
    may_hold_card_data,
    may_hold_card_number,
    pans_in,
    tokenise_card_numbers,
)
from ..policy.compile import RouteSpec, plain_paths
from ..types import Receive, Scope
from .body import declared_length, decoded_for_inspection, parse_length, read_body, replay, too_large
from .headers import first_values, get_header, is_json_media_type, media_type, replace, without
from .strict_json import load_strict

logger = logging.getLogger("privacy_middleware")
# (card number, subject) -> a token from the vault; the caller's subject, None for an anonymous one.
CardTokeniser = Callable[[str, str], Awaitable[str]]
SubjectOf = Callable[[Scope], Awaitable[str | None]]

FORM = "application/x-www-form-urlencoded"
BODYLESS_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE"})
BODY_HEADERS = (b"content-length", b"transfer-encoding")
_LONG_NUMBERS = re.compile(r"[0-9]{6,}")


def refusal(field: str, kind: str) -> PrivacyError:
    what = "a card number" if kind == "card_number" else "a card security code"
    return PrivacyError(
        "card_data_on_unprotected_route",
        f"The field {field} holds {what}, and this route has no plan to protect card data.",
        422,
        extra={"field": field},
    )


def route_label(scope: Scope) -> str:
    """`METHOD /path` with long digit runs replaced, so the audit never holds a number from a path."""
    return f"{scope['method']} {_LONG_NUMBERS.sub('{n}', scope['path'])}"[:300]


def exempt_places(spec: RouteSpec | None, document: Any) -> frozenset[tuple[int, str | int]]:
    """Places the route's own request rules handle (its plan for them): not the sentinel's business."""
    if spec is None or spec.request is None:
        return frozenset()
    body = spec.request
    paths = plain_paths(body)
    places: set[tuple[int, str | int]] = set()
    for record in body.records.values(document):
        if paths is None:
            for rule in body.fields:
                for parent, key in rule.selector.places(record):
                    places.add((id(parent), key))
            continue
        for parents, last in paths:  # Selector.places of a plain key path, inline
            node = record
            for key in parents:
                node = node.get(key) if isinstance(node, dict) else None
            if isinstance(node, dict) and last in node:
                places.add((id(node), last))
    return frozenset(places)


def scan(
    body: bytes,
    media: str,
    document: Any = None,
    exempt: frozenset[tuple[int, str | int]] = frozenset(),
    *,
    prefiltered: bool = False,
) -> None:
    """Raise 422 for card data in a body; `document` is the parsed JSON when the caller has it
    (the prefilter runs on the raw bytes as received either way, unless the caller just ran it on
    these bytes: `prefiltered`)."""
    raw = unquote_to_bytes(body.replace(b"+", b" ")) if media == FORM else body
    if not prefiltered and not may_hold_card_data(raw):
        return
    if is_json_media_type(media):
        if document is None:
            try:
                document = orjson.loads(body)
            except orjson.JSONDecodeError:
                # Unreadable JSON that holds a card number is refused all the same.
                if next(pans_in(body.decode("utf-8", "replace")), None) is not None:
                    raise refusal("$", "card_number") from None
                return
        for field, kind in find_card_data(document, exempt=exempt):
            raise refusal(field, kind)
    elif media == FORM:
        for field, kind in find_card_data_in_form(body):
            raise refusal(field, kind)


def has_body(scope: Scope) -> bool:
    """Whether the request may carry a body: its first Content-Length above 0; without one, a
    Transfer-Encoding or a method that has bodies. One scan of the headers (400 for a Content-Length
    that is not a number, as `declared_length`)."""
    length, chunked = first_values(scope.get("headers") or (), BODY_HEADERS)
    if length is not None:
        return parse_length(length) > 0
    return chunked is not None or scope["method"] not in BODYLESS_METHODS


class CardSentinel:
    def __init__(
        self,
        max_body_bytes: int,
        audit: AuditSink,
        *,
        tokenise: CardTokeniser | None = None,
        subject_of: SubjectOf | None = None,
    ) -> None:
        self.limit = max_body_bytes
        self.audit = audit
        self.tokenise = tokenise  # set when the policy tokenises card numbers instead of refusing them
        self.subject_of = subject_of

    async def tokenise_document(
        self,
        scope: Scope,
        document: Any,
        subject: str | None,
        exempt: frozenset[tuple[int, str | int]] = frozenset(),
    ) -> bool:
        """Tokenise the card numbers of a parsed JSON body in place (tokenise mode); whether any were.
        A card code, or a card number without a signed-in subject to tokenise it for, is refused."""
        if self.tokenise is None:
            return False
        found = list(find_card_data(document, exempt=exempt))
        if not found:
            return False
        for field, kind in found:
            if kind == "card_code":
                raise refusal(field, kind)
        if not subject:
            raise refusal(found[0][0], "card_number")
        tokenise = self.tokenise

        async def token(number: str) -> str:
            return await tokenise(number, subject)

        paths = await tokenise_card_numbers(document, token, exempt=exempt)
        self._tokenised(scope, paths)
        return bool(paths)

    def _tokenised(self, scope: Scope, paths: list[str]) -> None:
        try:
            event = events.detection_finding(
                "card_data_tokenised",
                title="Card numbers on a route without a plan for them were tokenised",
                severity_id=events.SEVERITY_LOW,
                related={"route": route_label(scope), "count": len(paths), "fields": ", ".join(paths)[:300]},
            )
        except ValueError as exc:
            logger.error("card tokenising event not built: %s", type(exc).__name__)
            return
        self.audit.emit(event)

    async def _tokenise_body(self, scope: Scope, body: bytes) -> bytes:
        if not may_hold_card_number(body):
            return body
        try:
            document = load_strict(body)
        except orjson.JSONDecodeError:
            return body  # unreadable JSON with a card number: refused by scan()
        subject = await self.subject_of(scope) if self.subject_of is not None else None
        if not await self.tokenise_document(scope, document, subject):
            return body
        body = orjson.dumps(document)
        headers = without(scope.get("headers") or [], b"content-md5", b"digest", b"content-digest")
        scope["headers"] = replace(headers, b"content-length", str(len(body)).encode())
        return body

    async def screen(self, scope: Scope, receive: Receive) -> Receive:
        """The request's receive, after its body (if JSON or a form) was checked for card data."""
        if not has_body(scope):
            return receive
        headers = scope.get("headers") or []
        media = media_type(headers)
        if not (is_json_media_type(media) or media == FORM):
            return receive
        encoding = get_header(headers, b"content-encoding")
        length = declared_length(headers)
        if length is not None and length > self.limit:
            raise too_large(self.limit)
        body = await read_body(receive, self.limit)
        if encoding in (None, b"identity"):
            if self.tokenise is not None and is_json_media_type(media):
                body = await self._tokenise_body(scope, body)
            scan(body, media)
        else:  # checked decoded, forwarded as sent (never rewritten compressed, DESIGN.md §5)
            scan(decoded_for_inspection(body, encoding, self.limit), media)
        return replay(body, receive)

    def refused(self, scope: Scope, error: PrivacyError) -> None:
        audit_refusal(self.audit, error, route=route_label(scope), ip=None, subject=None)
