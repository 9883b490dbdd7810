"""Saleor's ASGI stack with the privacy middleware inside its compression: `uvicorn privacy_asgi:application`.

It is Saleor's own `saleor/asgi/__init__.py` with one line added: the middleware sits between the
health check and `gzip_compression`, so it sees uncompressed JSON (it never parses a compressed
body on a protected route). SALEOR_ASGI_APP (`module:attribute`) puts the middleware around
another application instead, e.g. a project that builds its own Saleor stack.
"""

import importlib
import os
from typing import Any

from privacy_middleware.middleware import PrivacyMiddleware


def saleor_stack() -> Any:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "saleor.settings")
    from django.core.asgi import get_asgi_application
    from saleor.asgi.cors_handler import cors_handler
    from saleor.asgi.gzip_compression import gzip_compression
    from saleor.asgi.health_check import health_check

    app: Any = health_check(get_asgi_application(), "/health/")
    app = PrivacyMiddleware(app)
    return cors_handler(gzip_compression(app))


def application_named(spec: str) -> Any:
    module, _, attribute = spec.partition(":")
    return PrivacyMiddleware(getattr(importlib.import_module(module), attribute))


application = application_named(os.environ["SALEOR_ASGI_APP"]) if "SALEOR_ASGI_APP" in os.environ else saleor_stack()
