"""Any Python callable as an identity provider: `package.module:function`, called with the ASGI scope.

The function returns a Principal (or None for "not mine / nobody signed in"), sync or async. If it
raises, the caller is not treated as anonymous: the route answers 503 `identity_unavailable`.
"""

from __future__ import annotations

import importlib
import inspect
import logging
from collections.abc import Callable
from typing import Any

from ..context import Principal
from ..errors import ConfigError, PrivacyError
from .base import CallerRequest, unavailable

logger = logging.getLogger("privacy_middleware.identity")


def load_callable(spec: str) -> Callable[..., Any]:
    module_name, _, name = spec.partition(":")
    if not module_name or not name:
        raise ConfigError(f"identity provider {spec!r} must be a name or 'package.module:function'")
    try:
        found = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError):
        raise ConfigError(f"cannot load the identity provider {spec!r}") from None
    if not callable(found):
        raise ConfigError(f"identity provider {spec!r} is not callable")
    return found  # type: ignore[no-any-return]


class CallableProvider:
    def __init__(self, function: Callable[..., Any], name: str = "callable") -> None:
        self.function = function
        self.name = name

    async def resolve(self, request: CallerRequest) -> Principal | None:
        try:
            result = self.function(request.scope)
            if inspect.isawaitable(result):
                result = await result
        except PrivacyError:
            raise
        except Exception as exc:
            logger.warning("identity provider %s failed: %s", self.name, type(exc).__name__)
            raise unavailable(self.name) from None
        if result is not None and not isinstance(result, Principal):
            logger.error("identity provider %s returned %s, not a Principal", self.name, type(result).__name__)
            raise unavailable(self.name)
        return result
