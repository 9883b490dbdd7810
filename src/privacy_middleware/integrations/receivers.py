"""Platform webhook receivers by name: one table, `"name" -> "module:factory"`.

A factory takes the webhook settings and the shared HTTP client and returns a receiver, or None
when that platform is not configured. Adding a platform is one new module and one line here (and
its settings under PRIVACY_WEBHOOKS__*).
"""

from __future__ import annotations

import importlib

import httpx

from ..settings import WebhookSettings
from .common import WebhookReceiver

WEBHOOK_RECEIVERS: dict[str, str] = {
    "shopify": "privacy_middleware.integrations.shopify.webhooks:from_settings",
    "woocommerce": "privacy_middleware.integrations.woocommerce.webhooks:from_settings",
    "saleor": "privacy_middleware.integrations.saleor.webhooks:from_settings",
}


def configured_receivers(hooks: WebhookSettings, http: httpx.AsyncClient) -> list[WebhookReceiver]:
    """The receivers whose platform is configured, in table order."""
    receivers: list[WebhookReceiver] = []
    for spec in WEBHOOK_RECEIVERS.values():
        module_name, _, attribute = spec.partition(":")
        receiver = getattr(importlib.import_module(module_name), attribute)(hooks, http)
        if receiver is not None:
            receivers.append(receiver)
    return receivers
