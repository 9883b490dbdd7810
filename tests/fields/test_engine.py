"""The field engine on its own (no HTTP): per-recipient disclosure, the subject's own view, withheld
subjects, request protection, and a refusal that names the field, never the value."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from privacy_middleware.errors import PrivacyError
from privacy_middleware.fields.engine import FieldEngine, FieldReport, Pseudonymiser, Viewer
from privacy_middleware.policy.access import Access
from privacy_middleware.principal import Principal
from support.unit_policy import ORDER, route, unit_policy

pytestmark = pytest.mark.anyio

POLICY = unit_policy()
ACCESS = Access(POLICY)
ORDER_BODY = route(POLICY, "GET", "/orders/ord_1").response
ORDER_REQUEST = route(POLICY, "POST", "/orders").request


def engine() -> FieldEngine:
    return FieldEngine(POLICY, Pseudonymiser(b"p" * 32))


def viewer(recipient: str, subject: str | None = None) -> Viewer:
    principal = Principal(id=subject or recipient, subject=subject, recipient=recipient, purpose=None)
    return Viewer(principal, recipient, ACCESS.grants(recipient))


async def disclosed(recipient: str, subject: str | None = None, **kwargs: Any) -> tuple[dict[str, Any], FieldReport]:
    assert ORDER_BODY is not None
    document = copy.deepcopy(ORDER)
    report = await engine().disclose(ORDER_BODY, document, viewer(recipient, subject), **kwargs)
    return document, report


async def test_a_recipient_gets_its_grants_and_nothing_else() -> None:
    document, report = await disclosed("logistics")
    assert document == {
        "id": "ord_1",
        "total": 17.0,
        "customer": {"email": "a***@example.com", "name": "Ada Lovelace"},
        "shipping_address": {"street": "1 Tea Lane", "city": "Leeds"},
    }
    assert report.subjects == {"cus_1"}
    assert "user.id" not in report.categories and "user.name" in report.categories
    assert report.unknown_dropped == 1  # the unclassified loyalty_tier inside the customer object


async def test_an_undeclared_recipient_gets_no_personal_data() -> None:
    document, _ = await disclosed("nobody")
    assert document == {"id": "ord_1", "total": 17.0, "customer": {}, "shipping_address": {}}


async def test_the_subject_sees_their_own_record_in_full() -> None:
    document, report = await disclosed("customer", subject="cus_1")
    assert document == ORDER
    assert report.unknown_kept == 1


async def test_a_withheld_subject_loses_every_classified_field() -> None:
    async def blocked(subject: str) -> bool:
        return subject == "cus_1"

    document, report = await disclosed("logistics", blocked=blocked)
    assert document["customer"] == {} and document["shipping_address"] == {}
    assert report.blocked_subjects == 1


async def test_the_longest_granted_prefix_decides_and_pseudonyms_are_stable() -> None:
    first, _ = await disclosed("fraud")
    second, _ = await disclosed("fraud")
    email = first["customer"]["email"]
    assert email.startswith("ps_") and "ada" not in email
    assert email == second["customer"]["email"]
    # `user.contact` is granted as mask:full and no longer grant names the delivery address: masked.
    assert first["shipping_address"] == {"street": "***", "city": "***"}
    assert "name" not in first["customer"]


async def test_request_protection_strips_fields_and_counts_transforms() -> None:
    assert ORDER_REQUEST is not None
    document = {"email": "ada@example.com", "card_cvv": "123"}
    report = await engine().protect_request(ORDER_REQUEST, document, None)
    assert document == {"email": "ada@example.com"}
    assert report.transformed.get("strip") == 1


async def test_an_invalid_value_is_refused_by_field_never_by_value() -> None:
    assert ORDER_REQUEST is not None
    with pytest.raises(PrivacyError) as refused:
        await engine().protect_request(ORDER_REQUEST, {"email": "not-an-address@@"}, None)
    assert 400 <= refused.value.status < 500
    assert "email" in refused.value.message and "not-an-address" not in refused.value.message


async def test_one_plan_per_compiled_body_however_many_documents() -> None:
    assert ORDER_BODY is not None
    fields = engine()
    for _ in range(50):
        await fields.disclose(ORDER_BODY, copy.deepcopy(ORDER), viewer("logistics"))
    assert fields.cached_plans == 1
