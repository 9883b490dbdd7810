"""Reverse-proxy mode: an ASGI app that forwards every HTTP request to one upstream shop.

Wrapped by `PrivacyMiddleware`, it gives a shop written in any language the same enforcement as an
in-process Python shop. Rules it keeps (docs/integrations.md has the full contract):

- One pooled `httpx.AsyncClient` per upstream, and never a cookie jar: cookies travel as plain
  headers, so a `Set-Cookie` meant for one user can never ride along on another user's request.
- Streaming both ways: the request body is read from `receive` as it arrives, the response is
  relayed chunk by chunk from `aiter_raw()` (encoding untouched), so a large download is never
  held in memory.
- The shop receives exactly the path the middleware matched its plans against (canonically
  re-encoded); dot segments, `//` and backslashes are refused, so a path cannot be normalised into
  a planned route after the middleware let it through as unplanned. Spellings a shop may route to a
  planned handler (case, `;matrix`, `.json`, `?rest_route=`) are placed on that plan by the
  middleware's one canonicaliser (routing/canonical.py), so the plan applies to them too.
- Hop-by-hop headers (RFC 9110 §7.6.1) are removed in both directions; `Forwarded` (RFC 7239) and
  `X-Forwarded-For/-Proto/-Host` are added for the upstream.
- Encoding: by default the upstream is asked for `Accept-Encoding: identity`, because the middleware
  cannot filter a compressed body on a planned route (it refuses it). Compress in front of the
  proxy; pass `identity_encoding=False` to forward the client's `Accept-Encoding` unchanged.
- Host: by default the upstream sees its own host name (`Host: shop.internal:8080`, as httpx sets
  it from the upstream URL) and the client's host in `X-Forwarded-Host` and `Forwarded: host=`;
  `preserve_host=True` forwards the client's `Host` header instead (virtual-hosted upstreams).
- Upstream failures before the response starts become problem+json: a timeout is 504
  `upstream_timeout`, anything else at the network level is 502 `upstream_unavailable`. A failure
  in the middle of a streamed body aborts the connection (the client sees a truncated response,
  never a silently shortened one).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from http.cookiejar import Cookie, CookieJar, DefaultCookiePolicy
from typing import Any
from urllib.parse import quote

import httpx

from ..errors import PrivacyError
from ..types import Receive, Scope, Send
from .headers import RawHeaders, get_header
from .responses import send_problem

logger = logging.getLogger("privacy_middleware.proxy")

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"trailers",
        b"transfer-encoding",
        b"upgrade",
    }
)
# Method overrides would let the shop treat a POST the middleware saw as the GET it plans for.
METHOD_OVERRIDE_HEADERS = frozenset({b"x-http-method-override", b"x-http-method", b"x-method-override"})
# Request headers the proxy owns: `Expect` and forwarding are per hop; overrides are refused.
REQUEST_ONLY_DROPPED = METHOD_OVERRIDE_HEADERS | frozenset(
    {b"expect", b"forwarded", b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host"}
)
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=5.0)
# RFC 3986 pchar minus `%` (the path is already decoded) plus `/`.
PATH_SAFE = "/:@!$&'()*+,;=-._~"


class UpstreamAborted(Exception):
    """The upstream failed after the response had started; the server must drop the connection."""


class _ClientDisconnected(Exception):
    pass


class NoCookieJar(CookieJar):
    """A jar that stores nothing, ever: the proxy's client must not remember any user's cookies."""

    def __init__(self) -> None:
        super().__init__(policy=DefaultCookiePolicy(allowed_domains=()))

    def set_cookie(self, cookie: Cookie) -> None:
        return None

    def extract_cookies(self, response: Any, request: Any) -> None:
        return None


def hop_by_hop(headers: RawHeaders) -> set[bytes]:
    """Hop-by-hop names: the fixed set plus every name listed in `Connection`."""
    names = set(HOP_BY_HOP)
    for key, value in headers:
        if key.lower() == b"connection":
            names.update(token.strip().lower() for token in value.split(b",") if token.strip())
    return names


def end_to_end(headers: RawHeaders, *, also: frozenset[bytes] = frozenset()) -> RawHeaders:
    drop = hop_by_hop(headers) | also
    return [(key, value) for key, value in headers if key.lower() not in drop]


def encode_target(raw: bytes) -> bytes:
    """Percent-encode what may not appear raw in a request target (controls, space, `#`,
    non-ASCII), leaving every existing escape as the client wrote it."""
    if all(0x21 <= b <= 0x7E and b != 0x23 for b in raw):
        return raw
    return b"".join(bytes([b]) if 0x21 <= b <= 0x7E and b != 0x23 else b"%%%02X" % b for b in raw)


class UnforwardablePath(ValueError):
    """A path the upstream could resolve differently from the middleware's route match."""


def canonical_path(path: str) -> bytes:
    """The decoded ASGI path, re-encoded one canonical way.

    The middleware matches its plans on the decoded path; forwarding that same path (not the raw
    one) means the shop cannot see `/x/../orders`, `/orders%2F..` or `//orders` as a planned route
    the middleware did not match. Dot segments, empty segments and backslashes are refused, since
    httpx and many servers normalise them. A `%2F` inside a segment reaches the shop as `/`.
    """
    if not path.startswith("/") or "\\" in path or "\x00" in path:
        raise UnforwardablePath(path)
    segments = path[1:].split("/")
    for i, segment in enumerate(segments):
        if segment in (".", "..") or (segment == "" and i < len(segments) - 1):
            raise UnforwardablePath(path)
    return quote(path, safe=PATH_SAFE).encode("ascii")


def _forwarded_node(host: str) -> str:
    """An RFC 7239 node: IPv6 literals are bracketed and quoted."""
    return f'"[{host}]"' if ":" in host else host


def _quoted(value: str) -> str:
    """A `Forwarded` value as a token when it is one, else a quoted-string."""
    if value and all(c.isalnum() or c in "!#$%&'*+-.^_`|~" for c in value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def bad_request_target() -> PrivacyError:
    return PrivacyError("bad_request_target", "The request path cannot be forwarded.", 400)


class ProxyApp:
    """`ProxyApp("http://shop.internal:8080")`: forward every HTTP request to that upstream.

    Pass `client` to share a pool you configure yourself (its cookie jar is replaced by one that
    stores nothing, and the proxy never follows redirects); otherwise the proxy owns one client
    and closes it at lifespan shutdown or `aclose()`.
    """

    def __init__(
        self,
        upstream: str,
        *,
        client: httpx.AsyncClient | None = None,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        preserve_host: bool = False,
        identity_encoding: bool = True,
        max_connections: int = 100,
        client_engine: str = "httpx",
    ) -> None:
        url = httpx.URL(upstream)
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError("the upstream must be an absolute http:// or https:// URL")
        if url.query or url.fragment:
            raise ValueError("the upstream URL must not carry a query or fragment")
        self.upstream = url
        self.prefix = url.raw_path.rstrip(b"/")
        self.timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self.preserve_host = preserve_host
        self.identity_encoding = identity_encoding
        # Set by `serve` from the middleware's route table: see planned_alias_guard.
        self._own_client = client is None
        self.client = client or httpx.AsyncClient(
            timeout=self.timeout,
            follow_redirects=False,
            trust_env=False,
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        )
        # httpx copies a Cookies object into a plain jar, so the jar itself is handed over.
        self.client.cookies = NoCookieJar()
        # "aiohttp": the same contract through asgi/upstream_aiohttp.py (far less CPU per request).
        if client_engine not in ("httpx", "aiohttp"):
            raise ValueError("client_engine must be 'httpx' or 'aiohttp'")
        if client_engine == "aiohttp" and client is not None:
            raise ValueError("a shared httpx client cannot be used with client_engine='aiohttp'")
        self.client_engine = client_engine
        self._aiohttp: Any = None
        if client_engine == "aiohttp":
            from .upstream_aiohttp import AiohttpUpstream

            self._aiohttp = AiohttpUpstream(self.timeout, max_connections)

    async def aclose(self) -> None:
        if self._own_client:
            await self.client.aclose()
        if self._aiohttp is not None:
            await self._aiohttp.aclose()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        elif kind == "websocket":
            await send({"type": "websocket.close", "code": 1003, "reason": "websockets are not proxied"})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # --- the request ----------------------------------------------------------------------------

    def can_forward(self, path: str) -> bool:
        """False for a path `target` refuses (asked by the route identity before a plan runs)."""
        try:
            canonical_path(path)
        except UnforwardablePath:
            return False
        return True

    def target(self, scope: Scope) -> httpx.URL:
        """The upstream URL for exactly the path the middleware matched its plans against."""
        path = canonical_path(scope["path"])
        query: bytes = scope.get("query_string") or b""
        full = self.prefix + path + (b"?" + encode_target(query) if query else b"")
        return self.upstream.copy_with(raw_path=full)

    def upstream_headers(self, scope: Scope) -> RawHeaders:
        incoming: RawHeaders = list(scope.get("headers") or [])
        headers = end_to_end(incoming, also=REQUEST_ONLY_DROPPED)
        client_host = get_header(incoming, b"host")
        if not self.preserve_host:
            headers = [(k, v) for k, v in headers if k.lower() != b"host"]
        if self.identity_encoding:
            headers = [(k, v) for k, v in headers if k.lower() != b"accept-encoding"]
            headers.append((b"accept-encoding", b"identity"))
        scheme = "https" if scope.get("scheme") in ("https", "wss") else "http"
        peer = scope.get("client")
        peer_ip = str(peer[0]) if peer else "unknown"
        # Appended to what an earlier proxy said, as nginx does; the middleware decides what to trust.
        prior_xff = [v for k, v in incoming if k.lower() == b"x-forwarded-for"]
        prior_fwd = [v for k, v in incoming if k.lower() == b"forwarded"]
        node = [f"for={_forwarded_node(peer_ip)}", f"proto={scheme}"]
        if client_host:
            node.append(f"host={_quoted(client_host.decode('latin-1'))}")
        forwarded = ";".join(node).encode("latin-1")
        headers.append((b"forwarded", b", ".join([*prior_fwd, forwarded])))
        headers.append((b"x-forwarded-for", b", ".join([*prior_xff, peer_ip.encode("latin-1")])))
        headers.append((b"x-forwarded-proto", scheme.encode()))
        if client_host:
            headers.append((b"x-forwarded-host", client_host))
        return headers

    def _has_body(self, scope: Scope) -> bool:
        headers = scope.get("headers") or []
        length = get_header(headers, b"content-length")
        if length is not None:
            return length.strip() not in (b"", b"0")
        return get_header(headers, b"transfer-encoding") is not None

    async def _stream_body(self, receive: Receive) -> AsyncIterator[bytes]:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _ClientDisconnected
            chunk = message.get("body", b"")
            if chunk:
                yield chunk
            if not message.get("more_body", False):
                return

    def build_request(self, scope: Scope, receive: Receive) -> httpx.Request:
        # Built directly (not through client.build_request) so no client-level cookie, header or
        # parameter is ever merged into a user's request.
        content = self._stream_body(receive) if self._has_body(scope) else None
        request = httpx.Request(
            scope["method"], self.target(scope), headers=self.upstream_headers(scope), content=content
        )
        request.extensions["timeout"] = self.timeout.as_dict()
        return request

    # --- the response ---------------------------------------------------------------------------

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._aiohttp is not None:
            await self._http_aiohttp(scope, receive, send)
            return
        head = scope["method"] == "HEAD"
        try:
            request = self.build_request(scope, receive)
        except (httpx.InvalidURL, UnforwardablePath):
            await send_problem(send, bad_request_target(), head=head)
            return
        try:
            response = await self.client.send(request, stream=True, follow_redirects=False)
        except _ClientDisconnected:
            return
        except httpx.TimeoutException as exc:
            logger.warning("upstream %s timed out (%s)", self.upstream.host, type(exc).__name__)
            await send_problem(
                send, PrivacyError("upstream_timeout", "The shop did not answer in time.", 504), head=head
            )
            return
        except httpx.TransportError as exc:
            logger.warning("upstream %s unavailable (%s)", self.upstream.host, type(exc).__name__)
            await send_problem(
                send, PrivacyError("upstream_unavailable", "The shop cannot be reached.", 502), head=head
            )
            return
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status_code,
                    "headers": end_to_end(list(response.headers.raw)),
                }
            )
            try:
                async for chunk in response.aiter_raw():
                    if chunk:
                        await send({"type": "http.response.body", "body": chunk, "more_body": True})
            except httpx.TransportError as exc:
                logger.warning("upstream %s failed mid-response (%s)", self.upstream.host, type(exc).__name__)
                raise UpstreamAborted("the shop's response broke off") from None
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            await response.aclose()

    async def _http_aiohttp(self, scope: Scope, receive: Receive, send: Send) -> None:
        """`_http` through the aiohttp client: the same answers, statuses and streaming."""
        from .upstream_aiohttp import UpstreamBroken, UpstreamTimeout, UpstreamUnreachable

        head = scope["method"] == "HEAD"
        try:
            url = self.target(scope)
        except (httpx.InvalidURL, UnforwardablePath):
            await send_problem(send, bad_request_target(), head=head)
            return
        disconnected = False

        async def body() -> AsyncIterator[bytes]:
            nonlocal disconnected
            try:
                async for chunk in self._stream_body(receive):
                    yield chunk
            except _ClientDisconnected:
                disconnected = True
                raise

        try:
            answer = await self._aiohttp.send(
                scope["method"], url, self.upstream_headers(scope), body() if self._has_body(scope) else None
            )
        except UpstreamTimeout as exc:
            logger.warning("upstream %s timed out (%s)", self.upstream.host, exc)
            await send_problem(
                send, PrivacyError("upstream_timeout", "The shop did not answer in time.", 504), head=head
            )
            return
        except UpstreamUnreachable as exc:
            if disconnected:
                return
            logger.warning("upstream %s unavailable (%s)", self.upstream.host, exc)
            await send_problem(
                send, PrivacyError("upstream_unavailable", "The shop cannot be reached.", 502), head=head
            )
            return
        try:
            await send({"type": "http.response.start", "status": answer.status, "headers": end_to_end(answer.headers)})
            try:
                async for chunk in answer.chunks():
                    if chunk:
                        await send({"type": "http.response.body", "body": chunk, "more_body": True})
            except UpstreamBroken as exc:
                logger.warning("upstream %s failed mid-response (%s)", self.upstream.host, exc)
                raise UpstreamAborted("the shop's response broke off") from None
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            answer.close()
