"""Platform webhook settings by name: one table, `"platform" -> settings model`.

Each platform's settings are a small pydantic model in a module of its own here; its fields are
read from `PRIVACY_WEBHOOKS__<PLATFORM>_<FIELD>` (the model's field `secrets` of platform `shopify`
is `PRIVACY_WEBHOOKS__SHOPIFY_SECRETS`). `settings.py` builds `WebhookSettings` from this table, so
adding a platform's settings is one new module and one line here; its receiver reads them with
`WebhookSettings.platform(TheModel)`. These modules sit on the bottom floor (pydantic only), so the
settings never import the integrations.
"""

from __future__ import annotations

from pydantic import BaseModel

from .saleor import SaleorWebhookSettings
from .shopify import ShopifyWebhookSettings
from .woocommerce import WooCommerceWebhookSettings

PLATFORM_SETTINGS: dict[str, type[BaseModel]] = {
    "shopify": ShopifyWebhookSettings,
    "woocommerce": WooCommerceWebhookSettings,
    "saleor": SaleorWebhookSettings,
}

__all__ = ["PLATFORM_SETTINGS"]
