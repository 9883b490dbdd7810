"""Consent decision cost, as ratios to a baseline measured in the same run.

Baseline: parsing a realistic Cookie header (what any request pays to find the consent cookie).
Measured: verifying the signed consent cookie; a full decision on the cookie path (anonymous
visitor: signals + cookie + decision table); a full decision for a logged-in subject whose state is
cached; the same with Sec-GPC and a (cached) TC string; and the path a request takes in the
middleware (`pipeline/consent_decision.py`: signals, the subject's restriction and objection flags
from the one access decision, and the decision). In-process, on one asyncio loop, best of several
repeats. Run: `.venv/bin/python bench/bench_consent.py [--smoke]`.
"""

from __future__ import annotations

import asyncio
import os
import platform
import secrets
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

sys.path.insert(0, str(Path(__file__).parent))
from common import Row, Table, expect, is_smoke

from privacy_middleware.consent import ConsentService, Holder, request_signals
from privacy_middleware.consent.signals import parse_cookie_header
from privacy_middleware.context import RequestContext
from privacy_middleware.pipeline.consent_decision import ConsentResolver
from privacy_middleware.policy.access import Access
from privacy_middleware.policy.schema import Policy
from privacy_middleware.principal import Principal
from privacy_middleware.rights.flags import SubjectFlagsCache
from privacy_middleware.store import Database

POLICY = Policy.model_validate(
    {
        "policy": {"name": "Bench shop", "version": "2026-03", "effective_date": "2026-03-01"},
        "categories": {},
        "purposes": {
            "order_fulfilment": {"legal_basis": "contract"},
            "security": {"legal_basis": "legitimate_interest", "allowed_under_restriction": True},
            "analytics": {
                "legal_basis": "consent",
                "consent": "opt_in",
                "tcf_purposes": [7, 8, 9],
                "google_consent": ["analytics_storage"],
            },
            "marketing": {
                "legal_basis": "consent",
                "consent": "opt_in",
                "gpc_opt_out": True,
                "tcf_purposes": [1, 3, 4],
                "google_consent": ["ad_storage", "ad_user_data", "ad_personalization"],
            },
            "personalisation": {
                "legal_basis": "legitimate_interest",
                "consent": "opt_out",
                "gpc_opt_out": True,
            },
        },
    }
)
# A v2.2 TC string with DisclosedVendors, made with the test suite's encoder (tests/consent).
TC_STRING = (
    "CQh-8AAQh-8AAEsADCDECMEgAIOAAEAAAAYgFeIgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAABAAAAA.IF5ogAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAABAAAAAAA"
    "AAg"
)


def best_ns(fn: Callable[[], object], number: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter_ns()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter_ns() - start) / number)
    return best


async def best_ns_async(fn: Callable[[], Awaitable[object]], number: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter_ns()
        for _ in range(number):
            await fn()
        best = min(best, (time.perf_counter_ns() - start) / number)
    return best


async def main(smoke: bool = False) -> list[Row]:
    number, repeat = (50, 1) if smoke else (20_000, 7)
    table = Table()
    with tempfile.TemporaryDirectory() as tmp:
        database = Database(f"sqlite+aiosqlite:///{os.path.join(tmp, 'bench.db')}")
        await database.upgrade()
        service = ConsentService(
            database,
            POLICY,
            cookie_secret=secrets.token_bytes(32),
            signing_key=Ed25519PrivateKey.generate(),
            cache_ttl=3600,
        )
        choices = {"analytics": True, "marketing": False}
        visitor = await service.set_purposes(Holder.visitor("vbench"), choices)
        await service.set_purposes(Holder.subject("bench-subject"), {"analytics": True})
        cookie_header = (
            f"session=8f14e45fceea167a5a36dedd4bea2543; cart=3; _ga=GA1.2.1234567890.1700000000; "
            f"_ga_ABC123=GS1.1.1700000000.1.1.1700000100.0.0.0; {service.cookies.cookie_name}={visitor.cookie};"
            " _fbp=fb.1.17.42"
        )
        headers = [
            (b"host", b"shop.example"),
            (b"user-agent", b"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"),
            (b"accept", b"application/json"),
            (b"cookie", cookie_header.encode()),
        ]
        gpc_headers = [*headers, (b"sec-gpc", b"1")]

        async def cookie_path() -> Any:
            signals = request_signals(headers)
            return await service.decide(consent_cookie=signals.consent_cookie, gpc=signals.gpc)

        async def subject_path() -> Any:
            signals = request_signals(headers)
            return await service.decide(subject="bench-subject", gpc=signals.gpc)

        flags = SubjectFlagsCache(database, ttl=3600)
        await flags.set("bench-subject", add_objections=["personalisation"])
        resolver = ConsentResolver(service, Access(POLICY, flags), POLICY)
        scope = {"type": "http", "method": "GET", "path": "/", "headers": headers, "query_string": b""}
        principal = Principal("bench-subject", "bench-subject", "customer", None)

        async def request_path() -> Any:
            # a fresh request context each time: the decision is computed, not read from the facts
            return await resolver.resolve(scope, RequestContext("GET", "/", None, principal))

        async def subject_gpc_tcf_path() -> Any:
            signals = request_signals(gpc_headers)
            return await service.decide(subject="bench-subject", gpc=signals.gpc, tc_string=TC_STRING)

        # the path named: the visitor's cookie grants analytics and refuses marketing; the subject's
        # stored choice grants analytics
        decision = await cookie_path()
        expect(decision.allowed("analytics") and not decision.allowed("marketing"), "cookie path did not decide")
        decision = await subject_path()
        expect(decision.allowed("analytics") and not decision.allowed("marketing"), "subject path did not decide")
        resolution = await request_path()
        expect(
            resolution.decision.allowed("analytics") and resolution.decision.reason("personalisation") == "objected",
            "request path did not read the subject's objection",
        )
        warm = await service.resolve(subject="bench-subject", tc_string=TC_STRING)
        expect(warm.tcf == "valid", "the benchmark TC string must validate")
        baseline = best_ns(lambda: parse_cookie_header(cookie_header), number, repeat)
        figures = {
            "verify consent cookie": best_ns(lambda: service.cookies.decode(visitor.cookie), number, repeat),
            "decide, cookie path (visitor)": await best_ns_async(cookie_path, number, repeat),
            "decide, cached subject": await best_ns_async(subject_path, number, repeat),
            "decide, cached subject + GPC + TC string": await best_ns_async(subject_gpc_tcf_path, number, repeat),
            "request path (signals + flags + decision), subject": await best_ns_async(request_path, number, repeat),
        }
        await database.dispose()

    print(
        f"bench_consent: python {platform.python_version()} on {platform.machine()}, in-process, best of"
        f" {repeat} x {number} calls; {len(POLICY.purposes)} purposes"
    )
    table.add(Row("consent", "parse Cookie header alone", baseline / 1e9, baseline / 1e9, "cookie parse"))
    for name, ns in figures.items():
        table.add(Row("consent", name, ns / 1e9, baseline / 1e9, "cookie parse"))
    for name in (
        "decide, cookie path (visitor)",
        "decide, cached subject",
        "request path (signals + flags + decision), subject",
    ):
        table.add(Row("consent", f"{name} vs 3 µs budget", figures[name] / 1e9, 3e-6, "3 µs budget", 1.0))
    return table.rows


if __name__ == "__main__":
    asyncio.run(main(is_smoke()))
