"""`privacy-middleware serve --upstream URL`: the middleware as a reverse proxy in front of any shop.

`PrivacyMiddleware(ProxyApp(upstream))` runs under uvicorn; runtime settings come from PRIVACY_*
as usual. With `--workers` > 1 uvicorn needs an import string, so the proxy options travel to each
worker in `PRIVACY_PROXY_*` variables read by the `create_app` factory.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
from typing import TYPE_CHECKING, Any

from .errors import ConfigError

if TYPE_CHECKING:  # imported lazily so the CLI starts fast for other commands
    from .middleware import PrivacyMiddleware
    from .settings import Settings

UPSTREAM_ENV = "PRIVACY_PROXY_UPSTREAM"
TIMEOUT_ENV = "PRIVACY_PROXY_TIMEOUT"
PRESERVE_HOST_ENV = "PRIVACY_PROXY_PRESERVE_HOST"
FACTORY = "privacy_middleware.serve:create_app"
# Before 0.55 uvicorn's multi-process listening socket was created without IPPROTO_TCP, so asyncio
# never set TCP_NODELAY on accepted connections: Nagle plus delayed ACK added about 40 ms to every
# keep-alive request under --workers > 1 (bench/bench_workers.py measures it).
NODELAY_UVICORN = (0, 55)
# uvicorn's supervisor pings each worker and kills one that does not answer within this time; its
# default (5 s) also counts a replacement's start (a spawned interpreter importing the package), so
# on a CPU-starved machine it killed every replacement before it could answer, in a loop.
WORKER_HEALTHCHECK_SECONDS = 30

logger = logging.getLogger(__name__)


def build_proxy_app(
    upstream: str,
    settings: Settings | None = None,
    *,
    timeout: float = 30.0,
    preserve_host: bool = False,
    engine: str | None = None,
) -> PrivacyMiddleware:
    """The proxy wrapped by the middleware: what `serve` runs (`engine`: its upstream client)."""
    import httpx

    from .asgi.proxy import ProxyApp
    from .middleware import PrivacyMiddleware

    try:
        proxy = ProxyApp(
            upstream,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            preserve_host=preserve_host,
            client_engine=engine or client_engine(),
        )
    except ValueError as exc:
        raise ConfigError(f"--upstream: {exc}") from None
    # Aliases of planned routes (case, `;matrix`, `.json`, `?rest_route=`) are placed on their plan
    # by the middleware's canonicaliser: the proxy is not a router it can ask.
    return PrivacyMiddleware(proxy, settings)


def client_engine() -> str:
    """aiohttp when installed (the `server` extra): bench_proxy measured it at a fraction of httpx's CPU."""
    try:
        import aiohttp  # noqa: F401
    except ImportError:
        return "httpx"
    return "aiohttp"


def create_app() -> PrivacyMiddleware:
    """uvicorn factory (`--factory`) for multi-worker runs: options from PRIVACY_PROXY_*."""
    upstream = os.environ.get(UPSTREAM_ENV)
    if not upstream:
        raise ConfigError(f"{UPSTREAM_ENV} is not set")
    try:
        timeout = float(os.environ.get(TIMEOUT_ENV, "30"))
    except ValueError:
        raise ConfigError(f"{TIMEOUT_ENV} must be a number of seconds") from None
    preserve = os.environ.get(PRESERVE_HOST_ENV, "").lower() in ("1", "true", "yes")
    app = build_proxy_app(upstream, timeout=timeout, preserve_host=preserve)
    freeze_startup_heap()
    return app


def freeze_startup_heap() -> None:
    """The server's process only: move what start-up built out of the garbage collector's reach.

    Every full collection walks every tracked object; the imported modules and the built app are
    most of them and live for ever. A full pass over them took 40 to 120 ms on the bench machine,
    and a strict audit reveal caught in one waited that long. The middleware as a library never
    does this: the host application owns its process's collector."""
    gc.collect()
    gc.freeze()


def serve(
    upstream: str,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    workers: int = 1,
    timeout: float = 30.0,
    preserve_host: bool = False,
    log_level: str = "info",
) -> None:
    import uvicorn

    if workers > 1 and _version(uvicorn.__version__) < NODELAY_UVICORN:
        logger.warning(
            "uvicorn %s adds about 40 ms to keep-alive requests with --workers > 1; install uvicorn>=0.55"
            " (the `server` extra requires it)",
            uvicorn.__version__,
        )
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_level": log_level,
        "lifespan": "on",
        # The middleware resolves the client IP itself from PRIVACY_TRUSTED_PROXIES.
        "proxy_headers": False,
        # The upstream's own Server/Date headers pass through.
        "server_header": False,
        "date_header": False,
        "ws": "none",
    }
    if workers > 1:
        os.environ[UPSTREAM_ENV] = upstream
        os.environ[TIMEOUT_ENV] = str(timeout)
        os.environ[PRESERVE_HOST_ENV] = "1" if preserve_host else ""
        create_app()  # fail here, once, on a bad policy or upstream, before workers start
        options["timeout_worker_healthcheck"] = WORKER_HEALTHCHECK_SECONDS
        uvicorn.run(FACTORY, factory=True, workers=workers, **options)
    else:
        app = build_proxy_app(upstream, timeout=timeout, preserve_host=preserve_host)
        freeze_startup_heap()
        uvicorn.run(app, **options)


def _version(text: str) -> tuple[int, ...]:
    parts = []
    for part in text.split(".")[:2]:
        digits = "".join(c for c in part if c.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def cmd_serve(args: argparse.Namespace) -> int:
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    if args.workers < 1:
        raise ConfigError("--workers must be at least 1")
    if args.timeout <= 0:
        raise ConfigError("--timeout must be positive")
    serve(
        args.upstream,
        host=args.host,
        port=args.port,
        workers=args.workers,
        timeout=args.timeout,
        preserve_host=args.preserve_host,
        log_level=args.log_level,
    )
    return 0


def add_serve_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register `serve` on the CLI's subcommand parsers."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "serve", help="run the middleware as a reverse proxy in front of a shop (PRIVACY_* settings)"
    )
    parser.add_argument("--upstream", required=True, help="the shop's base URL, e.g. http://127.0.0.1:3000")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the shop")
    parser.add_argument(
        "--preserve-host",
        action="store_true",
        help="forward the client's Host header instead of the upstream's",
    )
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    parser.set_defaults(func=cmd_serve)
    return parser
