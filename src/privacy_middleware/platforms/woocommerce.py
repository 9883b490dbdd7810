"""WooCommerce's webhooks (`POST <mount>/webhooks/woocommerce`)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, SecretStr, field_validator
from pydantic_settings import NoDecode

from .common import split_list


class WooCommerceWebhookSettings(BaseModel):
    """PRIVACY_WEBHOOKS__WOOCOMMERCE_*: set `secrets` to mount the route."""

    secrets: Annotated[list[SecretStr], NoDecode] = []

    _split = field_validator("secrets", mode="before")(split_list)
