"""A small policy for unit tests of the field engine, the steps and the access decision: two
recipients with different grants, a forbidden category, free text, a minimum age."""

from __future__ import annotations

import datetime as dt
from typing import Any

from privacy_middleware.policy.compile import RouteSpec, compile_policy
from privacy_middleware.policy.load import validate_policy
from privacy_middleware.policy.schema import Policy

DOCUMENT: dict[str, Any] = {
    "policy": {"name": "Unit shop", "version": "u1", "effective_date": dt.date(2026, 1, 1), "tenant": "unit"},
    "categories": {
        "user.id": {"description": "Customer id"},
        "user.name": {"description": "Name"},
        "user.contact.email": {"description": "E-mail"},
        "user.contact.address.delivery": {"description": "Delivery address"},
        "user.health": {"description": "Health data", "forbidden": True},
        "user.birth_date": {"description": "Date of birth"},
        "user.content.note": {"description": "Order note"},
    },
    "purposes": {
        "order_fulfilment": {"description": "Orders", "legal_basis": "contract"},
        "delivery": {"description": "Delivery", "legal_basis": "contract"},
        "newsletter": {"description": "E-mail news", "legal_basis": "consent", "consent": "opt_in"},
        "security": {
            "description": "Fraud checks",
            "legal_basis": "legitimate_interest",
            "allowed_under_restriction": True,
        },
    },
    "recipients": {
        "logistics": {
            "description": "Carrier",
            "purposes": ["delivery"],
            "sees": {"user.name": "keep", "user.contact.address.delivery": "keep", "user.contact.email": "mask:email"},
            "hosts": ["api.carrier.example"],
            "endpoints": [{"method": "POST", "path": "/shipments", "request": {"shape": "order"}}],
        },
        "fraud": {
            "description": "Fraud screening",
            "purposes": ["security"],
            "sees": {"user.contact.email": "pseudonymise", "user.contact": "mask:full"},
        },
    },
    "shapes": {
        "order": {
            "subject": "customer_id",
            "personal_objects": ["customer", "shipping_address"],
            "fields": [
                {"select": "customer_id", "category": "user.id"},
                {"select": "customer.email", "category": "user.contact.email"},
                {"select": "customer.name", "category": "user.name"},
                {"select": "shipping_address.street", "category": "user.contact.address.delivery"},
                {"select": "shipping_address.city", "category": "user.contact.address.delivery"},
            ],
        }
    },
    "tracking": {
        "routes": [{"method": "POST", "path": "/events", "purpose": "newsletter", "pseudonymise": ["user_id"]}]
    },
    "audit": {
        "logins": [{"method": "POST", "path": "/login"}],
        "account_routes": [{"method": "DELETE", "path": "/account", "event": "account_closure"}],
    },
    "minors": {"minimum_age": 16, "routes": [{"method": "POST", "path": "/register", "birth_date": "birth_date"}]},
    "routes": [
        {"method": "GET", "path": "/orders/{order_id}", "purpose": "order_fulfilment", "response": {"shape": "order"}},
        {
            "method": "POST",
            "path": "/orders",
            "purpose": "order_fulfilment",
            "request": {
                "fields": [
                    {"select": "email", "category": "user.contact.email", "validate_as": "email"},
                    {"select": "card_cvv", "category": "user.name", "transform": "strip"},
                    {"select": "illness", "category": "user.health"},
                ]
            },
            "free_text": [{"select": "note", "detect": ["card_number"], "action": "reject"}],
        },
        {
            "method": "POST",
            "path": "/register",
            "purpose": "order_fulfilment",
            "request": {"fields": [{"select": "birth_date", "category": "user.birth_date"}]},
        },
    ],
}

ORDER: dict[str, Any] = {
    "id": "ord_1",
    "customer_id": "cus_1",
    "total": 17.0,
    "customer": {"email": "ada@example.com", "name": "Ada Lovelace", "loyalty_tier": "gold"},
    "shipping_address": {"street": "1 Tea Lane", "city": "Leeds"},
}


def unit_policy() -> Policy:
    return validate_policy(DOCUMENT)


def route(policy: Policy, method: str, path: str) -> RouteSpec:
    found = compile_policy(policy).match(method, path)
    assert found is not None, f"{method} {path} is not planned"
    return found[0]
