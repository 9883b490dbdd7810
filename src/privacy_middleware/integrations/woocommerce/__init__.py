"""WooCommerce: REST API v3 adapter, webhook signature verification and a policy preset."""

from .adapter import WooCommerceAdapter
from .webhooks import WooCommerceWebhooks, woocommerce_signature

__all__ = ["WooCommerceAdapter", "WooCommerceWebhooks", "woocommerce_signature"]
