"""The card-data sentinel on responses: JSON answered on a route without a response plan leaves
with its card numbers masked to the last four digits (PCI DSS 3.4.1), unless the policy names the
route a payment recipient's (`[cards].payment_routes`) and the caller is that recipient.

What is held back, and why:

- A response that is not JSON, a HEAD, a 1xx/204/304 goes on at once, untouched: one look at the
  start's headers.
- The start of a JSON response waits for the first body message. A body that comes whole in that
  message (what JSON APIs send) is checked whole: the byte-level prefilter, and only when it finds
  a run of 13 digits, a parse and a walk; a masked body goes with its Content-Length fixed and its
  digest headers (ETag, Digest, Content-MD5) dropped.
- A body in several messages is a stream and is not buffered: the start goes on unchanged and each
  piece goes on as soon as it is checked, less the trailing digits a later piece may complete
  (`StreamScan`). A card number found there is masked in place without changing the length (a
  "*" per hidden digit), so the Content-Length already sent stays true; digest headers sent with
  the start cannot be taken back and no longer match (a client that checks them refuses the body).
- gzip and deflate bodies are decoded to check. A whole compressed body holding a card number goes
  masked and uncompressed. A compressed stream is decoded piece by piece and each compressed piece
  goes on once what it decodes to is checked; a card number in it cannot be masked without
  re-encoding what was already sent, so the response is cut there (the client sees a truncated
  body, never the number) and the cut is audited.
- Any other content coding (br, zstd, compress, stacked codings) cannot be checked: 502
  `response_not_checkable`, nothing of the body forwarded. So is a compressed body that does not
  decode, or decodes past the response size limit.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Awaitable, Callable, Generator
from typing import Any

from ..audit import events
from ..audit.refusals import AuditSink
from ..errors import PrivacyError
from ..fields import native
from ..fields.card_sentinel import StreamScan, mask_json_body, may_hold_card_number
from ..policy.compile import RouteTable
from ..policy.schema import Policy
from ..types import Message, Scope, Send
from .body import decoded_for_inspection
from .card_sentinel import route_label
from .headers import first_values, is_json_media_type, replace, without
from .responses import send_problem

logger = logging.getLogger("privacy_middleware")

DIGEST_HEADERS = (b"content-md5", b"digest", b"content-digest", b"repr-digest", b"etag")
DECODABLE = frozenset({b"gzip", b"x-gzip", b"deflate"})
PASS_STATUSES = frozenset({204, 304})
START_HEADERS = (b"content-type", b"content-encoding")  # what decides a start: read in one scan
_native_first = native.first_values
_card_send = native.card_send
JSON_TYPES_KEPT = 64


def not_checkable(why: str) -> PrivacyError:
    return PrivacyError(
        "response_not_checkable",
        f"The shop's response could not be checked for card data ({why}); it was not forwarded.",
        502,
    )


class Decoder:
    """A compressed stream decoded piece by piece: gzip (several members too) or deflate (zlib-wrapped,
    or raw as some servers send it). A whole body is decoded by `asgi.body.decoded_for_inspection`."""

    def __init__(self, coding: bytes, limit: int) -> None:
        self.gzip = coding != b"deflate"
        self.limit = limit
        self.size = 0
        self.inner: Any = zlib.decompressobj(47 if self.gzip else 15)
        self.started = False

    def feed(self, data: bytes) -> bytes:
        """Decoded bytes; raises PrivacyError when the data does not decode or decodes too large."""
        try:
            if not self.gzip and not self.started and data:
                self.started = True
                if (data[0] & 0x0F) != 8 or ((data[0] << 8) | (data[1] if len(data) > 1 else 0)) % 31:
                    self.inner = zlib.decompressobj(-15)  # raw deflate, no zlib header
            out: bytes = self.inner.decompress(data, self.limit - self.size + 1)
            while self.gzip and self.inner.eof and self.inner.unused_data:
                rest = self.inner.unused_data
                self.inner = zlib.decompressobj(47)
                out += self.inner.decompress(rest, self.limit - self.size - len(out) + 1)
        except zlib.error:
            raise not_checkable("the compressed body does not decode") from None
        self.size += len(out)
        if self.size > self.limit or self.inner.unconsumed_tail:
            raise not_checkable("the body decodes past the response size limit")
        return out


class ResponseCardGuard:
    """Built once per middleware; `wrap` gives one request's checking `send`."""

    def __init__(self, policy: Policy, audit: AuditSink, max_response_bytes: int) -> None:
        self.audit = audit
        self.limit = max_response_bytes
        self._json_types: dict[bytes, bool] = {}
        self.payment: RouteTable[str] = RouteTable(
            (route.method, route.path, route.recipient) for route in policy.cards.payment_routes
        )
        # the C guard's state: this guard's Content-Type verdicts (the same dict, filled by `is_json`)
        # and how it hands a response to `MaskingResponse`
        self.native_state = (self._json_types, self.resume)

    def is_json(self, content_type: bytes) -> bool:
        """Whether a Content-Type value names JSON; the verdict is kept per value (a shop answers with
        a handful of them; the table stops growing at `JSON_TYPES_KEPT`)."""
        known = self._json_types.get(content_type)
        if known is None:
            media = content_type.split(b";", 1)[0].strip().lower().decode("latin-1")
            known = is_json_media_type(media)
            if len(self._json_types) < JSON_TYPES_KEPT:
                self._json_types[content_type] = known
        return known

    def payment_recipient(self, scope: Scope) -> str | None:
        """The recipient the policy names this route for (its responses keep card numbers), if any."""
        if not self.payment.size:
            return None
        found = self.payment.match(scope["method"], scope["path"])
        return found[0] if found is not None else None

    def wrap(self, scope: Scope, send: Send, caller: Callable[[], str | None] | None = None) -> Send:
        """The checking `send`; `caller` tells, once the response starts, which recipient is calling
        (a payment route's responses go unmasked to its own recipient only)."""
        if caller is None:
            return self.checking(scope, send)
        return self.response(scope, send, caller).send

    def checking(self, scope: Scope, send: Send) -> Send:
        """The checking `send` for a caller that no payment route exempts: the common case decided in
        C where the extension is built (`_native.card_send`: one call per message, the held start and
        a cleared whole body sent through one awaitable), everything else by `MaskingResponse`, which
        makes the same decisions without it (tests/properties/test_native_card_send.py)."""
        if _card_send is not None:
            send_: Send = _card_send(self.native_state, scope, send)
            return send_
        return MaskingResponse(self, scope, send).send

    def resume(self, scope: Scope, send: Send, start: Message | None) -> Send:
        """The Python guard's `send` for a response the C guard hands over: not started (`start` None),
        or with the start of a JSON answer without a content coding held, waiting for its first body."""
        response = MaskingResponse(self, scope, send)
        if start is not None:
            response.start = start
            response.mode = "first"
        return response.send

    def response(self, scope: Scope, send: Send, caller: Callable[[], str | None] | None = None) -> MaskingResponse:
        """As `wrap`, the checking object itself (a planned route adds its steps' headers through it)."""
        named = self.payment_recipient(scope) if caller is not None else None
        return MaskingResponse(self, scope, send, named, caller)

    def masked(self, scope: Scope, count: int, how: str) -> None:
        """Audit one masking (or one cut stream): the route and the count, never a value."""
        try:
            event = events.detection_finding(
                "card_data_in_response",
                title="Card numbers in a response without a plan for them were masked",
                severity_id=events.SEVERITY_LOW,
                related={"route": route_label(scope), "count": count, "action": how},
            )
        except ValueError as exc:
            logger.error("card masking event not built: %s", type(exc).__name__)
            return
        self.audit.emit(event)


class _Done:
    """What `MaskingResponse.send` hands back for a message it holds or swallows: awaited, it is
    done at once (an empty iterator; no coroutine made). One instance serves every request."""

    __slots__ = ()
    # a builtin method does not bind: `await _DONE` calls `().__iter__()`, a fresh empty iterator
    __await__: Callable[[], Generator[None, None, None]] = ().__iter__  # type: ignore[assignment]


_DONE = _Done()


class MaskingResponse:
    """One response through the sentinel (module docstring: what waits, and for how long)."""

    __slots__ = (
        "caller",
        "coding",
        "decoder",
        "downstream",
        "extra",
        "guard",
        "mode",
        "named",
        "pending",
        "scan",
        "scope",
        "start",
    )
    # set once a body turns out to be a stream (`_begin_stream`); a whole body never needs them
    scan: StreamScan | None
    decoder: Decoder | None
    pending: list[bytes]

    def __init__(
        self,
        guard: ResponseCardGuard,
        scope: Scope,
        send: Send,
        named: str | None = None,
        caller: Callable[[], str | None] | None = None,
    ) -> None:
        self.guard = guard
        self.named = named
        self.caller = caller
        self.scope = scope
        self.downstream = send
        self.mode = "start"  # start | first | pass | stream | refuse | drain
        self.start: Message | None = None
        self.coding: bytes | None = None
        # headers a planned route's steps add to every start (Consent Mode hints), before it is checked
        self.extra: list[tuple[bytes, bytes]] | None = None

    def send(self, message: Message) -> Awaitable[None]:
        """The checking `send`. A plain function handing back what to await (the server's own send's
        awaitable where a message goes on as it is), so a message costs no coroutine of its own; what
        it raises, the app's `await send(...)` sees as before."""
        mode = self.mode
        if mode == "pass":
            return self.downstream(message)
        kind = message["type"]
        if kind == "http.response.start":
            if self.extra:
                message = {**message, "headers": [*(message.get("headers") or []), *self.extra]}
            if not self._holds(message):
                return self.downstream(message)
            if self.mode == "refuse":
                coding = (self.coding or b"").decode("latin-1")[:40]
                return self._refuse(not_checkable(f"content coding {coding!r}"))
            return _DONE  # held until the first body
        if kind == "http.response.body":
            if mode == "first":
                # The common answer: whole in one message, uncompressed, no run of 13 digits.
                if (
                    self.coding is None
                    and not message.get("more_body", False)
                    and not may_hold_card_number(message.get("body", b""))
                ):
                    start = self.start
                    assert start is not None
                    self.mode = "pass"
                    return self._both(start, message)
                return self._first(message)
            if mode == "stream":
                return self._stream(message)
            return _DONE
        if mode == "first" and kind in ("http.response.pathsend", "http.response.zerocopy"):
            return self._refuse(not_checkable("a file sent by the server, not through the middleware"))
        if mode != "drain":
            return self.downstream(message)  # trailers and the like, after the body
        return _DONE

    async def _both(self, start: Message, message: Message) -> None:
        await self.downstream(start)
        await self.downstream(message)

    def _holds(self, message: Message) -> bool:
        """Decide from the start alone (one scan of its headers): True when it is held until the first
        body (a JSON answer) or is to be refused (a coding that cannot be checked: `mode` "refuse");
        False when it goes on now, untouched."""
        status = int(message["status"])
        if status < 200:
            return False  # informational: the real start follows
        if status in PASS_STATUSES or self.scope["method"] == "HEAD":
            self.mode = "pass"
            return False
        headers = message.get("headers") or ()
        # `first_values` inline: the C scan, or the Python one where it declines or is not built
        found = _native_first(headers, START_HEADERS) if _native_first is not None else None
        content_type, coding = found if found is not None else first_values(headers, START_HEADERS)
        guard = self.guard
        if content_type is None or not (guard._json_types.get(content_type) or guard.is_json(content_type)):
            self.mode = "pass"
            return False
        if self.named is not None and self.caller is not None and self.caller() == self.named:
            self.mode = "pass"
            return False
        if coding is not None:
            coding = coding.strip().lower()
            if coding in (b"", b"identity"):
                coding = None
            elif coding not in DECODABLE:
                self.mode = "refuse"
                self.coding = coding
                return True
        self.coding = coding
        self.start = message
        self.mode = "first"
        return True

    async def _first(self, message: Message) -> None:
        body = message.get("body", b"")
        if message.get("more_body", False):
            await self._begin_stream(message)
            return
        assert self.start is not None
        start = self.start
        if self.coding is None:
            if not may_hold_card_number(body):
                await self._send_start(start)
                await self.downstream(message)
                return
            plain = body
        else:
            try:
                plain = decoded_for_inspection(body, self.coding, self.guard.limit)
            except PrivacyError as error:
                why = "the body decodes past the response size limit" if error.status == 413 else "it does not decode"
                await self._refuse(not_checkable(why))
                return
            if not may_hold_card_number(plain):
                await self._send_start(start)
                await self.downstream(message)
                return
        masked_body, count = mask_json_body(plain)
        if not count:
            await self._send_start(start)
            await self.downstream(message)
            return
        self.guard.masked(self.scope, count, "masked")
        headers = without(start.get("headers") or [], *DIGEST_HEADERS, b"content-encoding")
        headers = replace(headers, b"content-length", str(len(masked_body)).encode())
        await self._send_start({**start, "headers": headers})
        await self.downstream({"type": "http.response.body", "body": masked_body, "more_body": False})

    async def _begin_stream(self, message: Message) -> None:
        assert self.start is not None
        self.scan = StreamScan()
        self.pending = []
        # nothing is accumulated: no size limit
        self.decoder = Decoder(self.coding, 1 << 62) if self.coding is not None else None
        await self._send_start(self.start)
        self.mode = "stream"
        await self._stream(message)

    async def _stream(self, message: Message) -> None:
        scan = self.scan
        assert scan is not None
        piece = message.get("body", b"")
        final = not message.get("more_body", False)
        if self.decoder is None:
            before = scan.masked
            ready = scan.feed(piece, final)
            if scan.masked != before:
                self.guard.masked(self.scope, scan.masked - before, "masked")
            if ready or final:
                await self.downstream({"type": "http.response.body", "body": ready, "more_body": not final})
            return
        try:
            scan.feed(self.decoder.feed(piece), final)
        except PrivacyError:
            scan.masked += 1  # undecodable mid-stream: unchecked bytes are never forwarded
        self.pending.append(piece)
        if scan.masked:
            self.mode = "drain"
            self.pending.clear()
            self.guard.masked(self.scope, scan.masked, "cut")
            await self.downstream({"type": "http.response.body", "body": b"", "more_body": False})
            return
        if final or not scan.carry:
            ready = b"".join(self.pending)
            self.pending.clear()
            if ready or final:
                await self.downstream({"type": "http.response.body", "body": ready, "more_body": not final})

    async def _send_start(self, start: Message) -> None:
        self.mode = "pass" if self.mode == "first" else self.mode
        await self.downstream(start)

    async def _refuse(self, error: PrivacyError) -> None:
        self.mode = "drain"
        await send_problem(self.downstream, error, head=self.scope["method"] == "HEAD")
