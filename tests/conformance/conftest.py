"""Each conformance module names its seed in SEED; `demo` runs the demo shop behind that policy."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from support.conformance import seed_demo
from support.demo import Demo


@pytest.fixture
async def demo(request: pytest.FixtureRequest, tmp_path: Path, asgi_lifespan: Any) -> AsyncIterator[Demo]:
    seed: str = request.module.SEED
    async with seed_demo(seed, tmp_path, asgi_lifespan) as running:
        yield running
