"""The rights service: records each data-subject request durably and carries it out.

Every request is written to the store before anything is done, and each step of it is appended to
its history, so a crash or a failing shop never loses a request: it stays open with the failed step
named, and `retry_open()` (run periodically) resumes it where it stopped. Erasure destroys the
subject's key only after the shop has erased or anonymised its data, so a failure never leaves
readable copies without a retry path.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import httpx
import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ..audit.events import AuditEvent, data_access, detection_finding, subject_request
from ..crypto.results import ErasureResult, SubjectHoldings
from ..errors import PrivacyError
from ..fields.engine import FieldCipher, FieldEngine
from ..keyfiles import load_or_create_signing_key
from ..netguard import OutboundGuard, TargetRefused
from ..outbound import OutboundRefused, guarded_client, pinned
from ..policy.access import objectable
from ..policy.schema import Policy
from ..store.bus import Bus
from ..store.database import Database
from ..store.guests import forget_guest
from ..store.holdings import stored_counts
from ..store.record_owners import forget_record_owners
from ..store.rights import (
    KeyReused,
    RightsRepository,
    RightsRequest,
    Step,
    SubjectFlags,
    forget_audit_side_records,
    forget_consent,
    utcnow,
)
from .adapter import ErasureOutcome, ShopAdapter, ShopAdapterError
from .coverage import erasure_coverage
from .deadlines import due_date
from .export import build_export
from .flags import SubjectFlagsCache
from .middleware_only import reaches_shop
from .receipts import ErasureReceiptSigner

log = logging.getLogger("privacy_middleware.rights")

ERASURE_STEPS = ("shop", "keys", "consent", "middleware_store")
EXPORT_CATEGORY = "rights.export"


class Eraser(Protocol):
    async def erase_subject(self, subject: str) -> ErasureResult: ...


class KeyAccess(FieldCipher, Protocol):
    """What the service needs from the key service handle: sealing exports and crypto-shredding."""

    async def get(self) -> Any: ...


class AuditSink(Protocol):
    def emit(self, event: AuditEvent) -> None: ...


def _bad_target(message: str) -> PrivacyError:
    return PrivacyError("invalid_transfer_target", message, 422, extra={"field": "url"})


def validate_transfer_url(url: Any) -> str:
    """Only https without credentials; which addresses it may reach is `check_transfer_target`'s
    question (it resolves the name)."""
    if not isinstance(url, str) or len(url) > 2048:
        raise _bad_target("Give the receiving provider's https URL.")
    try:
        parts = httpx.URL(url)
    except httpx.InvalidURL:
        raise _bad_target("The transfer target must be an https URL without credentials.") from None
    if parts.scheme != "https" or not parts.raw_host or parts.userinfo:
        raise _bad_target("The transfer target must be an https URL without credentials.")
    return url


def _not_allowed() -> PrivacyError:
    return PrivacyError(
        "outbound_target_not_allowed",
        "The transfer target must be a public host: its name resolves to an address this service may not reach.",
        422,
        extra={"field": "url"},
    )


def receipt_key_path(data_dir: Path) -> Path:
    return Path(data_dir) / "rights-receipt-key.pem"


class RightsService:
    def __init__(
        self,
        *,
        policy: Policy,
        database: Database,
        adapter: ShopAdapter,
        fields: FieldEngine,
        keys: KeyAccess,
        http: httpx.AsyncClient,
        signing_key: Ed25519PrivateKey,
        audit: AuditSink | None = None,
        bus: Bus | None = None,
        flags: SubjectFlagsCache | None = None,
        max_attempts: int = 20,
        transfer_timeout: float = 30.0,
        transfer_guard: OutboundGuard | None = None,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.policy = policy
        self.database = database
        self.adapter = adapter
        self.fields = fields
        self.keys = keys
        self.http = http
        self.signer = ErasureReceiptSigner(signing_key)
        self.audit = audit
        self.flags = flags or SubjectFlagsCache(database, bus=bus)
        self.repository = RightsRepository(database)
        self.max_attempts = max_attempts
        self.transfer_timeout = transfer_timeout
        # User-supplied destinations get a client of their own: public addresses only unless the
        # operator named networks in PRIVACY_OUTBOUND__TRANSFER_ALLOW.
        self.transfer_guard = transfer_guard or OutboundGuard(purpose="portability transfer")
        self.clock = clock
        self._locks: dict[str, asyncio.Lock] = {}
        self._waiting: dict[str, int] = {}

    @classmethod
    def for_runtime(
        cls,
        runtime: Any,
        adapter: ShopAdapter,
        *,
        audit: AuditSink | None = None,
        bus: Bus | None = None,
        signing_key: Ed25519PrivateKey | None = None,
    ) -> RightsService:
        """Built from a Runtime: its policy, store, field engine, key service and HTTP client.

        The receipt signing key defaults to `<data_dir>/rights-receipt-key.pem` (created, 0600).
        """
        configured = runtime.settings.receipt_signing_key_file  # the same file on every instance
        key = signing_key or load_or_create_signing_key(configured or receipt_key_path(runtime.settings.data_dir))
        return cls(
            policy=runtime.policy,
            database=runtime.database,
            adapter=adapter,
            fields=runtime.fields,
            keys=runtime.keys,
            http=runtime.http,
            signing_key=key,
            audit=audit,
            bus=bus,
            transfer_guard=runtime.settings.outbound.transfer_guard(),
        )

    # -- requests --------------------------------------------------------------------------------

    def _emit(self, event: AuditEvent) -> None:
        if self.audit is not None:
            self.audit.emit(event)

    def _outbound_refused(self, subject: str, principal: str, reason: str) -> None:
        """Audit a refused transfer target: the kind of address, never the URL or the address."""
        log.warning("portability transfer refused: the target resolves to %s (field url)", reason)
        self._emit(
            detection_finding(
                "outbound_target_refused",
                title="outbound call to a non-public address refused",
                subject=subject,
                related={"purpose": "portability transfer", "field": "url", "reason": reason, "principal": principal},
            )
        )

    def _state_event(self, request: RightsRequest, state: str, categories: Sequence[str] = ()) -> None:
        self._emit(
            subject_request(
                subject=request.subject,
                request=request.kind,
                state=state,
                request_id=request.id,
                principal=request.principal,
                categories=categories,
            )
        )

    def denied(self, *, kind: str, subject: str, principal: str) -> None:
        """Audit a refused attempt to act on someone else's data (the caller answers 403)."""
        self._emit(
            subject_request(
                subject=subject,
                request=kind,
                state="denied",
                request_id="denied",
                principal=principal,
            )
        )

    async def submit(
        self,
        kind: str,
        subject: str,
        *,
        principal: str,
        reason: str | None = None,
        idempotency_key: str | None = None,
        reuse_open: bool = True,
        reuse_completed: bool = False,
    ) -> tuple[RightsRequest, bool]:
        now = self.clock()
        try:
            request, new = await self.repository.submit(
                kind=kind,
                subject=subject,
                principal=principal,
                due_at=due_date(now, self.policy.rights),
                reason=reason,
                idempotency_key=idempotency_key,
                reuse_open=reuse_open,
                reuse_completed=reuse_completed,
                now=now,
            )
        except KeyReused:
            raise PrivacyError(
                "idempotency_key_reused", "This Idempotency-Key was used for another request.", 409
            ) from None
        if new:
            self._state_event(request, "received")
        return request, new

    async def _step(
        self,
        request: RightsRequest,
        name: str,
        outcome: Any,
        *,
        status: str | None = None,
        detail: dict[str, Any] | None = None,
        result: dict[str, Any] | None = None,
        error: str | None = None,
        count_attempt: bool = False,
    ) -> RightsRequest:
        updated = await self.repository.record_step(
            request.id,
            Step(name, outcome, self.clock(), detail or {}),
            status=status,
            result=result,
            error=error,
            count_attempt=count_attempt,
        )
        if status in ("completed", "failed", "rejected"):
            self._state_event(updated, status)
        return updated

    @contextlib.asynccontextmanager
    async def _lock(self, request_id: str) -> AsyncIterator[None]:
        """One worker per request in this process (others resume from the stored steps)."""
        lock = self._locks.setdefault(request_id, asyncio.Lock())
        self._waiting[request_id] = self._waiting.get(request_id, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._waiting[request_id] -= 1
            if not self._waiting[request_id]:
                del self._waiting[request_id]
                self._locks.pop(request_id, None)

    async def requests_of(self, subject: str) -> list[RightsRequest]:
        return await self.repository.for_subject(subject)

    async def get(self, request_id: str) -> RightsRequest | None:
        return await self.repository.get(request_id)

    # -- access and portability -----------------------------------------------------------------

    async def _key_holdings(self, subject: str) -> SubjectHoldings:
        try:
            service = await self.keys.get()
            holdings: SubjectHoldings = await service.subject_holdings(subject)
        except (OSError, httpx.HTTPError) as exc:
            raise PrivacyError("key_service_unavailable", "The key service cannot be reached; try again.", 503) from exc
        return holdings

    async def ensure_known(self, subject: str) -> None:
        """A subject nobody holds anything about is a mistake (a typo, a wrong id), never a receipt.

        Known means: the middleware holds a key, a token, a consent record, an audit event, a rights
        request or flags for it, or the shop adapter returns records. A shop that cannot answer does
        not make the subject unknown: the request goes ahead and is retried.
        """
        if (await stored_counts(self.database, subject)).any:
            return
        held = await self._key_holdings(subject)
        if held.has_key or held.erased or held.tokens:
            return
        if reaches_shop(self.adapter):
            try:
                if await self.adapter.records(subject):
                    return
            except ShopAdapterError:
                return
        raise PrivacyError("unknown_subject", "Nothing is held about this subject; check the identifier.", 404)

    async def _export_document(self, subject: str) -> dict[str, Any]:
        history = [r.to_json() for r in await self.repository.for_subject(subject)]
        flags = await self.flags.get(subject)
        return await build_export(
            keys=await self._key_holdings(subject),
            subject=subject,
            policy=self.policy,
            adapter=self.adapter,
            engine=self.fields,
            database=self.database,
            flags=flags,
            requests=history,
            now=self.clock(),
        )

    async def export(
        self, subject: str, *, principal: str, reason: str | None = None, idempotency_key: str | None = None
    ) -> tuple[RightsRequest, dict[str, Any]]:
        """Build the export now (an access request is answered at once) and record it.

        An export that cannot be built (shop or key service down) fails its request, so nothing is
        left open that nobody will finish; the caller sees 503 and simply asks again.
        """
        await self.ensure_known(subject)
        request, new = await self.submit(
            "access",
            subject,
            principal=principal,
            reason=reason,
            idempotency_key=idempotency_key,
            reuse_open=False,
        )
        try:
            document = await self._export_document(subject)
        except (ShopAdapterError, PrivacyError) as exc:
            why = str(exc) if isinstance(exc, ShopAdapterError) else exc.code
            if request.is_open:
                await self._step(request, "export", "failed", error=why, count_attempt=True, status="failed")
            raise PrivacyError(
                "export_unavailable", "Your data could not be gathered right now; try again.", 503
            ) from None
        categories = sorted({c for r in document["shop"]["records"] for c in r["categories"]})
        if new:
            request = await self._step(
                request,
                "export",
                "done",
                status="completed",
                detail={"records": len(document["shop"]["records"]), "categories": categories},
            )
        self._emit(
            data_access(
                principal=principal,
                subject=subject,
                categories=categories or ["user"],
                purpose="subject_rights",
                action="export",
                record_count=len(document["shop"]["records"]),
                recipient=self.policy.identity.customer_recipient,
            )
        )
        return request, document

    async def transfer(
        self,
        subject: str,
        url: Any,
        *,
        principal: str,
        reason: str | None = None,
        idempotency_key: str | None = None,
    ) -> RightsRequest:
        """Send the export to another provider. A failed send marks the request failed with the
        reason; the export is kept (sealed for the subject) and can be fetched with `kept_export`."""
        target = validate_transfer_url(url)
        parsed = httpx.URL(target)
        host, port = parsed.raw_host.decode("ascii"), parsed.port or 443
        try:  # resolved once: the send below goes to exactly these addresses
            addresses = await self.transfer_guard.resolve(host, port)
        except TargetRefused as exc:
            self._outbound_refused(subject, principal, exc.reason)
            raise _not_allowed() from None
        request, new = await self.submit(
            "transfer",
            subject,
            principal=principal,
            reason=reason,
            idempotency_key=idempotency_key,
            reuse_open=False,
        )
        if not new:
            return request
        async with self._lock(request.id):
            request = await self._step(request, "export", "started", status="in_progress")
            try:
                document = await self._export_document(subject)
            except ShopAdapterError as exc:
                return await self._step(request, "export", "failed", status="failed", error=str(exc))
            payload = orjson.dumps(document)
            sealed = await self.keys.encrypt(payload.decode(), category=EXPORT_CATEGORY, subject=subject)
            await self.repository.keep_export(request.id, subject, sealed)
            request = await self._step(
                request, "export", "done", detail={"bytes": len(payload)}, result={"export_kept": True}
            )
            try:
                async with guarded_client(self.transfer_guard, timeout=self.transfer_timeout) as client:
                    with pinned(host, port, addresses):
                        response = await client.post(
                            target,
                            content=payload,
                            headers={"content-type": "application/json", "x-privacy-request-id": request.id},
                        )
            except OutboundRefused as exc:  # a redirect or pool path the guard refused
                self._outbound_refused(subject, principal, exc.reason)
                return await self._step(
                    request,
                    "send",
                    "failed",
                    status="failed",
                    error="transfer target not allowed (outbound_target_not_allowed)",
                    result={"target_host": host},
                )
            except httpx.HTTPError as exc:
                return await self._step(
                    request,
                    "send",
                    "failed",
                    status="failed",
                    error=f"transfer target unreachable ({type(exc).__name__})",
                    result={"target_host": host},
                )
            if not response.is_success:
                return await self._step(
                    request,
                    "send",
                    "failed",
                    status="failed",
                    error=f"transfer target answered HTTP {response.status_code}",
                    result={"target_host": host, "target_status": response.status_code},
                )
            return await self._step(
                request,
                "send",
                "done",
                status="completed",
                result={"target_host": host, "target_status": response.status_code},
            )

    async def kept_export(self, request: RightsRequest) -> dict[str, Any] | None:
        kept = await self.repository.kept_export(request.id)
        if kept is None:
            return None
        subject, sealed = kept
        clear = await self.keys.decrypt(sealed, category=EXPORT_CATEGORY, subject=subject)
        document: dict[str, Any] = orjson.loads(clear)
        return document

    # -- erasure --------------------------------------------------------------------------------

    def legal_holds(self) -> dict[str, str]:
        return {hold.category: hold.reason for hold in self.policy.rights.legal_holds}

    async def erase(
        self, subject: str, *, principal: str, reason: str | None = None, idempotency_key: str | None = None
    ) -> RightsRequest:
        """Erase the subject everywhere; a repeat returns the first completed request (same receipt).

        An unknown subject is refused (404 `unknown_subject`) before anything is recorded.
        """
        if await self.repository.completed(subject, "erasure") is None:
            await self.ensure_known(subject)
        request, _ = await self.submit(
            "erasure",
            subject,
            principal=principal,
            reason=reason,
            idempotency_key=idempotency_key,
            reuse_completed=True,
        )
        if not request.is_open:
            return request
        return await self.process_erasure(request)

    async def on_account_closed(self, subject: str) -> RightsRequest:
        """The shop's account-closure route succeeded: clear all account-bound data at once."""
        return await self.erase(subject, principal=subject, reason="account_closure")

    async def process_erasure(self, request: RightsRequest) -> RightsRequest:
        async with self._lock(request.id):
            fresh = await self.repository.get(request.id)
            if fresh is None or not fresh.is_open:
                return fresh or request
            return await self._erase_steps(fresh)

    async def _erase_steps(self, request: RightsRequest) -> RightsRequest:
        subject = request.subject
        done = request.done_steps()
        if request.status == "received":
            request = await self._step(request, "erasure", "started", status="in_progress")
        # 1. The shop's own data first: deleted, or anonymised where a legal hold applies.
        if "shop" not in done:
            try:
                outcome = await self._shop_erase(subject)
            except ShopAdapterError as exc:
                return await self._erasure_failed(request, "shop", str(exc))
            request = await self._step(
                request,
                "shop",
                "done",
                detail={
                    "deleted": outcome.deleted,
                    "anonymised": outcome.anonymised,
                    "kept": [{"item": item, "reason": why} for item, why in outcome.kept],
                },
            )
        # 2. Only now crypto-shred: every ciphertext the shop still holds becomes unreadable.
        if "keys" not in done:
            try:
                service = await self.keys.get()
                shredded: ErasureResult = await service.erase_subject(subject)
            except (PrivacyError, OSError, httpx.HTTPError) as exc:
                return await self._erasure_failed(request, "keys", f"key service failed ({type(exc).__name__})")
            request = await self._step(
                request,
                "keys",
                "done",
                detail={
                    "keys_destroyed": shredded.keys_destroyed,
                    "tokens_destroyed": shredded.tokens_destroyed,
                    "tombstones_written": shredded.tombstones_written,
                },
            )
        # 3. Consent identities (the subject's records, linked visitors, links).
        if "consent" not in done:
            try:
                dropped = await forget_consent(self.database, subject)
            except Exception as exc:
                return await self._erasure_failed(request, "consent", f"store failed ({type(exc).__name__})")
            request = await self._step(request, "consent", "done", detail=dropped)
        # 4. The middleware's own rights data (kept exports, flags); request records stay as proof.
        if "middleware_store" not in done:
            try:
                forgotten = await self.repository.forget_subject(subject)
                forgotten["audit_side_records"] = await forget_audit_side_records(self.database, subject)
                forgotten["guest_capabilities"] = await forget_guest(self.database, subject)
                forgotten["record_owners"] = await forget_record_owners(self.database, subject)
                await self.flags.invalidate(subject)
            except Exception as exc:
                return await self._erasure_failed(request, "middleware_store", f"store failed ({type(exc).__name__})")
            request = await self._step(request, "middleware_store", "done", detail=forgotten)
        receipt = self._receipt(request)
        request = await self._step(request, "receipt", "done", status="completed", result={"receipt": receipt})
        self._emit(
            data_access(
                principal=request.principal,
                subject=subject,
                categories=["user"],  # the subject's data as a whole
                purpose="subject_rights",
                action="erase",
                decision="allowed",
            )
        )
        return request

    async def _shop_erase(self, subject: str) -> ErasureOutcome:
        try:
            return await self.adapter.erase(subject, keep_for_legal_hold=self.legal_holds())
        except ShopAdapterError as exc:
            if not exc.retryable:
                raise
        await asyncio.sleep(0.05)  # one quick retry for a transient failure; later ones are periodic
        return await self.adapter.erase(subject, keep_for_legal_hold=self.legal_holds())

    async def _erasure_failed(self, request: RightsRequest, step: str, error: str) -> RightsRequest:
        """The request stays open with the failed step named, unless it has failed too often."""
        give_up = request.attempts + 1 >= self.max_attempts
        log.warning("erasure %s: step %s failed (%s)", request.id, step, "giving up" if give_up else "will retry")
        return await self._step(
            request, step, "failed", error=error, count_attempt=True, status="failed" if give_up else None
        )

    def _receipt(self, request: RightsRequest) -> str:
        details = {s.name: s.detail for s in request.steps if s.outcome == "done"}
        shop = details.get("shop", {})
        keys = details.get("keys", {})
        info = self.policy.policy
        claims = {
            "iss": info.controller or info.name,
            "sub": request.subject,
            "jti": request.id,
            "iat": int(self.clock().timestamp()),
            "type": "erasure_receipt",
            "policy_version": info.version,
            "requested_at": request.created_at.isoformat(),
            "shop": {
                "source": self.adapter.name,
                "reached": reaches_shop(self.adapter),
                "deleted": shop.get("deleted", []),
                "anonymised": shop.get("anonymised", []),
                "kept": shop.get("kept", []),
            },
            "crypto_shredding": {
                "keys_destroyed": keys.get("keys_destroyed", 0),
                "tokens_destroyed": keys.get("tokens_destroyed", 0),
            },
            "consent": details.get("consent", {}),
            "middleware_store": details.get("middleware_store", {}),
            **erasure_coverage(self.adapter, kept=bool(shop.get("kept"))),
        }
        return self.signer.sign(claims)

    async def retry_open(self) -> list[RightsRequest]:
        """Resume open erasures (the periodic task calls this); returns what was retried."""
        retried = []
        for request in await self.repository.open_requests("erasure"):
            retried.append(await self.process_erasure(request))
        return retried

    # -- rectification, restriction, objection ---------------------------------------------------

    async def rectify(
        self,
        subject: str,
        changes: Any,
        *,
        principal: str,
        reason: str | None = None,
        idempotency_key: str | None = None,
    ) -> RightsRequest:
        if not isinstance(changes, dict) or not changes:
            raise PrivacyError("invalid_rectification", "Send the corrections as a non-empty object.", 422)
        request, new = await self.submit(
            "rectification",
            subject,
            principal=principal,
            reason=reason,
            idempotency_key=idempotency_key,
            reuse_open=False,
        )
        if not new:
            return request
        try:
            changed = await self.adapter.rectify(subject, changes)
        except ShopAdapterError as exc:
            if exc.retryable:
                await self._step(request, "shop", "failed", status="failed", error=str(exc))
                raise PrivacyError(
                    "shop_unavailable", "The shop could not apply the correction; try again.", 503
                ) from None
            await self._step(request, "shop", "failed", status="rejected", error=str(exc))
            raise PrivacyError("rectification_rejected", str(exc), 422) from None
        return await self._step(request, "shop", "done", status="completed", result={"changed": sorted(changed)})

    async def set_restriction(
        self, subject: str, restricted: bool, *, principal: str, reason: str | None = None
    ) -> tuple[RightsRequest, SubjectFlags]:
        request, _ = await self.submit("restriction", subject, principal=principal, reason=reason, reuse_open=False)
        flags = await self.flags.set(subject, restricted=restricted)
        request = await self._step(
            request,
            "restricted" if restricted else "lifted",
            "done",
            status="completed",
            result={"restricted": restricted},
        )
        return request, flags

    def validate_objection(self, purposes: Any) -> list[str]:
        if not isinstance(purposes, list) or not purposes or not all(isinstance(p, str) for p in purposes):
            raise PrivacyError("invalid_objection", "Name the purposes you object to as a list.", 422)
        for name in purposes:
            purpose = self.policy.purposes.get(name)
            if purpose is None:
                raise PrivacyError(
                    "unknown_purpose",
                    "One of the purposes is not in the privacy policy.",
                    422,
                    extra={"purpose": name[:64]},
                )
            if not objectable(purpose):
                raise PrivacyError(
                    "objection_not_applicable",
                    "Processing needed for a contract or a legal obligation cannot be objected to.",
                    422,
                    extra={"purpose": name},
                )
        return sorted(set(purposes))

    async def object_to(
        self,
        subject: str,
        purposes: Any,
        *,
        principal: str,
        reason: str | None = None,
        withdraw: bool = False,
    ) -> tuple[RightsRequest, SubjectFlags]:
        names = self.validate_objection(purposes)
        request, _ = await self.submit("objection", subject, principal=principal, reason=reason, reuse_open=False)
        if withdraw:
            flags = await self.flags.set(subject, remove_objections=names)
        else:
            flags = await self.flags.set(subject, add_objections=names)
        request = await self._step(
            request,
            "withdrawn" if withdraw else "objected",
            "done",
            status="completed",
            result={"purposes": names, "withdrawn": withdraw},
        )
        return request, flags
