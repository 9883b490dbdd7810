"""Saleor: GraphQL adapter, webhook signature verification (JWS or HMAC) and a policy preset."""

from .adapter import SaleorAdapter
from .webhooks import SaleorWebhooks, jwks_url_for

__all__ = ["SaleorAdapter", "SaleorWebhooks", "jwks_url_for"]
