"""privacy-middleware: make a shop API keep the promises of its privacy policy.

The public API is imported lazily, so `privacy-middleware --version` and other commands do not pay
for loading the whole middleware.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from .context import Principal, RequestContext, request_context
    from .errors import PrivacyError
    from .middleware import PrivacyMiddleware
    from .policy.load import load_policy
    from .policy.schema import Policy
    from .settings import Settings
    from .transport import PrivacyTransport

# Public name -> the module that defines it.
_EXPORTS = {
    "PrivacyMiddleware": ".middleware",
    "PrivacyTransport": ".transport",
    "Settings": ".settings",
    "load_policy": ".policy.load",
    "Policy": ".policy.schema",
    "PrivacyError": ".errors",
    "Principal": ".context",
    "RequestContext": ".context",
    "request_context": ".context",
}

__all__ = [
    "Policy",
    "Principal",
    "PrivacyError",
    "PrivacyMiddleware",
    "PrivacyTransport",
    "RequestContext",
    "Settings",
    "__version__",
    "load_policy",
    "request_context",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'privacy_middleware' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
