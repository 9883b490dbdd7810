"""Per-field cost of KeyService.encrypt/decrypt (warm cache) as a ratio to raw AES-GCM.

Run: `.venv/bin/python bench/bench_crypto.py [--iterations N] [--smoke]`

Both sides are measured in the same run on the same machine: the baseline is one
`AESGCM.encrypt` / `AESGCM.decrypt` call with a cached key object on a 16-digit PAN and a
55-byte associated data; the service side is the full async call (envelope text, per-message
HKDF key, associated data, cache lookups) on a local keyring and a SQLite store, warmed so no
key is loaded during timing. Each figure is the best of several rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import platform
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import cryptography
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

sys.path.insert(0, str(Path(__file__).parent))
from common import Row, Table, expect

from privacy_middleware.crypto import KeyService
from privacy_middleware.store import Database

PAN = "4111111111111111"
CATEGORY = "user.financial.card.number"


def best_sync(fn: Callable[[], object], iterations: int, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(iterations):
            fn()
        best = min(best, (time.perf_counter() - start) / iterations)
    return best


async def best_async(fn: Callable[[], Awaitable[object]], iterations: int, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(iterations):
            await fn()
        best = min(best, (time.perf_counter() - start) / iterations)
    return best


async def main(smoke: bool = False, iterations: int = 20_000, rounds: int = 5) -> list[Row]:
    if smoke:
        iterations, rounds = 50, 1
    table = Table()
    logging.getLogger("privacy_middleware.crypto").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as workdir:
        database = Database(f"sqlite+aiosqlite:///{workdir}/bench.db")
        await database.upgrade()
        keys = await KeyService.open(f"local://{workdir}/keyring.json", database=database, tenant="bench-shop")
        try:
            token = await keys.encrypt(PAN, category=CATEGORY, subject="customer-1")
            det = await keys.encrypt_deterministic(PAN, category=CATEGORY, subject="customer-1")
            expect(token != PAN and PAN not in token, "encrypt returned the card number")
            expect(await keys.decrypt(token, category=CATEGORY, subject="customer-1") == PAN, "pe1 round trip failed")
            expect(await keys.decrypt(det, category=CATEGORY, subject="customer-1") == PAN, "pd1 round trip failed")

            aead = AESGCM(os.urandom(32))
            nonce = os.urandom(12)
            aad = os.urandom(55)
            plain = PAN.encode()
            sealed = aead.encrypt(nonce, plain, aad)

            raw_encrypt = best_sync(lambda: aead.encrypt(nonce, plain, aad), iterations, rounds)
            raw_decrypt = best_sync(lambda: aead.decrypt(nonce, sealed, aad), iterations, rounds)
            figures = {
                "encrypt (pe1)": (
                    await best_async(
                        lambda: keys.encrypt(PAN, category=CATEGORY, subject="customer-1"), iterations, rounds
                    ),
                    raw_encrypt,
                ),
                "decrypt (pe1)": (
                    await best_async(
                        lambda: keys.decrypt(token, category=CATEGORY, subject="customer-1"),
                        iterations,
                        rounds,
                    ),
                    raw_decrypt,
                ),
                "encrypt_deterministic (pd1)": (
                    await best_async(
                        lambda: keys.encrypt_deterministic(PAN, category=CATEGORY, subject="customer-1"),
                        iterations,
                        rounds,
                    ),
                    raw_encrypt,
                ),
                "decrypt (pd1)": (
                    await best_async(
                        lambda: keys.decrypt(det, category=CATEGORY, subject="customer-1"), iterations, rounds
                    ),
                    raw_decrypt,
                ),
                "blind_index": (
                    await best_async(lambda: keys.blind_index(PAN, category=CATEGORY), iterations, rounds),
                    raw_encrypt,
                ),
            }
        finally:
            await keys.close()
            await database.dispose()

    print(
        f"bench_crypto: python {platform.python_version()} on {platform.machine()}, "
        f"cryptography {cryptography.__version__}, {os.cpu_count()} CPUs; "
        f"{iterations} iterations x best of {rounds} rounds; warm cache, local keyring, SQLite store"
    )
    for name, (seconds, baseline) in figures.items():
        raw = "raw AESGCM.decrypt" if name.startswith("decrypt") else "raw AESGCM.encrypt"
        table.add(Row("crypto", name, seconds, baseline, raw))
    return table.rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    asyncio.run(main(args.smoke, args.iterations, args.rounds))
    sys.exit(0)
