"""The proxy's upstream client on aiohttp: the same contract as the httpx path, at a fraction of its CPU.

bench/bench_proxy.py measured the proxy's own CPU per request with each client (bench/README.md):
httpx's pure-Python request path cost several times what aiohttp's C parser and writer cost, which
alone kept the proxy far below the shop's own rate. `ProxyApp(..., client_engine="aiohttp")` uses this
module; `serve` picks it whenever aiohttp is installed (the `server` extra).

The rules are the proxy's (asgi/proxy.py): no cookie jar (a `DummyCookieJar`), no redirects followed,
no environment proxies, no default headers of the client's own (no User-Agent, Accept,
Accept-Encoding or Content-Type added), the body relayed undecoded, the target sent exactly as the
middleware matched it (`encoded=True`: never re-quoted), the client's Content-Length kept so the
upstream sees no chunked encoding it did not ask for. Like the httpx client, it connects to the
configured upstream without the outbound guard: the upstream is the operator's own shop.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import httpx
from multidict import CIMultiDict
from yarl import URL

from .headers import RawHeaders

# Headers aiohttp would add on its own; the proxy forwards only what the client and the proxy say.
SKIP_AUTO_HEADERS = ("User-Agent", "Accept", "Accept-Encoding", "Content-Type")


class UpstreamTimeout(Exception):
    """The upstream did not connect or answer within the proxy's timeouts."""


class UpstreamUnreachable(Exception):
    """The upstream could not be reached (refused, reset, DNS) before its answer started."""


class UpstreamBroken(Exception):
    """The upstream's answer broke off after it had started."""


@dataclass(slots=True)
class UpstreamAnswer:
    status: int
    headers: RawHeaders
    response: aiohttp.ClientResponse

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self.response.content.iter_any():
                yield chunk
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise UpstreamBroken(type(exc).__name__) from None

    def close(self) -> None:
        self.response.release()


class AiohttpUpstream:
    """One pooled aiohttp session per proxy, made on first use inside the serving event loop."""

    def __init__(self, timeout: httpx.Timeout, max_connections: int) -> None:
        self.timeout = aiohttp.ClientTimeout(
            total=None,
            connect=timeout.pool if timeout.pool is not None else timeout.connect,
            sock_connect=timeout.connect,
            sock_read=timeout.read,
        )
        self.max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.max_connections, limit_per_host=self.max_connections),
                cookie_jar=aiohttp.DummyCookieJar(),
                timeout=self.timeout,
                auto_decompress=False,
                trust_env=False,
                skip_auto_headers=SKIP_AUTO_HEADERS,
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(
        self, method: str, url: httpx.URL, headers: RawHeaders, body: AsyncIterator[bytes] | None
    ) -> UpstreamAnswer:
        """Send one request; raise UpstreamTimeout or UpstreamUnreachable before an answer starts."""
        pairs = CIMultiDict((k.decode("latin-1"), v.decode("latin-1")) for k, v in headers)
        try:
            response = await self._open().request(
                method,
                URL(str(url), encoded=True),
                headers=pairs,
                data=body,
                allow_redirects=False,
                skip_auto_headers=SKIP_AUTO_HEADERS,
            )
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise UpstreamTimeout(type(exc).__name__) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise UpstreamUnreachable(type(exc).__name__) from exc
        return UpstreamAnswer(response.status, list(response.raw_headers), response)
