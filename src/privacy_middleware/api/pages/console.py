"""The privacy officer's console (`<mount>/admin`, needs the policy's admin scope).

The subject-request queue (overdue first) with approve / retry / close, audit findings with a
lockout reset, consent rates per purpose over time (an SVG chart drawn on the server), the audit
chain's status with "verify now", key status, and the loaded policy's promises with what enforces
them. Every action, and every view of the audit trail, is itself written to the audit trail before
it is carried out or shown (no record, no action).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ...audit import events
from ...audit.detectors import LoginGuard
from ...audit.log import AuditLog
from ...audit.query import reveal_side_record, search
from ...errors import PrivacyError
from ...policy.schema import Policy
from ...rights.officer import OfficerActions, available_actions
from ...rights.service import RightsService
from ...store.consent import consent_records
from ...store.database import Database
from ...store.keys import subject_key_counts, tenant_keys
from .center import _safe_next, _when
from .promises import promises
from .web import PageRequest, Pages, first

CHART_DAYS = 14
PALETTE = ("#0b5394", "#b45309", "#0f766e", "#7c3aed", "#be123c", "#4d7c0f")


@dataclass(frozen=True, slots=True)
class ConsoleServices:
    policy: Policy
    database: Database
    rights: RightsService | None
    audit_log: AuditLog
    record: Callable[[events.AuditEvent], Awaitable[None]]
    login_guard: LoginGuard
    tenant: str


def consent_chart(series: dict[str, list[float | None]], days: list[dt.date]) -> dict[str, Any]:
    """Polylines (percent granted per day) in a 600x240 viewBox; gaps where a day has no record."""
    width, height, left, bottom = 600, 240, 40, 24
    plot_w, plot_h = width - left - 10, height - bottom - 10
    step = plot_w / max(len(days) - 1, 1)
    lines = []
    for index, (purpose, values) in enumerate(sorted(series.items())):
        points = []
        for i, value in enumerate(values):
            if value is not None:
                points.append(f"{left + i * step:.1f},{10 + plot_h * (1 - value / 100):.1f}")
        lines.append({"purpose": purpose, "points": " ".join(points), "color": PALETTE[index % len(PALETTE)]})
    ticks = [{"y": 10 + plot_h * (1 - p / 100), "label": f"{p}%"} for p in (0, 25, 50, 75, 100)]
    labels = [
        {"x": left + i * step, "label": day.strftime("%m-%d")}
        for i, day in enumerate(days)
        if i % max(len(days) // 7, 1) == 0
    ]
    return {
        "width": width,
        "height": height,
        "left": left,
        "lines": lines,
        "ticks": ticks,
        "labels": labels,
        "right": width - 10,
        "bottom": height - bottom,
    }


class Console:
    def __init__(self, services: ConsoleServices, pages: Pages) -> None:
        self.s = services
        self.pages = pages
        self.base = f"{pages.mount}/admin"
        self.scope = services.policy.audit.admin_scope
        self.officer = OfficerActions(services.rights, services.record) if services.rights is not None else None

    async def _officer(self, request: Request) -> tuple[PageRequest, Response | None]:
        page = await self.pages.page_request(request)
        if page.principal is None:
            return page, self.pages.redirect(f"{self.base}/signin?next={request.url.path}")
        if not page.principal.has_scope(self.scope):
            return page, self.pages.render(page, "signin.html", self._signin_context(request, "forbidden"), status=403)
        return page, None

    def _signin_context(self, request: Request, error: str) -> dict[str, Any]:
        return {
            "action": f"{self.base}/signin",
            "next": _safe_next(request.query_params.get("next"), self.base),
            "error": error,
            "officer": True,
            "guests": False,
            "shop_login": "",
        }

    def _actions(self) -> OfficerActions:
        if self.officer is None:
            raise PrivacyError(
                "no_shop_adapter", "Subject-rights requests are not configured here (PRIVACY_SHOP_ADAPTER).", 503
            )
        return self.officer

    # -- data ------------------------------------------------------------------------------------

    async def _queue(self, page: PageRequest) -> list[dict[str, Any]]:
        if self.s.rights is None:
            return []
        now = dt.datetime.now(dt.UTC)
        rows = []
        for r in await self.s.rights.repository.listing(limit=100, now=now):
            rows.append(
                {
                    "id": r.id,
                    "kind": page.t(f"kind.{r.kind}"),
                    "status": page.t(f"status.{r.status}"),
                    "created": _when(r.created_at),
                    "due": _when(r.due_at),
                    "overdue": r.overdue(now),
                    "days_left": (r.due_at - now).days,
                    "failed_step": r.failed_step or "",
                }
            )
        return rows

    async def _findings(self) -> list[dict[str, Any]]:
        since = dt.datetime.now(dt.UTC) - dt.timedelta(days=30)
        found = await search(self.s.database, kinds=["detection_finding."], since=since, limit=1000)
        reset = {
            int(r.detail.get("related", {}).get("finding_seq", -1))
            for r in found
            if r.kind == "detection_finding.lockout_reset"
        }
        rows = []
        for r in reversed(found[-200:]):
            detail = r.detail
            finding = str(detail.get("finding", r.kind.removeprefix("detection_finding.")))
            rows.append(
                {
                    "seq": r.seq,
                    "when": _when(r.time),
                    "finding": finding,
                    "title": str(detail.get("title", "")),
                    "network": str(detail.get("network") or ""),
                    "lockout": finding == "lockout" and "ref" in ((r.document or {}).get("refs") or {}),
                    "reset": r.seq in reset,
                }
            )
        return rows[:50]

    async def _consent_rates(self) -> tuple[dict[str, list[float | None]], list[dt.date], list[dict[str, Any]]]:
        today = dt.datetime.now(dt.UTC).date()
        days = [today - dt.timedelta(days=CHART_DAYS - 1 - i) for i in range(CHART_DAYS)]
        since = dt.datetime.combine(days[0], dt.time(), dt.UTC)
        t = consent_records
        async with self.s.database.connect() as conn:
            rows = (
                await conn.execute(
                    sa.select(t.c.purposes, t.c.recorded_at).where(
                        t.c.recorded_at >= since, t.c.method != "account_link"
                    )
                )
            ).all()
        counts: dict[tuple[str, dt.date], list[int]] = defaultdict(lambda: [0, 0])
        for purposes, recorded_at in rows:
            day = (recorded_at if recorded_at.tzinfo else recorded_at.replace(tzinfo=dt.UTC)).date()
            for purpose, granted in (purposes or {}).items():
                counts[(purpose, day)][0] += 1 if granted else 0
                counts[(purpose, day)][1] += 1
        choosable = sorted(
            {p for p, _ in counts}
            | {n for n, p in self.s.policy.purposes.items() if p.consent != "none" or p.legal_basis == "consent"}
        )
        series: dict[str, list[float | None]] = {}
        table = []
        for purpose in choosable:
            values: list[float | None] = []
            for day in days:
                granted, total = counts.get((purpose, day), (0, 0))
                values.append(round(100 * granted / total, 1) if total else None)
            series[purpose] = values
            granted_all = sum(counts.get((purpose, d), (0, 0))[0] for d in days)
            total_all = sum(counts.get((purpose, d), (0, 0))[1] for d in days)
            table.append(
                {
                    "purpose": purpose,
                    "granted": granted_all,
                    "total": total_all,
                    "rate": f"{100 * granted_all / total_all:.0f}%" if total_all else "—",
                }
            )
        return series, days, table

    async def _chain(self) -> dict[str, Any]:
        head = await self.s.audit_log.head(self.s.database)
        if head is None:
            return {"size": 0, "checkpoint_size": 0, "checkpoint_time": "", "key_id": self.s.audit_log.key_id}
        checkpoint_time = (
            _when(dt.datetime.fromtimestamp(head.checkpoint_us / 1_000_000, dt.UTC)) if head.checkpoint_us else ""
        )
        return {
            "size": head.size,
            "checkpoint_size": head.checkpoint_size,
            "checkpoint_time": checkpoint_time,
            "key_id": self.s.audit_log.key_id,
        }

    async def _keys(self) -> dict[str, Any]:
        t = tenant_keys
        async with self.s.database.connect() as conn:
            rows = (
                await conn.execute(
                    sa.select(t.c.purpose, t.c.generation, t.c.created_at, t.c.rewrapped_at)
                    .where(t.c.tenant == self.s.tenant)
                    .order_by(t.c.purpose, t.c.generation)
                )
            ).all()
            subjects = await subject_key_counts(conn, self.s.tenant)
        generations = [
            {
                "purpose": r.purpose,
                "generation": r.generation,
                "created": _when(r.created_at),
                "rewrapped": _when(r.rewrapped_at),
            }
            for r in rows
        ]
        current = max((r.generation for r in rows), default=None)
        total = sum(subjects.values())
        on_current = subjects.get(current, 0) if current is not None else 0
        return {
            "generations": generations,
            "subjects": [{"generation": g, "count": c} for g, c in sorted(subjects.items())],
            "current": current,
            "progress": f"{on_current}/{total}" if total else "—",
        }

    # -- pages -----------------------------------------------------------------------------------

    async def home(self, request: Request) -> Response:
        page, refused = await self._officer(request)
        if refused is not None:
            return refused
        assert page.principal is not None
        findings = await self._findings()
        await self.s.record(
            events.admin_read(principal=page.principal.id, query={"view": "console"}, result_count=len(findings))
        )
        series, days, rates = await self._consent_rates()
        return self.pages.render(
            page,
            "admin_home.html",
            {
                "queue": await self._queue(page),
                "rights_enabled": self.s.rights is not None,
                "findings": findings,
                "chart": consent_chart(series, days),
                "rates": rates,
                "days": f"{days[0].isoformat()} to {days[-1].isoformat()}",
                "chain": await self._chain(),
                "keys": await self._keys(),
                "promises": promises(self.s.policy, self.pages.mount),
                "done": request.query_params.get("done", ""),
                "verified": request.query_params.get("verified", ""),
            },
            section="admin",
        )

    async def request_detail(self, request: Request) -> Response:
        page, refused = await self._officer(request)
        if refused is not None:
            return refused
        if self.s.rights is None:
            raise PrivacyError("not_found", "No such request.", 404)
        found = await self.s.rights.get(request.path_params["request_id"])
        if found is None:
            raise PrivacyError("not_found", "No such request.", 404)
        now = dt.datetime.now(dt.UTC)
        return self.pages.render(
            page,
            "admin_request.html",
            {
                "r": {
                    "id": found.id,
                    "kind": page.t(f"kind.{found.kind}"),
                    "status": page.t(f"status.{found.status}"),
                    "subject": found.subject,
                    "created": _when(found.created_at),
                    "due": _when(found.due_at),
                    "overdue": found.overdue(now),
                    "principal": found.principal,
                    "reason": found.reason or "",
                    "error": found.error or "",
                    "attempts": found.attempts,
                },
                "steps": [
                    {
                        "name": s.name,
                        "outcome": s.outcome,
                        "at": _when(s.at),
                        "officer": str(s.detail.get("officer", "")),
                        "reason": str(s.detail.get("reason", "")),
                    }
                    for s in found.steps
                ],
                "actions": available_actions(found),
                "done": request.query_params.get("done", ""),
            },
            section="admin",
        )

    async def request_action(self, request: Request) -> Response:
        page, refused = await self._officer(request)
        fields = await self.pages.form(request)
        if refused is not None:
            return refused
        assert page.principal is not None
        action = request.path_params["action"]
        reason = first(fields, "reason").strip()[:200] or f"officer {action}"
        request_id = request.path_params["request_id"]
        await self._actions().act(request_id, action, officer=page.principal.id, reason=reason)
        return self.pages.redirect(f"{self.base}/requests/{request_id}?done={action}")

    async def reset_lockout(self, request: Request) -> Response:
        page, refused = await self._officer(request)
        fields = await self.pages.form(request)
        if refused is not None:
            return refused
        assert page.principal is not None
        try:
            seq = int(first(fields, "finding"))
        except ValueError:
            raise PrivacyError("invalid_form", "Name the lockout finding to reset.", 422) from None
        found = await search(self.s.database, kinds=["detection_finding.lockout"], after_seq=seq - 1, limit=1)
        if not found or found[0].seq != seq or found[0].document is None:
            raise PrivacyError("not_found", "No such lockout finding.", 404)
        ref = (found[0].document.get("refs") or {}).get("ref")
        personal = await reveal_side_record(self.s.database, self.s.audit_log.sealer, ref) if ref else None
        if not personal or not personal.get("username"):
            raise PrivacyError("lockout_unknown", "This lockout's account is no longer recorded.", 409)
        # Recorded before the lockout is lifted: the reveal of the account name and the reset itself.
        await self.s.record(events.admin_read(principal=page.principal.id, query={"reveal": seq}, result_count=1))
        await self.s.record(
            events.detection_finding(
                "lockout_reset",
                title="A privacy officer lifted a lockout",
                severity_id=events.SEVERITY_LOW,
                subject=found[0].subject,
                related={"finding_seq": seq, "officer": page.principal.id},
            )
        )
        await self.s.login_guard.reset(personal["username"], personal.get("ip"))
        return self.pages.redirect(f"{self.base}?done=reset")

    async def verify_chain(self, request: Request) -> Response:
        page, refused = await self._officer(request)
        await self.pages.form(request)
        if refused is not None:
            return refused
        assert page.principal is not None
        await self.s.record(events.admin_read(principal=page.principal.id, query={"verify": "chain"}, result_count=0))
        problem = await self.s.audit_log.self_check(self.s.database)
        return self.pages.redirect(f"{self.base}?verified={'bad' if problem else 'ok'}#chain")

    async def signin_page(self, request: Request) -> Response:
        page = await self.pages.page_request(request)
        return self.pages.render(
            page, "signin.html", self._signin_context(request, request.query_params.get("error", "")), section="signin"
        )

    async def signin(self, request: Request) -> Response:
        fields = await self.pages.form(request, csrf=False)
        token = first(fields, "token").strip()
        target = _safe_next(first(fields, "next"), self.base)
        try:
            principal = await self.pages.from_token(token)
        except PrivacyError as error:
            if error.status >= 500:
                raise
            return self.pages.redirect(f"{self.base}/signin?error=token")
        if not principal.has_scope(self.scope):
            return self.pages.redirect(f"{self.base}/signin?error=forbidden")
        return self.pages.redirect(target, set_cookies=[self.pages.session_cookie_for(token, principal)])

    async def signout(self, request: Request) -> Response:
        await self.pages.form(request)
        return self.pages.redirect(f"{self.base}/signin", set_cookies=[self.pages.end_session_cookie()])

    def routes(self) -> list[Route]:
        return [
            Route("/admin", self.pages.guarded(self.home), methods=["GET"]),
            Route("/admin/requests/{request_id}", self.pages.guarded(self.request_detail), methods=["GET"]),
            Route(
                "/admin/requests/{request_id}/{action:str}", self.pages.guarded(self.request_action), methods=["POST"]
            ),
            Route("/admin/lockouts/reset", self.pages.guarded(self.reset_lockout), methods=["POST"]),
            Route("/admin/audit/verify", self.pages.guarded(self.verify_chain), methods=["POST"]),
            Route("/admin/signin", self.pages.guarded(self.signin_page), methods=["GET"]),
            Route("/admin/signin", self.pages.guarded(self.signin), methods=["POST"]),
            Route("/admin/signout", self.pages.guarded(self.signout), methods=["POST"]),
        ]
