"""Shop adapters by name: one table, `"name" -> "module:factory"` (imported only when chosen).

PRIVACY_SHOP_ADAPTER (or `--adapter`) names a row of `SHOP_ADAPTERS`, or is itself a
`package.module:factory`. A factory is called with the runtime (it reads `settings` and `policy`,
and may register cleanup with `on_stop`) and returns a ShopAdapter. Adding an adapter is one new
module and one line here.
"""

from __future__ import annotations

import importlib
from typing import Any

from ..errors import ConfigError
from .adapter import ShopAdapter

SHOP_ADAPTERS: dict[str, str] = {
    "none": "privacy_middleware.rights.middleware_only:from_runtime",
    "demo": "privacy_middleware.demo.adapter:from_runtime",
    "sql": "privacy_middleware.integrations.declarative.sql:from_runtime",
    "django": "privacy_middleware.integrations.declarative.django_orm:from_runtime",
}


def import_factory(spec: str) -> Any:
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        names = ", ".join(repr(name) for name in SHOP_ADAPTERS)
        raise ConfigError(f"--adapter must be {names} or 'package.module:factory'")
    try:
        return getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError):
        raise ConfigError(f"cannot load the shop adapter {spec!r}") from None


def load_adapter(spec: str, runtime: Any) -> ShopAdapter:
    """A registered name, or `module:factory` called with the runtime."""
    factory = import_factory(SHOP_ADAPTERS.get(spec, spec))
    adapter = factory(runtime)
    if not isinstance(adapter, ShopAdapter):
        raise ConfigError(f"{spec!r} did not return a ShopAdapter")
    return adapter
