"""Fixtures for the browser tests: one live demo server per package run, a fresh Chrome per test,
axe-core installed once from npm into a cache directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver

from support.browser import LiveDemo, load_axe, new_driver, serve_demo


@pytest.fixture(scope="package")
def live_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveDemo]:
    with serve_demo(tmp_path_factory.mktemp("browser-demo")) as live:
        yield live


@pytest.fixture(scope="package")
def axe_script() -> str:
    return load_axe()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    """A fresh browser (own cookies and storage) per test."""
    driver = new_driver(tmp_path)
    try:
        yield driver
    finally:
        driver.quit()
