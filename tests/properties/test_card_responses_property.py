"""Property: a card number anywhere in the JSON response of a route without a plan never leaves
the middleware unmasked, whatever the document, wherever the number sits (a key, a bare number,
inside text, with spaces or dashes, \\u-escaped, in any script's decimal digits), however the body is
cut into messages, plain or gzip.

Examples: PRIVACY_PROPERTY_EXAMPLES (default 200; the dedicated run uses 10,000).
"""

from __future__ import annotations

import asyncio
import os
import re
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from privacy_middleware.fields.card_sentinel import pans_in
from privacy_middleware.middleware import PrivacyMiddleware
from privacy_middleware.policy.load import validate_policy
from privacy_middleware.runtime import Runtime
from privacy_middleware.settings import Settings

EXAMPLES = int(os.environ.get("PRIVACY_PROPERTY_EXAMPLES", "200"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
POLICY = {
    "policy": {"name": "p", "version": "1", "effective_date": "2026-01-01"},
    "categories": {"user.id": {}},
    "purposes": {"payment": {"legal_basis": "contract"}},
}
CARDS = ["4111111111111111", "5555555555554444", "378282246310005", "6011111111111117", "4222222222222"]
MARK = "\x00CARD\x00"
# The zero of some decimal-digit blocks (Unicode Nd): ASCII, Arabic-Indic, Devanagari, Thai, full-width.
ZEROS = [0x30, 0x0660, 0x0966, 0x0E50, 0xFF10]

scalars = st.one_of(st.integers(-(10**6), 10**6), st.text(alphabet='ab 1-:,"\\', max_size=6), st.none(), st.booleans())
trees = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(alphabet="kx1", max_size=3), inner, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def placed(draw: Any) -> tuple[bytes, str]:
    """A JSON body with one card number put somewhere in it, and the card's digits."""
    digits = draw(st.sampled_from(CARDS))
    spelling = draw(st.sampled_from(["plain", "spaces", "dashes", "escaped", "number", "key", "other digits"]))
    tree = draw(trees)
    host: Any = {"x": tree} if not isinstance(tree, dict | list) else tree
    node = host
    while True:  # walk down to a random container
        children = [c for c in (node.values() if isinstance(node, dict) else node) if isinstance(c, dict | list)]
        if not children or draw(st.booleans()):
            break
        node = draw(st.sampled_from(children))
    if spelling == "key":
        target: Any = node if isinstance(node, dict) else None
        if target is None:
            node.append(target := {})
        target[MARK] = draw(scalars)
    else:
        value: Any = int(digits) if spelling == "number" else MARK
        if isinstance(node, dict):
            node[draw(st.text(alphabet="kx", min_size=1, max_size=3))] = value
        else:
            node.insert(draw(st.integers(0, len(node))), value)
    text = orjson.dumps(host).decode()
    if spelling == "spaces":
        written = " ".join(digits[i : i + 4] for i in range(0, len(digits), 4))
    elif spelling == "dashes":
        written = "-".join(digits[i : i + 4] for i in range(0, len(digits), 4))
    elif spelling == "escaped":
        written = "".join(f"\\u{ord(c):04x}" if draw(st.booleans()) else c for c in digits)
    elif spelling == "other digits":  # each digit in some script's decimal digits, as UTF-8 or \\u-escaped
        wide = [chr(draw(st.sampled_from(ZEROS)) + int(c)) for c in digits]
        written = "".join(f"\\u{ord(c):04X}" if draw(st.booleans()) else c for c in wide)
    else:
        written = digits
    prefix = draw(st.sampled_from(["", "paid with ", "x"]))
    text = text.replace(orjson.dumps(MARK).decode()[1:-1], prefix + written)
    return text.encode(), digits


class Shop:
    """Answers the body it is given, cut into the given messages, plain or gzip."""

    def __init__(self) -> None:
        self.pieces: list[bytes] = []
        self.headers: list[tuple[bytes, bytes]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.headers})
        for i, piece in enumerate(self.pieces):
            await send({"type": "http.response.body", "body": piece, "more_body": i < len(self.pieces) - 1})


@pytest.fixture(scope="module")
def through(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Shop, Any]]:
    tmp: Path = tmp_path_factory.mktemp("cardprop")
    shop = Shop()
    runtime = Runtime(
        Settings(database_url=f"sqlite+aiosqlite:///{tmp / 'p.db'}", data_dir=tmp), policy=validate_policy(POLICY)
    )
    app = PrivacyMiddleware(shop, runtime=runtime)
    with asyncio.Runner() as runner:

        def call() -> tuple[list[tuple[bytes, bytes]], bytes]:
            sent: list[dict[str, Any]] = []

            async def receive() -> dict[str, Any]:
                return {"type": "http.request", "body": b"", "more_body": False}

            async def send(message: dict[str, Any]) -> None:
                sent.append(message)

            scope = {"type": "http", "method": "GET", "path": "/unplanned/x", "headers": [], "query_string": b""}
            runner.run(app(scope, receive, send))
            return sent[0]["headers"], b"".join(m.get("body", b"") for m in sent[1:])

        yield shop, call
        runner.run(runtime.stop())


def cut(body: bytes, sizes: list[int]) -> list[bytes]:
    pieces, at = [], 0
    for size in sizes:
        if at >= len(body):
            break
        pieces.append(body[at : at + size])
        at += size
    if at < len(body):
        pieces.append(body[at:])
    return pieces or [b""]


@SETTINGS
@given(placed(), st.lists(st.integers(1, 64), max_size=12), st.booleans())
def test_a_card_number_anywhere_never_leaves_unmasked(
    through: tuple[Shop, Any], body_and_card: tuple[bytes, str], sizes: list[int], gzipped: bool
) -> None:
    shop, call = through
    body, digits = body_and_card
    shop.headers = [(b"content-type", b"application/json")]
    if gzipped:
        packer = zlib.compressobj(wbits=31)
        pieces = [packer.compress(p) + packer.flush(zlib.Z_SYNC_FLUSH) for p in cut(body, sizes)]
        pieces[-1] += packer.flush()
        shop.headers.append((b"content-encoding", b"gzip"))
    else:
        pieces = cut(body, sizes)
    shop.pieces = pieces
    headers, out = call()
    if dict(headers).get(b"content-encoding") == b"gzip":
        out = zlib.decompressobj(31).decompress(out)
    text = out.decode("utf-8")
    unescaped = re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), text)
    for seen in (text, unescaped):
        assert digits not in seen.replace(" ", "").replace("-", ""), (body, text)
        assert next(pans_in(seen), None) is None, (body, text)
    if len(pieces) == 1 and not dict(headers).get(b"content-encoding"):
        orjson.loads(out)  # a whole body comes back as JSON
