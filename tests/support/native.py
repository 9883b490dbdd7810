"""Whether the tests of the native disclosure pass may skip.

They skip where the extension was not built (an install without a compiler). README's test command
(scripts/test.sh) sets PRIVACY_TEST_NATIVE=required: there a missing build fails those tests
instead of skipping them, so CI cannot pass without having run them."""

from __future__ import annotations

import os

import pytest

from privacy_middleware.fields import native

REQUIRED = os.environ.get("PRIVACY_TEST_NATIVE") == "required"

needs_native = pytest.mark.skipif(
    not native.AVAILABLE and not REQUIRED, reason="the native extension was not built (no compiler)"
)
