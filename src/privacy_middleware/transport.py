"""PrivacyTransport: the shop's own outbound HTTP calls obey the same policy as its responses.

Use it as the transport of the httpx client the shop uses for partners:
`httpx.AsyncClient(transport=middleware.transport())`. For a recipient's host, the JSON body of a
declared endpoint is rewritten by the field engine for that recipient (revealing only what it may
see, dropping the rest); an undeclared endpoint on a recipient's host is refused. Calls to other
hosts pass unchanged: protected fields stay ciphertext because the shop only holds ciphertext.
"""

from __future__ import annotations

import httpx
import orjson

from .errors import PrivacyError
from .fields.engine import Viewer
from .pipeline.disclosure_audit import record_disclosure
from .pipeline.outbound_consent import OutboundConsentGate, outbound_consent_gate
from .policy.compile import RouteTable, compile_outbound
from .services import Services


class OutboundRefused(PrivacyError):
    """Raised to the shop's code: this call would share what the policy does not allow."""


class PrivacyTransport(httpx.AsyncBaseTransport):
    def __init__(
        self,
        services: Services,
        inner: httpx.AsyncBaseTransport | None = None,
        *,
        consent_gate: OutboundConsentGate | None = None,
    ) -> None:
        self.services = services
        self.inner = inner or httpx.AsyncHTTPTransport()
        self.hosts = compile_outbound(services.policy)
        self.consent_gate = consent_gate or outbound_consent_gate(services)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.consent_gate is not None:  # consent first: without it, nothing leaves at all
            await self.consent_gate(request)
        host = self.hosts.get(request.url.host.lower())
        if host is not None:
            if self.services.breach.suspensions.blocks_recipient(host.recipient):
                raise OutboundRefused(
                    "access_suspended",
                    f"Transfers to recipient {host.recipient!r} are suspended pending a security review.",
                    403,
                )
            request = await self._filter(request, host.recipient, host.endpoints)
        return await self.inner.handle_async_request(request)

    async def _filter(self, request: httpx.Request, recipient: str, endpoints: object) -> httpx.Request:
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
        services = self.services
        await services.ensure_started()
        declared = services.policy.recipients[recipient]
        access = services.access
        viewer = Viewer(None, recipient, access.grants(recipient), declared.purposes[0])

        async def blocked(subject: str) -> bool:
            return await access.blocked_for(subject, recipient, viewer.purpose)

        report = await services.fields.disclose(rules, document, viewer, blocked)
        for transform, count in report.transformed.items():
            services.metrics.fields.labels("outbound", transform).inc(count)
        await record_disclosure(
            services.audit,
            Viewer(None, recipient, {}, viewer.purpose),
            report,
            route=f"{request.method} {request.url.path}",  # the recipient names the host
            purpose=viewer.purpose or "",
            principal="shop",
            ip=None,
            strict_categories=tuple(services.policy.audit.strict_categories),
        )
        content = orjson.dumps(document)
        headers = httpx.Headers(request.headers)
        headers["content-length"] = str(len(content))
        return httpx.Request(
            request.method, request.url, headers=headers, content=content, extensions=request.extensions
        )

    async def aclose(self) -> None:
        await self.inner.aclose()
