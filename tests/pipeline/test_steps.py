"""Each route step on its own (no HTTP, no runtime): built from the services it names in its
constructor, run on an Exchange, judged by what it does to the exchange and the request's facts."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

import pytest

from privacy_middleware.context import RequestContext
from privacy_middleware.errors import PrivacyError
from privacy_middleware.fields.engine import FieldEngine, Pseudonymiser
from privacy_middleware.metrics import Metrics
from privacy_middleware.pipeline.disclose import DiscloseResponseFields
from privacy_middleware.pipeline.facts import Refusal
from privacy_middleware.pipeline.forbidden import ForbiddenCategoryGuard
from privacy_middleware.pipeline.free_text import FreeTextGuard
from privacy_middleware.pipeline.minimum_age import MinimumAgeGuard
from privacy_middleware.pipeline.order import STEP_ORDER
from privacy_middleware.pipeline.plan import Exchange
from privacy_middleware.pipeline.protect import ProtectRequestFields
from privacy_middleware.policy.access import Access
from privacy_middleware.policy.compile import RouteSpec
from privacy_middleware.principal import Principal
from support.unit_policy import ORDER, route, unit_policy

pytestmark = pytest.mark.anyio

POLICY = unit_policy()
ORDERS = route(POLICY, "POST", "/orders")
ORDER_VIEW = route(POLICY, "GET", "/orders/ord_1")
REGISTER = route(POLICY, "POST", "/register")


def exchange(spec: RouteSpec, body: Any = None, principal: Principal | None = None) -> Exchange:
    ctx = RequestContext(method=spec.method, path=spec.template, client_ip="203.0.113.9", principal=principal)
    ex = Exchange(scope={"type": "http", "headers": []}, ctx=ctx, spec=spec)
    if body is not None:
        ex.request_json, ex.request_has_json = body, True
    return ex


def test_the_step_order_is_named_and_puts_refusals_before_disclosure() -> None:
    names = [name for name, _ in STEP_ORDER]
    assert len(names) == len(set(names))
    assert names.index("login") < names.index("tracking") < names.index("protect_request")
    assert names.index("minimum_age") < names.index("protect_request") < names.index("disclose_response")
    assert names.index("disclose_response") < names.index("disclosure_audit")


async def test_minimum_age_refuses_a_minor_and_notes_it() -> None:
    assert REGISTER.minors_birth_date is not None
    guard = MinimumAgeGuard(REGISTER.minors_birth_date, "birth_date", 16)
    today = dt.datetime.now(dt.UTC).date()
    ex = exchange(REGISTER, {"birth_date": today.replace(year=today.year - 10).isoformat()})
    with pytest.raises(PrivacyError) as refused:
        await guard.on_request(ex)
    assert refused.value.code == "below_minimum_age" and ex.ctx.facts.underage
    adult = exchange(REGISTER, {"birth_date": "1990-05-01"})
    await guard.on_request(adult)
    assert not adult.ctx.facts.underage


async def test_minimum_age_needs_a_date() -> None:
    assert REGISTER.minors_birth_date is not None
    guard = MinimumAgeGuard(REGISTER.minors_birth_date, "birth_date", 16)
    for body in ({}, {"birth_date": "soon"}):
        with pytest.raises(PrivacyError) as refused:
            await guard.on_request(exchange(REGISTER, body))
        assert refused.value.status == 422


async def test_a_forbidden_category_is_refused_and_recorded_without_the_value() -> None:
    assert ORDERS.request is not None
    fields = [(f.rule.select, f.rule.category, f.selector) for f in ORDERS.request.fields if f.rule.select == "illness"]
    guard = ForbiddenCategoryGuard(fields)
    ex = exchange(ORDERS, {"illness": "asthma"})
    with pytest.raises(PrivacyError) as refused:
        await guard.on_request(ex)
    assert refused.value.code == "forbidden_category" and "asthma" not in refused.value.message
    assert ex.ctx.facts.refusals == [Refusal("illness", ("user.health",), "reject")]
    await guard.on_request(exchange(ORDERS, {"illness": ""}))  # empty is not data


async def test_free_text_catches_a_card_number() -> None:
    guard = FreeTextGuard(ORDERS.free_text, Metrics())
    ex = exchange(ORDERS, {"note": "my card is 4111 1111 1111 1111 thanks"})
    with pytest.raises(PrivacyError) as refused:
        await guard.on_request(ex)
    assert refused.value.code == "forbidden_data_detected" and "4111" not in refused.value.message
    assert ex.ctx.facts.refusals == [Refusal("note", ("card_number",), "reject")]
    clean = exchange(ORDERS, {"note": "leave it by the door"})
    await guard.on_request(clean)
    assert not clean.request_changed and clean.ctx.facts.refusals == []


async def test_request_protection_rewrites_the_body() -> None:
    assert ORDERS.request is not None
    step = ProtectRequestFields(ORDERS.request, FieldEngine(POLICY, Pseudonymiser(b"p" * 32)), Metrics())
    ex = exchange(ORDERS, {"email": "ada@example.com", "card_cvv": "123"})
    await step.on_request(ex)
    assert ex.request_json == {"email": "ada@example.com"} and ex.request_changed


async def test_response_disclosure_filters_for_the_caller_and_leaves_the_fact_for_the_audit() -> None:
    assert ORDER_VIEW.response is not None
    step = DiscloseResponseFields(
        ORDER_VIEW,
        ORDER_VIEW.response,
        engine=FieldEngine(POLICY, Pseudonymiser(b"p" * 32)),
        access=Access(POLICY),
        metrics=Metrics(),
        anonymous_recipient="public",
    )
    carrier = Principal(id="carrier-1", subject=None, recipient="logistics", purpose="delivery")
    ex = exchange(ORDER_VIEW, principal=carrier)
    ex.response_json, ex.response_has_json = copy.deepcopy(ORDER), True
    await step.on_response(ex)
    assert ex.response_changed and "customer_id" not in ex.response_json
    disclosure = ex.ctx.facts.disclosure
    assert disclosure is not None and disclosure.viewer.recipient == "logistics"
    assert disclosure.report.subjects == {"cus_1"}

    anonymous = exchange(ORDER_VIEW)
    anonymous.response_json, anonymous.response_has_json = copy.deepcopy(ORDER), True
    await step.on_response(anonymous)
    assert anonymous.response_json["customer"] == {} and anonymous.response_json["shipping_address"] == {}
