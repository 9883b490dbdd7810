"""The demo's start message links the storefront, the centre and the console with an officer token
that really opens the console."""

from __future__ import annotations

import re

import pytest

from privacy_middleware.demo.run import officer_token, start_links
from support.demo import Demo
from support.pages import sign_in

pytestmark = pytest.mark.anyio


async def test_start_message_links_the_pages_and_its_officer_token_opens_the_console(demo: Demo) -> None:
    message = start_links("http://127.0.0.1:8000", officer_token(demo.shop))
    for path in ["/", "/privacy/center", "/privacy/admin"]:
        assert f"http://127.0.0.1:8000{path}\n" in message + "\n"
    token = re.search(r"officer token, valid 8 hours: (\S+)\)", message)
    assert token is not None
    await sign_in(demo, token[1], "/privacy/admin/signin")
    assert (await demo.client.get("/privacy/admin")).status_code == 200
    storefront = await demo.client.get("/")
    assert '<script src="/privacy/consent.js" defer></script>' in storefront.text
    assert (await demo.client.get("/storefront/store.js")).status_code == 200
