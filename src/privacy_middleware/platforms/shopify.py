"""Shopify's compliance webhooks (`POST <mount>/webhooks/shopify`)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, SecretStr, field_validator
from pydantic_settings import NoDecode

from .common import split_list


class ShopifyWebhookSettings(BaseModel):
    """PRIVACY_WEBHOOKS__SHOPIFY_*: set `secrets` to mount the route."""

    # The app's client secret(s), newest first (old and new during a rotation).
    secrets: Annotated[list[SecretStr], NoDecode] = []
    # Shop domains accepted (X-Shopify-Shop-Domain); empty: any shop signed with the secret.
    shops: Annotated[list[str], NoDecode] = []

    _split = field_validator("secrets", "shops", mode="before")(split_list)
