"""Helpers for tests of the privacy pages over HTTP: the CSRF field of a page, signing in."""

from __future__ import annotations

import re

import httpx

from support.demo import Demo

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found is not None, "the page has no CSRF field"
    return found.group(1)


async def sign_in(demo: Demo, token: str, path: str = "/privacy/center/signin") -> httpx.Response:
    response = await demo.client.post(path, data={"token": token, "next": path.rsplit("/", 1)[0]})
    assert response.status_code == 303, response.text
    assert "error" not in response.headers["location"]
    return response
