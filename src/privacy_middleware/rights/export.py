"""The subject's export (access and portability): one JSON document, schema `privacy-middleware/export/v1`.

Protected fields are revealed through the one field engine with a "self" viewer (the subject sees
their own data in full), so the export and the live API can never disagree on what a value is.
The schema is documented in docs/rights.md.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Iterable
from typing import Any

from ..audit.query import AccessLog, DisclosureEntry, access_log
from ..crypto.results import SubjectHoldings
from ..fields.engine import FieldEngine, Viewer
from ..policy.schema import Policy
from ..principal import Principal
from ..store.consent import ConsentRepository
from ..store.consent_records import ConsentRecord, Holder, derive_state
from ..store.database import Database
from ..store.rights import SubjectFlags
from .adapter import ShopAdapter, ShopRecord
from .middleware_only import reaches_shop

SCHEMA = "privacy-middleware/export/v1"
# Audit actions that mean data left towards someone (an "erase" entry is not a disclosure).
DISCLOSING_ACTIONS = frozenset({"read", "reveal", "disclose", "export"})


def self_viewer(policy: Policy, subject: str) -> Viewer:
    """The subject looking at their own data: every classified field in clear, nothing else added."""
    recipient = policy.identity.customer_recipient
    principal = Principal(id=subject, subject=subject, recipient=recipient, purpose=None)
    return Viewer(principal=principal, recipient=recipient, grants={})


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


async def reveal_record(engine: FieldEngine, policy: Policy, record: ShopRecord, subject: str) -> dict[str, Any]:
    """One shop record with its protected fields in clear and the categories it holds."""
    data = copy.deepcopy(record.data)
    categories: list[str] = []
    unreadable = 0
    body = engine.shapes.get(record.shape) if record.shape else None
    if body is not None:
        report = await engine.disclose(body, data, self_viewer(policy, subject))
        categories = sorted(report.categories)
        unreadable = report.reveal_failures
    entry: dict[str, Any] = {
        "kind": record.kind,
        "id": record.id,
        "created_at": _iso(record.created_at),
        "categories": categories,
        "data": data,
    }
    if unreadable:
        entry["unreadable_fields"] = unreadable
    return entry


async def consent_history(database: Database, subject: str) -> list[ConsentRecord]:
    """The subject's own records and those of the visitors linked to them, oldest first."""
    repository = ConsentRepository(database)
    records = await repository.history(Holder.subject(subject))
    for visitor_id in await repository.visitors_of(subject):
        records.extend(await repository.history(Holder.visitor(visitor_id)))
    records.sort(key=lambda r: r.recorded_at)
    return records


def consent_section(subject: str, records: list[ConsentRecord]) -> dict[str, Any]:
    state = derive_state(Holder.subject(subject), [r for r in records if r.holder.kind == "subject"])
    return {
        "current": {
            purpose: {
                "granted": choice.granted,
                "policy_version": choice.policy_version,
                "method": choice.method,
                "at": choice.at.isoformat(),
                "record_id": choice.record_id,
            }
            for purpose, choice in sorted(state.choices.items())
        },
        "history": [
            {
                "record_id": r.id,
                "holder": r.holder.kind,
                "purposes": dict(r.purposes),
                "policy_version": r.policy_version,
                "method": r.method,
                "recorded_at": r.recorded_at.isoformat(),
                "receipt": r.receipt,
            }
            for r in records
        ],
    }


def recipients_section(subject: str, disclosures: Iterable[DisclosureEntry], policy: Policy) -> list[dict[str, Any]]:
    """Who received which categories for which purpose: one entry per (recipient, purpose)."""
    grouped: dict[tuple[str, str], dict[str, Any]] = {}
    for entry in disclosures:
        if entry.action not in DISCLOSING_ACTIONS or entry.principal == subject:
            continue
        recipient = entry.recipient or "unknown"
        purpose = entry.purpose or "unknown"
        item = grouped.setdefault(
            (recipient, purpose),
            {
                "recipient": recipient,
                "purpose": purpose,
                "categories": set(),
                "times": 0,
                "first": entry.time,
                "last": entry.time,
            },
        )
        item["categories"].update(entry.categories)
        item["times"] += 1
        item["first"] = min(item["first"], entry.time)
        item["last"] = max(item["last"], entry.time)
    out = []
    for (recipient, purpose), item in sorted(grouped.items()):
        declared = policy.recipients.get(recipient)
        out.append(
            {
                "recipient": recipient,
                "description": declared.description if declared else "",
                "purpose": purpose,
                "categories": sorted(item["categories"]),
                "times": item["times"],
                "first": item["first"].isoformat(),
                "last": item["last"].isoformat(),
            }
        )
    return out


def access_section(log: AccessLog) -> dict[str, Any]:
    return {
        "logins": [
            {"time": e.time.isoformat(), "outcome": e.outcome, "network": e.network, "device": e.device}
            for e in log.logins
        ],
        "disclosures": [
            {
                "time": e.time.isoformat(),
                "principal": e.principal,
                "recipient": e.recipient,
                "purpose": e.purpose,
                "categories": list(e.categories),
                "route": e.route,
                "action": e.action,
            }
            for e in log.disclosures
        ],
    }


def keys_section(holdings: SubjectHoldings | None) -> dict[str, Any]:
    """The subject's key and the vault tokens standing for their values, by category (never the values)."""
    if holdings is None:
        return {"subject_key": None, "tokens": []}
    return {
        "subject_key": {"created_at": _iso(holdings.key_created_at)} if holdings.has_key else None,
        "erased_before": holdings.erased,
        "tokens": [
            {"category": category or "unrecorded", "created_at": created.isoformat()}
            for category, created in holdings.tokens
        ],
    }


def coverage_section(adapter: ShopAdapter) -> dict[str, Any]:
    """What this export does and does not contain, in words the subject can read."""
    covered = ["consent", "access", "recipients", "restrictions", "requests", "middleware"]
    not_covered: list[dict[str, str]] = []
    if reaches_shop(adapter):
        covered.insert(0, "shop")
    else:
        not_covered.append(
            {
                "what": "shop",
                "why": "No shop adapter is configured: the shop's own records (account, orders, addresses) "
                "are not included; ask the shop for them.",
            }
        )
    return {"covered": covered, "not_covered": not_covered}


async def build_export(
    *,
    subject: str,
    policy: Policy,
    adapter: ShopAdapter,
    engine: FieldEngine,
    database: Database,
    flags: SubjectFlags,
    requests: list[dict[str, Any]] | None = None,
    now: dt.datetime | None = None,
    keys: SubjectHoldings | None = None,
) -> dict[str, Any]:
    records = await adapter.records(subject)
    shop = [await reveal_record(engine, policy, record, subject) for record in records]
    log = await access_log(database, subject, limit=1000)
    info = policy.policy
    return {
        "schema": SCHEMA,
        "generated_at": (now or dt.datetime.now(dt.UTC)).isoformat(),
        "subject": subject,
        "controller": {
            "name": info.controller or info.name,
            "contact": info.contact,
            "policy_version": info.version,
        },
        "coverage": coverage_section(adapter),
        "shop": {"source": adapter.name, "reached": reaches_shop(adapter), "records": shop},
        "consent": consent_section(subject, await consent_history(database, subject)),
        "access": access_section(log),
        "recipients": recipients_section(subject, log.disclosures, policy),
        "restrictions": flags.to_json(),
        "requests": requests or [],
        "middleware": keys_section(keys),
    }
