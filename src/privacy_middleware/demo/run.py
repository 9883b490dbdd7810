"""`privacy-middleware demo`: the demo shop behind the middleware, both databases under one folder."""

from __future__ import annotations

import logging
from importlib import resources
from pathlib import Path
from typing import Any

import uvicorn
from rich.console import Console

from ..middleware import PrivacyMiddleware
from ..policy.load import load_policy
from ..runtime import Runtime
from ..settings import JwtSettings, Settings
from .adapter import DemoShopAdapter
from .shop import SHOP_AUDIENCE, SHOP_ISSUER, DemoShop


def demo_policy_path() -> Path:
    return Path(str(resources.files("privacy_middleware.demo").joinpath("policy.toml")))


ENV_FILE = "privacy.env"


def write_env_file(data_dir: Path) -> Path:
    """The demo's settings as an env file, so any command runs on its data with `--env-file`."""
    data_dir = data_dir.resolve()
    path = data_dir / ENV_FILE
    data_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "# Written by `privacy-middleware demo`: the settings the demo runs with.\n"
        f"# Use: privacy-middleware --env-file {path} COMMAND\n"
        f"PRIVACY_POLICY_FILE={demo_policy_path()}\n"
        f"PRIVACY_DATABASE_URL=sqlite+aiosqlite:///{data_dir / 'privacy.db'}\n"
        f"PRIVACY_KEYS=local://{data_dir / 'keyring.json'}\n"
        f"PRIVACY_DATA_DIR={data_dir}\n"
        "PRIVACY_SHOP_ADAPTER=demo\n"
        "PRIVACY_CONSENT__SECURE_COOKIE=false\n",
        encoding="utf-8",
    )
    return path


def build_demo(
    data_dir: Path, *, shop: DemoShop | None = None, **overrides: object
) -> tuple[PrivacyMiddleware, DemoShop]:
    """The demo shop wrapped by the middleware with the shipped demo policy."""
    data_dir = data_dir.resolve()
    shop = shop or DemoShop(data_dir)
    values: dict[str, Any] = {
        "policy_file": demo_policy_path(),
        "database_url": f"sqlite+aiosqlite:///{data_dir / 'privacy.db'}",
        "keys": f"local://{data_dir / 'keyring.json'}",
        "data_dir": data_dir,
        "consent": {"secure_cookie": False},  # the demo serves plain http on loopback
        "jwt": JwtSettings(
            issuer=SHOP_ISSUER, audience=SHOP_AUDIENCE, algorithms=["EdDSA"], public_key=shop.public_key_pem
        ),
    }
    values.update(overrides)
    settings = Settings(**values)
    policy = load_policy(settings.policy_file)
    runtime = Runtime(settings, policy=policy, adapter=DemoShopAdapter(shop.engine, policy))
    return PrivacyMiddleware(shop.app, runtime=runtime), shop


def officer_token(shop: DemoShop, hours: int = 8) -> str:
    """A privacy officer's token (the policy's admin scope) for the demo console."""
    return shop.token({"sub": "demo-officer", "scope": "privacy:admin"}, ttl=hours * 3600)


def start_links(base: str, token: str) -> str:
    return (
        "Open in a browser:\n"
        f"  storefront with the consent banner  {base}/\n"
        f"  shopper privacy centre              {base}/privacy/center\n"
        "      (sign in there with the token that /auth/register or /auth/login returns)\n"
        f"  privacy officer console             {base}/privacy/admin\n"
        f"      (sign in there with this officer token, valid 8 hours: {token})"
    )


def run_demo(host: str, port: int, data_dir: Path) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    app, shop = build_demo(data_dir)
    env_file = write_env_file(data_dir)
    console = Console(soft_wrap=True)
    base = f"http://{host}:{port}"
    console.print(f"[bold]Demo Tea Shop behind privacy-middleware[/bold] on {base}  (data in {data_dir})")
    console.print(start_links(base, officer_token(shop)), highlight=False)
    console.print(
        f"Run any command on the demo's data: privacy-middleware --env-file {env_file} COMMAND\n"
        f"  e.g. privacy-middleware --env-file {env_file} dsar list --overdue\n"
        f"       privacy-middleware --env-file {env_file} audit search --kind 'authentication.*'"
    )
    console.print(
        "Try:\n"
        f"  curl -s {base}/privacy/policy | head -c 300\n"
        f"  curl -s -X POST {base}/auth/register -H 'content-type: application/json' "
        '-d \'{"email":"ada@example.com","password":"correct horse","name":"Ada","birth_date":"1990-04-01"}\'\n'
        f"  curl -s -X POST {base}/checkout -H \"authorization: Bearer $TOKEN\" -H 'content-type: application/json' "
        '-d \'{"items":[{"sku":"TEA-001","qty":2}],"payment":{"card":{"number":"4242 4242 4242 4242",'
        '"cvv":"123","exp_month":12,"exp_year":2030,"holder":"Ada"}},'
        '"shipping_address":{"name":"Ada","street":"1 Tea Lane","city":"Leeds","postal_code":"LS1 1AA",'
        '"country":"GB","phone":"+44 113 496 0000"}}\'\n'
        f"  curl -s -X POST {base}/partners/token -H 'content-type: application/json' "
        '-d \'{"client_id":"logistics-co","client_secret":"demo-partner-secret"}\'   # then GET /orders with it\n'
        f"  curl -s {base}/metrics | grep privacy_"
    )
    # proxy_headers off: the client address comes from PRIVACY_TRUSTED_PROXIES only, never from a
    # header any local client can write.
    uvicorn.run(app, host=host, port=port, log_level="info", lifespan="on", proxy_headers=False)
