"""Saleor's webhooks (`POST <mount>/webhooks/saleor`)."""

from __future__ import annotations

from pydantic import BaseModel, SecretStr


class SaleorWebhookSettings(BaseModel):
    """PRIVACY_WEBHOOKS__SALEOR_*: set `api_url` to mount the route."""

    # The Saleor GraphQL URL whose JWKS verifies signed deliveries.
    api_url: str | None = None
    # The webhook's secret key (HMAC), when it has one instead of JWS signing.
    secret: SecretStr | None = None
