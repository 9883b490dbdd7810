"""The one HTTP client for destinations that come from configuration or from a user.

`guarded_client(guard)` returns an `httpx.AsyncClient` whose transport resolves each request's host
through the event loop's resolver, checks every address with `netguard.OutboundGuard`, and then
connects to one of exactly the addresses it checked: the check and the connection never resolve
the name twice, so a name that answers a public address to the check and a private one to the
connection (DNS rebinding) still reaches the checked address. TLS is verified against the host
name, because the connection pool still speaks to the origin by name; only the TCP connect is
pinned (a network backend for httpcore). Redirects are not followed (and when a caller asks httpx
to follow them, each hop passes through this transport and is checked again). Environment proxies
are not used: a proxy would resolve the name itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import socket
import ssl
from collections.abc import Callable, Iterable, Iterator, Mapping
from types import MappingProxyType
from typing import Any

import httpcore
import httpx

from .netguard import IPAddress, OutboundGuard, TargetRefused

log = logging.getLogger("privacy_middleware.outbound")

# (host, port) -> the addresses the transport checked for the request being sent in this task.
_PINNED: contextvars.ContextVar[Mapping[tuple[str, int], tuple[IPAddress, ...]]] = contextvars.ContextVar(
    "privacy_outbound_pinned", default=MappingProxyType({})
)
DEFAULT_PORTS = {"http": 80, "https": 443}
DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)


class OutboundRefused(httpx.ConnectError):
    """An outbound call the guard refused; an `httpx.ConnectError`, so every caller's existing
    'the other side is unreachable' path (fail closed) handles it. `purpose` names the setting or
    feature the destination came from; the message never holds the host or the address."""

    def __init__(self, reason: str, purpose: str, request: httpx.Request) -> None:
        super().__init__(f"outbound target refused ({purpose}): {reason}", request=request)
        self.reason = reason
        self.purpose = purpose


RefusalHook = Callable[[OutboundRefused], None]


class PinnedBackend(httpcore.AsyncNetworkBackend):
    """Connects to the addresses the transport checked for this host, never to a fresh lookup."""

    def __init__(self, guard: OutboundGuard) -> None:
        self.guard = guard
        self.inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = _PINNED.get().get((host, port))
        if addresses is None:  # a connection the transport did not announce: check it here
            addresses = await self.guard.resolve(host, port)
        failure: Exception | None = None
        for address in addresses:
            try:
                return await self.inner.connect_tcp(str(address), port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("outbound calls do not use Unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport (so pytest-httpx and every httpx feature keep working) whose
    connection pool connects through `PinnedBackend`, after checking the request's host."""

    def __init__(
        self,
        guard: OutboundGuard,
        *,
        verify: ssl.SSLContext | bool = True,
        limits: httpx.Limits = DEFAULT_LIMITS,
        on_refused: RefusalHook | None = None,
    ) -> None:
        super().__init__(verify=verify, limits=limits, trust_env=False)
        self.guard = guard
        self.on_refused = on_refused
        # httpx builds its pool without a way to pass a network backend: build the same pool with one.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify, trust_env=True),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=PinnedBackend(guard),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        host = url.raw_host.decode("ascii")
        port = url.port or DEFAULT_PORTS.get(url.scheme, 0)
        try:
            if url.scheme not in DEFAULT_PORTS:
                raise TargetRefused("a scheme other than http or https")
            addresses = _PINNED.get().get((host, port))
            if addresses is None:
                addresses = await self.guard.resolve(host, port)
            else:  # checked by the caller (see `pinned`); this guard decides too
                addresses = tuple(self.guard.check(address) for address in addresses)
        except TargetRefused as exc:
            refused = OutboundRefused(exc.reason, self.guard.purpose, request)
            log.warning("%s", refused)
            if self.on_refused is not None:
                self.on_refused(refused)
            raise refused from None
        with pinned(host, port, addresses):
            return await super().handle_async_request(request)


@contextlib.contextmanager
def pinned(host: str, port: int, addresses: tuple[IPAddress, ...]) -> Iterator[None]:
    """Within this block (same task), connections to `host:port` go to `addresses` only: a caller
    that checked a destination up front (to answer 422 before doing any work) sends to exactly the
    addresses it checked, without a second lookup."""
    token = _PINNED.set({**_PINNED.get(), (host, port): addresses})
    try:
        yield
    finally:
        _PINNED.reset(token)


def guarded_client(
    guard: OutboundGuard,
    *,
    timeout: httpx.Timeout | float = 10.0,
    on_refused: RefusalHook | None = None,
    verify: ssl.SSLContext | bool = True,
) -> httpx.AsyncClient:
    """An AsyncClient that only reaches what `guard` allows, never follows redirects by itself and
    never reads proxy settings or credentials from the environment."""
    return httpx.AsyncClient(
        transport=GuardedTransport(guard, verify=verify, on_refused=on_refused),
        timeout=timeout,
        follow_redirects=False,
        trust_env=False,
    )


class SocketRefused(ConnectionError):
    """A non-HTTP destination (an SMTP server) the guard refused; an OSError, so the caller's
    'server unreachable' path handles it. The message never holds the host or the address."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"outbound target refused: {reason}")
        self.reason = reason


async def connect_socket(guard: OutboundGuard, host: str, port: int, timeout: float) -> socket.socket:
    """A connected TCP socket to one of the addresses `guard` checked for `host`: for clients that
    take a socket (aiosmtplib's `sock=`, with `hostname=` for TLS verification)."""
    try:
        addresses = await guard.resolve(host, port)
    except TargetRefused as exc:
        log.warning("outbound connection refused (%s): %s", guard.purpose, exc.reason)
        raise SocketRefused(exc.reason) from None
    loop = asyncio.get_running_loop()
    failure: OSError = ConnectionError("no address to connect to")
    for address in addresses:
        family = socket.AF_INET if address.version == 4 else socket.AF_INET6
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            await asyncio.wait_for(loop.sock_connect(sock, (str(address), port)), timeout)
            return sock
        except (OSError, TimeoutError) as exc:
            sock.close()
            failure = exc if isinstance(exc, OSError) else ConnectionError("connect timed out")
    raise failure
