"""The shopper privacy centre (`<mount>/center`): consent, history, who saw my data, my data,
restriction and objection, account deletion, clearing browsing data, and the notice.

Every page is a plain HTML form: it works without JavaScript. Consent changes go through the same
ConsentService as the JSON API (same records, receipts and cookie); rights go through the
RightsService (same request records, audit events and signed erasure receipt).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ...audit.query import access_log
from ...consent.consent_mode import consent_mode
from ...consent.cookie_filter import EXPIRED, cookie_purposes, expiring_set_cookies
from ...consent.decisions import mechanism
from ...consent.service import ConsentService, Resolution, StoreUnavailable, new_visitor_id
from ...consent.signals import parse_cookie_header, request_signals
from ...context import get_context
from ...errors import PrivacyError
from ...guests.service import GuestService
from ...policy.access import OBJECTABLE_BASES
from ...policy.render import render
from ...policy.schema import Policy
from ...rights.service import RightsService
from ...store.consent_records import Holder
from ...store.database import Database
from ...store.policies import policy_history
from .web import SESSION_COOKIE, PageRequest, Pages, first


@dataclass(frozen=True, slots=True)
class CenterServices:
    """What the centre needs, and nothing else."""

    policy: Policy
    consent: ConsentService
    rights: RightsService | None
    database: Database
    cookie_domains: Sequence[str]
    link_visitor: Callable[[Any, str], Awaitable[None]]
    rectifiable: Sequence[str] = ()
    guests: GuestService | None = None


def _when(value: dt.datetime | str | None) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


class Center:
    def __init__(self, services: CenterServices, pages: Pages) -> None:
        self.s = services
        self.pages = pages
        self.base = f"{pages.mount}/center"

    # -- helpers ---------------------------------------------------------------------------------

    def _client_ip(self, request: Request) -> str | None:
        ctx = get_context(request.scope)
        return ctx.client_ip if ctx is not None else None

    def _cookie(self, request: Request) -> str | None:
        return request_signals(request.scope["headers"], cookie_name=self.s.consent.cookies.cookie_name).consent_cookie

    def _holder(self, page: PageRequest, *, write: bool) -> Holder | None:
        if page.subject:
            return Holder.subject(page.subject)
        verified = self.s.consent.verify_cookie(self._cookie(page.request))
        if verified is not None and (verified.holder.kind == "visitor" or not write):
            return verified.holder
        return Holder.visitor(new_visitor_id()) if write else None

    async def _resolve(self, page: PageRequest, cookie: str | None) -> Resolution:
        gpc = request_signals(page.request.scope["headers"]).gpc
        objected: frozenset[str] = frozenset()
        restricted = False
        if page.subject and self.s.rights is not None:
            flags = await self.s.rights.flags.get(page.subject)
            objected, restricted = frozenset(flags.objections), flags.restricted
        return await self.s.consent.resolve(
            subject=page.subject, consent_cookie=cookie, gpc=gpc, objected=objected, restricted=restricted
        )

    def _signed_in(self, page: PageRequest) -> Response | None:
        """A redirect to sign-in for pages that need an account (and a shop adapter)."""
        if page.subject is None:
            return self.pages.redirect(f"{self.base}/signin?next={page.request.url.path}")
        return None

    def _rights(self) -> RightsService:
        if self.s.rights is None:
            raise PrivacyError(
                "no_shop_adapter", "Subject-rights requests are not configured here (PRIVACY_SHOP_ADAPTER).", 503
            )
        return self.s.rights

    def _purpose_rows(self, resolution: Resolution, t: Any) -> list[dict[str, Any]]:
        rows = []
        for name, decision in resolution.decision.purposes.items():
            purpose = self.s.policy.purposes[name]
            choosable = name in self.s.consent.choosable
            gpc_locked = resolution.gpc and purpose.gpc_opt_out
            rows.append(
                {
                    "name": name,
                    "description": purpose.description or name,
                    "legal_basis": t(f"basis.{purpose.legal_basis}"),
                    "mechanism": mechanism(purpose) if choosable else "none",
                    "choosable": choosable and not gpc_locked,
                    "gpc_locked": gpc_locked,
                    "allowed": decision.allowed,
                    "reason": decision.reason,
                    "cookie_class": purpose.cookie_class,
                }
            )
        rows.sort(key=lambda r: (not r["choosable"] and not r["gpc_locked"], r["name"]))
        return rows

    # -- consent ---------------------------------------------------------------------------------

    async def home(self, request: Request) -> Response:
        page = await self.pages.page_request(request)
        cookie, set_cookies = self._cookie(request), []
        holder = self._holder(page, write=False)
        if request_signals(request.scope["headers"]).gpc and holder is not None:
            # As the JSON API does: persist the GPC opt-out, so that its later absence is no opt-in.
            try:
                change = await self.s.consent.apply_gpc(
                    holder, client_ip=self._client_ip(request), user_agent=request.headers.get("user-agent")
                )
            except StoreUnavailable:
                change = None
            if change is not None:
                cookie, set_cookies = change.cookie, [change.set_cookie]
        resolution = await self._resolve(page, cookie)
        response = self.pages.render(
            page,
            "center_home.html",
            {
                "purposes": self._purpose_rows(resolution, page.t),
                "resolution": resolution,
                "consent_mode": consent_mode(self.s.policy, resolution.decision),
                "done": request.query_params.get("done", ""),
                "policy": self.s.policy.policy,
            },
            section="consent",
        )
        for value in set_cookies:
            response.headers.append("set-cookie", value)
        return response

    async def save_consent(self, request: Request) -> Response:
        page = await self.pages.page_request(request)
        fields = await self.pages.form(request)
        action = first(fields, "action", "save")
        holder = self._holder(page, write=True)
        assert holder is not None
        ip, agent = self._client_ip(request), request.headers.get("user-agent")
        gpc = request_signals(request.scope["headers"]).gpc
        choosable = sorted(p for p in self.s.consent.choosable if not (gpc and self.s.policy.purposes[p].gpc_opt_out))
        if action == "withdraw":
            change = await self.s.consent.withdraw(holder, client_ip=ip, user_agent=agent)
        else:
            granted = set(fields.get("purpose", []))
            if action == "accept_all":
                granted = set(choosable)
            elif action == "reject_all":
                granted = set()
            chosen = {p: p in granted for p in choosable}
            if not chosen:
                return self.pages.redirect(f"{self.base}?done=nothing")
            change = await self.s.consent.set_purposes(holder, chosen, method="api", client_ip=ip, user_agent=agent)
        resolution = await self._resolve(page, change.cookie)
        expiring = expiring_set_cookies(
            request.headers.get("cookie"),
            self.s.policy.tracking.cookies,
            resolution.decision,
            domains=self.s.cookie_domains,
        )
        return self.pages.redirect(f"{self.base}?done=saved", set_cookies=[change.set_cookie, *expiring])

    async def history(self, request: Request) -> Response:
        page = await self.pages.page_request(request)
        holder = self._holder(page, write=False)
        records = await self.s.consent.history(holder) if holder is not None else []
        rows = [
            {
                "id": r.id,
                "when": _when(r.recorded_at),
                "method": page.t(f"method.{r.method}"),
                "granted": sorted(p for p, v in r.purposes.items() if v),
                "refused": sorted(p for p, v in r.purposes.items() if not v),
                "policy_version": r.policy_version,
                "receipt": r.receipt or "",
            }
            for r in reversed(records)
        ]
        return self.pages.render(
            page,
            "center_history.html",
            {
                "records": rows,
                "public_key": self.s.consent.receipts.public_key_pem(),
                "kid": self.s.consent.receipts.kid,
            },
            section="history",
        )

    async def clear_browsing(self, request: Request) -> Response:
        """Expire every tracking cookie the browser sent (all non-essential purposes): the trackers'
        ids are gone, the person's consent choices stay as they are."""
        await self.pages.form(request)
        sent = parse_cookie_header(request.headers.get("cookie") or "")
        expiring: list[str] = []
        for name in sent:
            purposes = cookie_purposes(name, self.s.policy.tracking.cookies)
            if any(p in self.s.consent.choosable for p in purposes):
                expiring.append(f"{name}=; {EXPIRED}; Path=/")
                expiring.extend(f"{name}=; {EXPIRED}; Path=/; Domain={d}" for d in self.s.cookie_domains)
        return self.pages.redirect(f"{self.base}?done=cleared", set_cookies=expiring)

    # -- who saw my data -------------------------------------------------------------------------

    async def access(self, request: Request) -> Response:
        page = await self.pages.page_request(request)
        if (redirect := self._signed_in(page)) is not None:
            return redirect
        assert page.subject is not None
        log = await access_log(self.s.database, page.subject)
        groups: dict[tuple[str, str], dict[str, Any]] = defaultdict(
            lambda: {"count": 0, "categories": set(), "last": None}
        )
        for entry in log.disclosures:
            key = (entry.recipient or "", entry.purpose or "")
            group = groups[key]
            group["count"] += 1
            group["categories"].update(entry.categories)
            if group["last"] is None or entry.time > group["last"]:
                group["last"] = entry.time
        policy = self.s.policy
        rows = []
        for (recipient, purpose), group in sorted(groups.items(), key=lambda kv: kv[1]["last"], reverse=True):
            declared = policy.recipients.get(recipient)
            described = policy.purposes.get(purpose)
            rows.append(
                {
                    "recipient": (declared.description if declared and declared.description else None)
                    or (page.t("access.you") if recipient == policy.identity.customer_recipient else recipient),
                    "purpose": (described.description if described and described.description else purpose)
                    or page.t("access.unknown_purpose"),
                    "categories": sorted(
                        (policy.categories[c].description if c in policy.categories else c) for c in group["categories"]
                    ),
                    "count": group["count"],
                    "last": _when(group["last"]),
                }
            )
        logins = [
            {"when": _when(e.time), "outcome": e.outcome, "network": e.network or "", "device": e.device or ""}
            for e in reversed(log.logins)
        ]
        return self.pages.render(page, "center_access.html", {"rows": rows, "logins": logins[:50]}, section="access")

    # -- my data ---------------------------------------------------------------------------------

    async def data(self, request: Request) -> Response:
        page = await self.pages.page_request(request)
        if (redirect := self._signed_in(page)) is not None:
            return redirect
        assert page.subject is not None
        rights = self._rights()
        requests = await rights.requests_of(page.subject)
        return self.pages.render(
            page,
            "center_data.html",
            {
                "rectifiable": list(self.s.rectifiable),
                "requests": [
                    {
                        "id": r.id,
                        "kind": page.t(f"kind.{r.kind}"),
                        "status": page.t(f"status.{r.status}"),
                        "created": _when(r.created_at),
                        "due": _when(r.due_at),
                    }
                    for r in requests[:30]
                ],
                "done": request.query_params.get("done", ""),
                "error": request.query_params.get("error", ""),
            },
            section="data",
        )

    async def export(self, request: Request) -> Response:
        page = await self.pages.page_request(request)
        await self.pages.form(request)
        if (redirect := self._signed_in(page)) is not None:
            return redirect
        assert page.principal is not None and page.subject is not None
        done, document = await self._rights().export(page.subject, principal=page.principal.id)
        response = Response(
            orjson.dumps(document, option=orjson.OPT_INDENT_2),
            media_type="application/json",
            headers={
                "cache-control": "no-store",
                "content-disposition": 'attachment; filename="my-personal-data.json"',
                "x-privacy-request-id": done.id,
                "x-content-type-options": "nosniff",
            },
        )
        return response

    async def correct(self, request: Request) -> Response:
        page = await self.pages.page_request(request)
        fields = await self.pages.form(request)
        if (redirect := self._signed_in(page)) is not None:
            return redirect
        assert page.principal is not None and page.subject is not None
        changes = {}
        for name, value in zip(fields.get("field", []), fields.get("value", []), strict=False):
            if name.strip() and value.strip():
                changes[name.strip()] = value.strip()
        if not changes:
            return self.pages.redirect(f"{self.base}/data?error=nothing")
        try:
            await self._rights().rectify(page.subject, changes, principal=page.principal.id)
        except PrivacyError as error:
            if error.status >= 500:
                raise
            return self.pages.redirect(f"{self.base}/data?error=rejected")
        return self.pages.redirect(f"{self.base}/data?done=corrected")

    # -- restriction and objection ---------------------------------------------------------------

    async def restrict_page(self, request: Request) -> Response:
        page = await self.pages.page_request(request)
        if (redirect := self._signed_in(page)) is not None:
            return redirect
        assert page.subject is not None
        flags = await self._rights().flags.get(page.subject)
        objectable = [
            {"name": name, "description": p.description or name, "objected": name in flags.objections}
            for name, p in sorted(self.s.policy.purposes.items())
            if p.legal_basis in OBJECTABLE_BASES
        ]
        return self.pages.render(
            page,
            "center_restrict.html",
            {"restricted": flags.restricted, "objectable": objectable, "done": request.query_params.get("done", "")},
            section="restrict",
        )

    async def restrict(self, request: Request) -> Response:
        page = await self.pages.page_request(request)
        fields = await self.pages.form(request)
        if (redirect := self._signed_in(page)) is not None:
            return redirect
        assert page.principal is not None and page.subject is not None
        on = first(fields, "restricted") == "1"
        await self._rights().set_restriction(page.subject, on, principal=page.principal.id)
        return self.pages.redirect(f"{self.base}/restrict?done=saved")

    async def object_to(self, request: Request) -> Response:
        page = await self.pages.page_request(request)
        fields = await self.pages.form(request)
        if (redirect := self._signed_in(page)) is not None:
            return redirect
        assert page.principal is not None and page.subject is not None
        rights = self._rights()
        flags = await rights.flags.get(page.subject)
        wanted = set(fields.get("purpose", []))
        objectable = {n for n, p in self.s.policy.purposes.items() if p.legal_basis in OBJECTABLE_BASES}
        add = sorted((wanted & objectable) - set(flags.objections))
        remove = sorted(set(flags.objections) - wanted)
        if add:
            await rights.object_to(page.subject, add, principal=page.principal.id)
        if remove:
            await rights.object_to(page.subject, remove, principal=page.principal.id, withdraw=True)
        return self.pages.redirect(f"{self.base}/restrict?done=saved")

    # -- account deletion ------------------------------------------------------------------------

    async def delete_page(self, request: Request) -> Response:
        page = await self.pages.page_request(request)
        if (redirect := self._signed_in(page)) is not None:
            return redirect
        holds = self._rights().legal_holds()
        return self.pages.render(
            page,
            "center_delete.html",
            {
                "holds": [
                    self.s.policy.categories[c].description if c in self.s.policy.categories else c for c in holds
                ],
                "error": request.query_params.get("error", ""),
            },
            section="delete",
        )

    async def delete(self, request: Request) -> Response:
        page = await self.pages.page_request(request)
        fields = await self.pages.form(request)
        if (redirect := self._signed_in(page)) is not None:
            return redirect
        assert page.principal is not None and page.subject is not None
        if first(fields, "confirm") != "yes":
            return self.pages.redirect(f"{self.base}/delete?error=confirm")
        rights = self._rights()
        done = await rights.erase(page.subject, principal=page.principal.id, reason="privacy centre")
        receipt = (done.result or {}).get("receipt") or ""
        page.principal = None  # the session ends with the account
        response = self.pages.render(
            page,
            "center_deleted.html",
            {
                "request": {
                    "id": done.id,
                    "status": page.t(f"status.{done.status}"),
                    "completed": done.status == "completed",
                },
                "receipt": receipt,
                "receipt_key": rights.signer.public_key_pem(),
            },
            section="delete",
        )
        response.headers.append("set-cookie", self.pages.end_session_cookie())
        return response

    # -- the notice ------------------------------------------------------------------------------

    async def notice(self, request: Request) -> Response:
        page = await self.pages.page_request(request)
        document = render(self.s.policy, "html", mount_path=self.pages.mount)
        body = document.split("<body>", 1)[-1].rsplit("</body>", 1)[0]
        enforced = {h["version"]: h for h in await policy_history(self.s.database)}
        info = self.s.policy.policy
        declared = [
            {"version": v.version, "effective_date": v.effective_date.isoformat(), "summary": v.summary}
            for v in info.previous_versions
        ]
        declared.append({"version": info.version, "effective_date": info.effective_date.isoformat(), "summary": ""})
        history = [
            {
                **entry,
                "enforced_since": _when(enforced[entry["version"]]["enforced_since"])
                if entry["version"] in enforced
                else "",
            }
            for entry in declared
        ]
        history += [
            {
                "version": v,
                "effective_date": h["effective_date"],
                "summary": "",
                "enforced_since": _when(h["enforced_since"]),
            }
            for v, h in enforced.items()
            if v not in {entry["version"] for entry in declared}
        ]
        history.sort(key=lambda h: h["effective_date"], reverse=True)
        return self.pages.render(
            page,
            "center_notice.html",
            {"notice": body, "history": history, "version": self.s.policy.policy.version},
            section="notice",
        )

    # -- sign-in ---------------------------------------------------------------------------------

    async def signin_page(self, request: Request) -> Response:
        page = await self.pages.page_request(request)
        if page.subject is not None:  # already known from the shop's own session or token
            return self.pages.redirect(_safe_next(request.query_params.get("next"), self.base))
        return self.pages.render(
            page,
            "signin.html",
            {
                "action": f"{self.base}/signin",
                "next": _safe_next(request.query_params.get("next"), self.base),
                "error": request.query_params.get("error", ""),
                "officer": False,
                "guests": self.s.guests is not None,
                "shop_login": self.pages.shop_login_url,
            },
            section="signin",
        )

    async def signin(self, request: Request) -> Response:
        """The shop's page hands the customer's token to this form (see docs/privacy-centre.md)."""
        fields = await self.pages.form(request, csrf=False)
        token = first(fields, "token").strip()
        target = _safe_next(first(fields, "next"), self.base)
        try:
            principal = await self.pages.from_token(token)
        except PrivacyError as error:
            if error.status >= 500:
                raise
            return self.pages.redirect(f"{self.base}/signin?error=token")
        if principal.subject is not None:
            await self.s.link_visitor(request.scope, principal.subject)
        return self.pages.redirect(target, set_cookies=[self.pages.session_cookie_for(token, principal)])

    def _guests(self) -> GuestService:
        if self.s.guests is None:
            raise PrivacyError("no_guests", "Guest access by e-mail code is not configured here.", 404)
        return self.s.guests

    async def guest_code(self, request: Request) -> Response:
        """A guest asks for a one-time code by e-mail (the page never says whether the address is known)."""
        fields = await self.pages.form(request)
        guests = self._guests()
        email = first(fields, "email").strip()
        await guests.send_code(email, self._client_ip(request))
        page = await self.pages.page_request(request)
        return self.pages.render(
            page,
            "guest_code.html",
            {"email": email, "minutes": int(guests.settings.code_minutes), "error": ""},
            section="signin",
        )

    async def guest_session(self, request: Request) -> Response:
        """The code is traded for a guest session, kept like a customer's in the page session cookie."""
        fields = await self.pages.form(request)
        guests = self._guests()
        email = first(fields, "email").strip()
        try:
            token, _ = await guests.verify_code(email, first(fields, "code"), self._client_ip(request))
        except PrivacyError as error:
            if error.status >= 500 or error.code == "rate_limited":
                raise
            page = await self.pages.page_request(request)
            return self.pages.render(
                page,
                "guest_code.html",
                {"email": email, "minutes": int(guests.settings.code_minutes), "error": "code"},
                status=400,
                section="signin",
            )
        minutes = int(guests.settings.session_minutes * 60)
        return self.pages.redirect(
            f"{self.base}/data", set_cookies=[self.pages.cookie(SESSION_COOKIE, token, max_age=minutes)]
        )

    async def signout(self, request: Request) -> Response:
        await self.pages.form(request)
        return self.pages.redirect(self.base, set_cookies=[self.pages.end_session_cookie()])

    def routes(self) -> list[Route]:
        return [
            Route("/center", self.pages.guarded(self.home), methods=["GET"]),
            Route("/center/consent", self.pages.guarded(self.save_consent), methods=["POST"]),
            Route("/center/history", self.pages.guarded(self.history), methods=["GET"]),
            Route("/center/clear-browsing", self.pages.guarded(self.clear_browsing), methods=["POST"]),
            Route("/center/access", self.pages.guarded(self.access), methods=["GET"]),
            Route("/center/data", self.pages.guarded(self.data), methods=["GET"]),
            Route("/center/export", self.pages.guarded(self.export), methods=["POST"]),
            Route("/center/correct", self.pages.guarded(self.correct), methods=["POST"]),
            Route("/center/restrict", self.pages.guarded(self.restrict_page), methods=["GET"]),
            Route("/center/restrict", self.pages.guarded(self.restrict), methods=["POST"]),
            Route("/center/object", self.pages.guarded(self.object_to), methods=["POST"]),
            Route("/center/delete", self.pages.guarded(self.delete_page), methods=["GET"]),
            Route("/center/delete", self.pages.guarded(self.delete), methods=["POST"]),
            Route("/center/notice", self.pages.guarded(self.notice), methods=["GET"]),
            Route("/center/signin", self.pages.guarded(self.signin_page), methods=["GET"]),
            Route("/center/signin", self.pages.guarded(self.signin), methods=["POST"]),
            Route("/center/signout", self.pages.guarded(self.signout), methods=["POST"]),
            Route("/center/guest/code", self.pages.guarded(self.guest_code), methods=["POST"]),
            Route("/center/guest/session", self.pages.guarded(self.guest_session), methods=["POST"]),
        ]


def _safe_next(value: str | None, default: str) -> str:
    """Only a path on this site (no scheme, no host, no `//`): no open redirect."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value or "\n" in value:
        return default
    return value
