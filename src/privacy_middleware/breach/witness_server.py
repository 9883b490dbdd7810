"""A reference checkpoint witness: a small ASGI app to run on another machine.

It accepts a checkpoint only when the log's key signed it and it does not contradict what the
witness already holds (a smaller tree than the latest one, or another root for a size it has,
is refused with 409: that is a rollback or a split view). It countersigns accepted checkpoints
with its own Ed25519 key and appends them to a JSON-lines file.
"""

from __future__ import annotations

import base64
import os
import threading
from pathlib import Path
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ..audit.checkpoint import Checkpoint, CheckpointFormatError, key_hash, verify_checkpoint

MAX_NOTE = 4096


def cosign(note: str, name: str, key: Ed25519PrivateKey) -> str:
    """The note with one more signed-note signature line: the witness's, over the same body."""
    body = note.split("\n\n", 1)[0] + "\n"
    signature = key.sign(body.encode())
    blob = base64.b64encode(key_hash(name, key.public_key()) + signature).decode()
    return f"{note}\u2014 {name} {blob}\n"


class WitnessStore:
    """The witnessed notes, one JSON line each, append-only."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def notes(self) -> list[str]:
        if not self.path.exists():
            return []
        notes = []
        for line in self.path.read_bytes().splitlines():
            if line.strip():
                record = orjson.loads(line)
                notes.append(str(record["note"]))
        return notes

    def append(self, note: str) -> None:
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            with os.fdopen(fd, "ab") as handle:
                handle.write(orjson.dumps({"note": note}) + b"\n")
                handle.flush()
                os.fsync(handle.fileno())


class WitnessApp:
    def __init__(self, log_keys: list[Ed25519PublicKey], key: Ed25519PrivateKey, store: WitnessStore, *, name: str):
        if not name or " " in name or "\n" in name:
            raise ValueError("the witness name is one word")
        self.log_keys = log_keys
        self.key = key
        self.store = store
        self.name = name

    def _decide(self, note: str) -> tuple[int, str]:
        try:
            checkpoint = verify_checkpoint(note, self.log_keys)
        except CheckpointFormatError:
            return 400, "not a checkpoint note"
        if checkpoint is None:
            return 403, "not signed by the log's key"
        held: list[Checkpoint] = []
        for stored in self.store.notes():
            parsed = verify_checkpoint(stored, self.log_keys)
            if parsed is not None and parsed.origin == checkpoint.origin:
                held.append(parsed)
        for seen in held:
            if seen.size == checkpoint.size and seen.root != checkpoint.root:
                return 409, "another root for a tree size already witnessed"
        latest = max((c.size for c in held), default=-1)
        if checkpoint.size < latest:
            return 409, "smaller than a tree already witnessed (rollback)"
        if any(c.size == checkpoint.size for c in held):
            return 200, "already witnessed"
        cosigned = cosign(note, self.name, self.key)
        self.store.append(cosigned)
        return 200, cosigned

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        if scope["method"] == "GET":
            body = orjson.dumps({"checkpoints": [{"note": n} for n in self.store.notes()]})
            await _answer(send, 200, body, b"application/json")
            return
        if scope["method"] != "POST":
            await _answer(send, 405, b"method not allowed\n", b"text/plain")
            return
        data = b""
        while True:
            message = await receive()
            data += message.get("body", b"")
            if len(data) > MAX_NOTE:
                await _answer(send, 413, b"too large\n", b"text/plain")
                return
            if not message.get("more_body"):
                break
        try:
            note = data.decode()
        except UnicodeDecodeError:
            await _answer(send, 400, b"not text\n", b"text/plain")
            return
        status, text = self._decide(note)
        await _answer(send, status, (text if text.endswith("\n") else text + "\n").encode(), b"text/plain")


async def _answer(send: Any, status: int, body: bytes, media: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", media), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
