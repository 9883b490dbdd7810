"""The tracking route's short cuts answer as the general paths do: a policy naming top-level keys is
rewritten by key look-ups exactly as by its selectors (same document, same pseudonyms), and an
identity chain of bearer-only providers answers a request without an Authorization value as asking
each provider would (None, or the same refusal)."""

from __future__ import annotations

import asyncio
import copy
import os
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from privacy_middleware.context import RequestContext
from privacy_middleware.demo.run import demo_policy_path
from privacy_middleware.errors import PrivacyError
from privacy_middleware.fields.engine import Pseudonymiser
from privacy_middleware.identity.base import CallerRequest
from privacy_middleware.identity.chain import IdentityChain, JwtProvider
from privacy_middleware.identity.jwt import TokenVerifier
from privacy_middleware.metrics import Metrics
from privacy_middleware.pipeline.plan import Exchange
from privacy_middleware.pipeline.tracking import TrackingGate
from privacy_middleware.policy.compile import RouteSpec
from privacy_middleware.policy.load import load_policy
from privacy_middleware.policy.schema import TrackingRoute
from privacy_middleware.principal import Principal
from privacy_middleware.settings import JwtSettings

POLICY = load_policy(demo_policy_path())
PSEUDONYMISER = Pseudonymiser(os.urandom(32))
KEYS = ["visitor_id", "customer_id", "ip", "event", "user"]
leaf = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12)
value = st.recursive(leaf, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(KEYS), inner))
document = st.dictionaries(st.sampled_from(KEYS), value) | st.lists(value, max_size=3) | leaf
keys = st.lists(st.sampled_from(KEYS), max_size=3)


def gate(pseudonymise: list[str], truncate: list[str]) -> TrackingGate:
    tracked = TrackingRoute(
        method="POST", path="/t", purpose="analytics", pseudonymise=pseudonymise, truncate_ip=truncate
    )
    return TrackingGate(tracked, policy=POLICY, consent=None, pseudonymiser=PSEUDONYMISER, metrics=Metrics())  # type: ignore[arg-type]


def rewritten(step: TrackingGate, doc: Any) -> tuple[Any, bool]:
    ex = Exchange(
        scope={},
        ctx=RequestContext(method="POST", path="/t", client_ip=None),
        spec=RouteSpec(method="POST", template="/t"),
    )
    ex.request_json, ex.request_has_json = doc, True
    asyncio.run(step.on_request(ex))
    return ex.request_json, ex.request_changed


@settings(max_examples=300, deadline=None)
@given(doc=document, pseudonymise=keys, truncate=keys)
def test_top_level_keys_are_rewritten_as_by_their_selectors(
    doc: Any, pseudonymise: list[str], truncate: list[str]
) -> None:
    fast = gate(pseudonymise, truncate)
    assert fast.top_keys is not None
    general = gate(pseudonymise, truncate)
    general.top_keys = None
    assert rewritten(fast, copy.deepcopy(doc)) == rewritten(general, copy.deepcopy(doc))


def test_nested_paths_and_drops_take_the_selector_walk() -> None:
    assert gate(["user.id"], ["ip"]).top_keys is None
    assert gate(["visitor_id"], ["$"]).top_keys is None
    tracked = TrackingRoute(method="POST", path="/t", purpose="analytics", pseudonymise=["visitor_id"], drop=["ip"])
    dropping = TrackingGate(tracked, policy=POLICY, consent=None, pseudonymiser=PSEUDONYMISER, metrics=Metrics())  # type: ignore[arg-type]
    assert dropping.top_keys is None


SECRET = "a-test-secret-of-at-least-sixty-four-bytes-for-hs512-0123456789ab"
VERIFIER = TokenVerifier(
    JwtSettings(issuer="shop", audience="api", secret=SECRET, algorithms=["HS256"]), POLICY.identity
)
VERIFIER.bind_policy(POLICY)
names = st.sampled_from([b"authorization", b"Authorization", b"AUTHORIZATION", b"cookie", b"x-other"])
values = st.sampled_from([b"", b"Bearer", b"Bearer ", b"bearer x", b"Basic abc", b"Bearer a.b.c", b"session=1"])


def answer(chain: IdentityChain, scope: dict[str, Any]) -> Any:
    try:
        principal = asyncio.run(chain.authenticate(scope))
    except PrivacyError as error:
        return ("refused", error.code, error.status, str(error))
    return principal


@settings(max_examples=300, deadline=None)
@given(headers=st.lists(st.tuples(names, values), max_size=4))
def test_a_bearer_only_chain_answers_as_its_providers(headers: list[tuple[bytes, bytes]]) -> None:
    short = IdentityChain([JwtProvider(VERIFIER, leave_opaque=False)])
    asked = IdentityChain([JwtProvider(VERIFIER, leave_opaque=False)])
    asked._bearer_only = False  # every provider asked, as without the short cuts
    asked._first_jwt = None
    scope = {"type": "http", "headers": headers}
    assert answer(short, scope) == answer(asked, scope)


class _CookieProvider:
    """A provider that recognises callers without an Authorization header (as guests' order links)."""

    name = "cookie"

    async def resolve(self, request: CallerRequest) -> Principal | None:
        return (
            Principal(id="cus_1", subject="cus_1", recipient="self", purpose=None)
            if request.cookie("sid") == "1"
            else None
        )


def test_a_provider_added_first_that_reads_no_authorization_is_still_asked() -> None:
    chain = IdentityChain([JwtProvider(VERIFIER, leave_opaque=False)])
    chain.prepend(_CookieProvider())
    principal = answer(chain, {"type": "http", "headers": [(b"cookie", b"sid=1")]})
    assert isinstance(principal, Principal) and principal.subject == "cus_1"


def test_a_token_verified_before_is_answered_as_the_providers_answer_it() -> None:
    """The chain answers a repeat caller's token from the JWT provider's memory when that provider is
    asked first (the same principal as asking it), and never before a provider prepended to it."""
    import time

    import jwt

    verifier = TokenVerifier(
        JwtSettings(issuer="shop", audience="api", secret=SECRET, algorithms=["HS256"]), POLICY.identity
    )
    verifier.bind_policy(POLICY)
    now = int(time.time())
    claims = {"sub": "cus_9", "iss": "shop", "aud": "api", "iat": now, "exp": now + 600}
    bearer = b"Bearer " + jwt.encode(claims, SECRET, algorithm="HS256").encode()
    scope = {"type": "http", "headers": [(b"cookie", b"sid=1"), (b"Authorization", bearer)]}
    short = IdentityChain([JwtProvider(verifier, leave_opaque=False)])
    asked = IdentityChain([JwtProvider(verifier, leave_opaque=False)])
    asked._bearer_only, asked._first_jwt = False, None
    first = answer(asked, scope)  # verified and remembered
    assert isinstance(first, Principal) and first.subject == "cus_9"
    assert answer(short, scope) is first and answer(asked, scope) is first
    other = {"type": "http", "headers": [(b"authorization", b"Bearer a.b.c"), (b"authorization", bearer)]}
    assert answer(short, other) == answer(asked, other)  # the first Authorization value is the one read
    short.prepend(_CookieProvider())
    guest = answer(short, scope)
    assert isinstance(guest, Principal) and guest.subject == "cus_1"


def test_the_jwt_and_introspection_providers_need_an_authorization_header() -> None:
    from privacy_middleware.identity.introspection import IntrospectionProvider

    assert JwtProvider.bearer_only and IntrospectionProvider.bearer_only
    assert pytest.importorskip("privacy_middleware.identity.guest").GuestProvider.__dict__.get("bearer_only") is None
