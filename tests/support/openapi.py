"""Checks real privacy-API responses against the OpenAPI description the API serves."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate as validate_spec


@dataclass
class OpenAPIChecker:
    document: dict[str, Any]
    mount: str = "/privacy"
    checked: list[tuple[str, str, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        validate_spec(self.document)
        self._paths = [
            (re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$"), template)
            for template in self.document["paths"]
        ]
        self._pages = [
            re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$")
            for template in self.document.get("x-html-pages", [])
        ]

    def covers(self, path: str) -> bool:
        if any(pattern.match(path) for pattern in self._pages):
            return False  # an HTML page or asset, for browsers
        return path == self.mount or path.startswith(self.mount + "/") or path.startswith("/.well-known/")

    def operation(self, method: str, path: str) -> tuple[str, dict[str, Any]]:
        for pattern, template in self._paths:
            if pattern.match(path):
                item = self.document["paths"][template]
                assert method.lower() in item, f"{method} {template} is not in the OpenAPI description"
                return template, item[method.lower()]
        raise AssertionError(f"{method} {path} matches no path of the OpenAPI description")

    def check(self, method: str, path: str, status: int, content_type: str, body: bytes) -> None:
        if method == "HEAD" or status in (204, 304) or status == 405:
            return
        template, operation = self.operation(method, path)
        responses = operation["responses"]
        response = responses.get(str(status)) or responses.get("default")
        assert response is not None, f"{method} {template}: status {status} is not described"
        media = content_type.split(";")[0].strip()
        assert media in response["content"], f"{method} {template} {status}: {media} is not described"
        schema = response["content"][media]["schema"]
        if "json" in media:
            instance = orjson.loads(body)
            validator = Draft202012Validator({**schema, "components": self.document["components"]})
            errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
            assert not errors, f"{method} {template} {status}: " + "; ".join(
                f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors[:5]
            )
        self.checked.append((method, template, status))

    async def hook(self, response: httpx.Response) -> None:
        """An httpx response hook: every privacy-API response a test sees is checked."""
        request = response.request
        if not self.covers(request.url.path):
            return
        await response.aread()
        self.check(
            request.method,
            request.url.path,
            response.status_code,
            response.headers.get("content-type", ""),
            response.content,
        )
