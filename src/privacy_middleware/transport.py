"""PrivacyTransport: the shop's own outbound HTTP calls obey the same policy as its responses.

Use it as the transport of the httpx client the shop uses for partners:
`httpx.AsyncClient(transport=middleware.transport())`. For a recipient's host, the JSON body of a
declared endpoint is rewritten by the field engine for that recipient (revealing only what it may
see, dropping the rest); an undeclared endpoint on a recipient's host is refused. Calls to other
hosts pass unchanged: protected fields stay ciphertext because the shop only holds ciphertext.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
import orjson

from .errors import PrivacyError
from .fields.engine import Viewer
from .policy.compile import compile_outbound

if TYPE_CHECKING:
    from .runtime import Runtime


class OutboundRefused(PrivacyError):
    """Raised to the shop's code: this call would share what the policy does not allow."""


class PrivacyTransport(httpx.AsyncBaseTransport):
    def __init__(self, runtime: Runtime, inner: httpx.AsyncBaseTransport | None = None) -> None:
        self.runtime = runtime
        self.inner = inner or httpx.AsyncHTTPTransport()
        self.hosts = compile_outbound(runtime.policy)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        for gate in self.runtime.outbound_gates:  # consent first: without it, nothing leaves at all
            await gate(request)
        host = self.hosts.get(request.url.host.lower())
        if host is not None:
            request = await self._filter(request, host.recipient, host.endpoints)
        return await self.inner.handle_async_request(request)

    async def _filter(self, request: httpx.Request, recipient: str, endpoints: object) -> httpx.Request:
        from .policy.compile import RouteTable

        assert isinstance(endpoints, RouteTable)
        found = endpoints.match(request.method, request.url.path)
        body = await request.aread()
        if found is None:
            if not body:
                return request
            raise OutboundRefused(
                "outbound_not_allowed",
                f"The policy declares no {request.method} {request.url.path} endpoint for recipient "
                f"{recipient!r}; its body was not sent.",
                403,
            )
        rules = found[0]
        if not body:
            return request
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise OutboundRefused(
                "outbound_not_json", f"Calls to recipient {recipient!r} must carry JSON bodies.", 400
            ) from None
        await self.runtime.ensure_started()
        declared = self.runtime.policy.recipients[recipient]
        viewer = Viewer(None, recipient, dict(declared.sees), declared.purposes[0])
        runtime = self.runtime

        async def blocked(subject: str) -> bool:
            return await runtime.blocked_for(subject, recipient, viewer.purpose)

        report = await self.runtime.fields.disclose(rules, document, viewer, blocked)
        for transform, count in report.transformed.items():
            self.runtime.metrics.fields.labels("outbound", transform).inc(count)
        for hook in self.runtime.disclosure_hooks:
            await hook(recipient, viewer.purpose, report, f"{request.method} {request.url.host}{request.url.path}")
        content = orjson.dumps(document)
        headers = httpx.Headers(request.headers)
        headers["content-length"] = str(len(content))
        return httpx.Request(
            request.method, request.url, headers=headers, content=content, extensions=request.extensions
        )

    async def aclose(self) -> None:
        await self.inner.aclose()
