"""One instance process of the fault suite: the demo shop behind the middleware, configured from
FAULT_* variables (uvicorn factory `support.fault_app:create_app`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from privacy_middleware.demo.run import build_demo
from privacy_middleware.demo.shop import DemoShop


def create_app() -> Any:
    shared = Path(os.environ["FAULT_SHARED_DIR"])
    data = Path(os.environ["FAULT_DATA_DIR"])
    app, _ = build_demo(
        data,
        shop=DemoShop(shared / "shop"),
        database_url=os.environ["FAULT_DATABASE_URL"],
        redis_url=os.environ["FAULT_REDIS_URL"],
        redis_prefix="fault:",
        keys=f"local://{shared / 'keyring.json'}",
        pseudonym_secret="p" * 32,
        consent={"secure_cookie": False, "cookie_secret": "c" * 32, "cache_seconds": 2},
        audit={
            "login_guard_key": "g" * 32,
            "side_record_key": "s" * 32,
            "signing_key_file": shared / "audit-signing-key.pem",
            "spool_dir": data / "spool",
            "retention_interval_seconds": 0,
        },
    )
    return app
