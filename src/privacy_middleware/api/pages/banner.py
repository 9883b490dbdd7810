"""`<mount>/consent.js` and `<mount>/consent.css`: the consent banner for the shop's own pages.

The script is the vendored vanilla-cookieconsent build (MIT, see static/vendor/LICENSE) followed by
our SDK (sdk.js), which binds it to the consent API. The policy's choosable purposes, their cookie
patterns and the banner's strings in the visitor's language are embedded as one JSON object, so the
banner needs no second request to learn what to ask.
"""

from __future__ import annotations

import hashlib
from importlib import resources
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ...consent.decisions import needs_choice
from ...policy.schema import Policy
from .web import CATALOGUE, Translator, negotiate

BANNER_KEYS = (
    "title",
    "description",
    "gpc_note",
    "accept_all",
    "reject_all",
    "preferences",
    "preferences_title",
    "save",
    "close",
    "prefs_intro_title",
    "prefs_intro",
    "necessary_title",
    "cookies",
    "gpc_locked",
    "more_title",
    "center_link",
    "notice_link",
)


def _read(name: str) -> bytes:
    return resources.files(__package__).joinpath(name).read_bytes()


class Banner:
    def __init__(self, policy: Policy, mount: str) -> None:
        self.policy = policy
        self.mount = mount
        self._library = _read("static/vendor/cookieconsent.umd.js")
        self._sdk = _read("sdk.js")
        self.css = _read("static/vendor/cookieconsent.css")
        self._scripts: dict[str, bytes] = {lang: self._script(lang) for lang in CATALOGUE}

    def config(self, lang: str) -> dict[str, Any]:
        t = Translator(lang)
        policy = self.policy
        purposes = []
        necessary = []
        for name, purpose in policy.purposes.items():
            if needs_choice(purpose):
                purposes.append(
                    {
                        "name": name,
                        "title": purpose.description or name,
                        "description": t(f"basis.{purpose.legal_basis}") + ".",
                        "cookie_class": purpose.cookie_class,
                        "cookies": [rule.pattern for rule in policy.tracking.cookies if rule.purpose == name],
                    }
                )
            else:
                necessary.append(purpose.description or name)
        return {
            "api": self.mount,
            "css": f"{self.mount}/consent.css",
            "center": f"{self.mount}/center",
            "lang": lang,
            "policy_version": policy.policy.version,
            "purposes": purposes,
            "necessary": necessary,
            "strings": {key: t(f"banner.{key}", shop=policy.policy.name) for key in BANNER_KEYS},
        }

    def _script(self, lang: str) -> bytes:
        config = orjson.dumps(self.config(lang)).replace(b"</", b"<\\/")
        return self._library + b"\n" + self._sdk.replace(b"__PRIVACY_CONFIG__", config)

    def script(self, lang: str) -> bytes:
        return self._scripts[lang]

    def routes(self) -> list[Route]:
        async def script(request: Request) -> Response:
            lang = negotiate(request.headers.get("accept-language"), request.query_params.get("lang"))
            body = self._scripts[lang]
            return Response(
                body,
                media_type="text/javascript; charset=utf-8",
                headers={
                    "cache-control": "public, max-age=300",
                    "vary": "Accept-Language",
                    "etag": '"' + hashlib.sha256(body).hexdigest()[:32] + '"',
                    "x-content-type-options": "nosniff",
                },
            )

        async def stylesheet(request: Request) -> Response:
            return Response(
                self.css,
                media_type="text/css; charset=utf-8",
                headers={"cache-control": "public, max-age=3600", "x-content-type-options": "nosniff"},
            )

        return [
            Route("/consent.js", script, methods=["GET"]),
            Route("/consent.css", stylesheet, methods=["GET"]),
        ]
