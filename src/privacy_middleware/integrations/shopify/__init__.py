"""Shopify: mandatory compliance webhooks, a GraphQL Admin API adapter and a policy preset."""

from .adapter import SHOPIFY_API_VERSION, ShopifyAdapter
from .webhooks import COMPLIANCE_TOPICS, ShopifyWebhooks, shopify_hmac

__all__ = ["COMPLIANCE_TOPICS", "SHOPIFY_API_VERSION", "ShopifyAdapter", "ShopifyWebhooks", "shopify_hmac"]
