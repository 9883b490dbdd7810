"""Checkpoints witnessed outside the store.

Removing the last checkpoints together with their leaves leaves a log that still verifies on its
own; only a copy kept elsewhere shows it. The relay sends every new signed checkpoint to a witness
(an HTTP service that checks the log's signature, refuses to go backwards and countersigns) and to
the signed webhook. `audit verify --witness` then holds an export against what was witnessed.

Witness protocol: `POST <url>` with the checkpoint note as `text/plain`; the answer is the note with
the witness's signature line added (signed-note format, the witness's own name). `GET <url>` lists
every note the witness holds as `{"checkpoints": [{"note": ...}, ...]}`.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable
from typing import Any

import httpx
import sqlalchemy as sa

from ..audit.checkpoint import CheckpointFormatError, parse_checkpoint
from ..store import Database
from ..store.audit import audit_checkpoints

logger = logging.getLogger("privacy_middleware.breach")


class WitnessRelay:
    """Polls the checkpoint table and delivers each new checkpoint once per process."""

    def __init__(
        self,
        database: Database,
        *,
        witness_url: str | None,
        http: httpx.AsyncClient,
        deliver: Callable[[str, str, dict[str, Any]], None] | None,
        chain: str = "default",
        timeout: float = 5.0,
    ) -> None:
        self.database = database
        self.witness_url = witness_url
        self.http = http
        self.deliver = deliver
        self.chain = chain
        self.timeout = timeout
        self.delivered_size: int | None = None
        self.cosigned: list[str] = []
        self._pending_witness: list[str] = []

    async def poll(self) -> int:
        """Relay the checkpoints signed since the last poll; returns how many were new."""
        query = sa.select(audit_checkpoints.c.tree_size, audit_checkpoints.c.note).where(
            audit_checkpoints.c.chain == self.chain
        )
        if self.delivered_size is not None:
            query = query.where(audit_checkpoints.c.tree_size > self.delivered_size)
        else:
            # at start: the latest checkpoint only (older ones were relayed by an earlier run)
            query = query.order_by(audit_checkpoints.c.tree_size.desc()).limit(1)
        async with self.database.connect() as conn:
            rows = sorted((await conn.execute(query)).all())
        for size, note in rows:
            self.delivered_size = size
            if self.deliver is not None:
                checkpoint, _ = parse_checkpoint(note)
                self.deliver(
                    "checkpoint",
                    f"checkpoint-{self.chain}-{size}",
                    {
                        "checkpoint": {
                            "origin": checkpoint.origin,
                            "size": size,
                            "root": base64.b64encode(checkpoint.root).decode(),
                            "note": note,
                        }
                    },
                )
            if self.witness_url:
                self._pending_witness.append(note)
        if self.delivered_size is None:
            self.delivered_size = -1
        await self._send_to_witness()
        return len(rows)

    async def _send_to_witness(self) -> None:
        """In order; a witness that is down gets the backlog later (it refuses nothing it has seen)."""
        while self._pending_witness and self.witness_url:
            note = self._pending_witness[0]
            try:
                response = await self.http.post(
                    self.witness_url,
                    content=note.encode(),
                    headers={"content-type": "text/plain; charset=utf-8"},
                    timeout=self.timeout,
                )
            except httpx.HTTPError as exc:
                logger.warning("checkpoint witness unreachable (%s); will retry", type(exc).__name__)
                return
            if response.status_code >= 300:
                logger.error("checkpoint witness refused a checkpoint (status %d)", response.status_code)
                if response.status_code >= 500:
                    return
            else:
                try:
                    parse_checkpoint(response.text)
                    self.cosigned.append(response.text)
                    del self.cosigned[:-10]
                except CheckpointFormatError:
                    logger.error("checkpoint witness answered with something that is not a note")
            self._pending_witness.pop(0)
