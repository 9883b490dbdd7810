"""Prove one event from its batch: the leaf, its audit path in the batch's Merkle tree, the signed seal.

A subject or an auditor who holds one event's proof and the log's public key can check that this
exact leaf was sealed at this index, without the rest of the log: the path recomputes the batch
root, which the seal signs together with the batch's place in the log.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa

from ..store import Database
from ..store.audit import audit_batches, audit_events
from .batches import SealFormatError, SealVerifier
from .checkpoint import CheckpointFormatError, load_public_key
from .merkle import inclusion_path, leaf_hash, root_from_path

PROOF_FORMAT = "privacy-middleware-audit-proof/1"


@dataclass(frozen=True, slots=True)
class EventProof:
    leaf: bytes
    seq: int
    index: int  # the leaf's place in its batch
    path: list[bytes]
    seal: str

    def to_json(self) -> dict[str, Any]:
        return {
            "format": PROOF_FORMAT,
            "leaf": base64.b64encode(self.leaf).decode(),
            "seq": self.seq,
            "index": self.index,
            "path": [node.hex() for node in self.path],
            "seal": self.seal,
        }

    @classmethod
    def from_json(cls, data: Any) -> EventProof:
        """ValueError when the document is not a proof this package wrote."""
        if not isinstance(data, dict) or data.get("format") != PROOF_FORMAT:
            raise ValueError("not an audit event proof")
        try:
            path = [bytes.fromhex(node) for node in data["path"]]
            leaf = base64.b64decode(data["leaf"], validate=True)
            seq, index, seal = data["seq"], data["index"], data["seal"]
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError("the proof is malformed") from exc
        if type(seq) is not int or type(index) is not int or not isinstance(seal, str):
            raise ValueError("the proof is malformed")
        if any(len(node) != 32 for node in path):
            raise ValueError("the proof path holds a node that is not a SHA-256 hash")
        return cls(leaf=leaf, seq=seq, index=index, path=path, seal=seal)


async def prove(database: Database, uid: str, *, chain: str = "default") -> EventProof | None:
    """The proof of the event `uid`; None when it is not in the log, its body was purged, or its
    batch has no seal (events appended before batches were sealed are proved by checkpoints)."""
    e, b = audit_events, audit_batches
    async with database.connect() as conn:
        row = (await conn.execute(sa.select(e.c.seq, e.c.leaf).where(e.c.chain == chain, e.c.uid == uid))).first()
        if row is None or row.leaf is None:
            return None
        batch = (
            await conn.execute(
                sa.select(b.c.first_seq, b.c.tree_size, b.c.seal).where(
                    b.c.chain == chain, b.c.first_seq <= row.seq, b.c.tree_size > row.seq
                )
            )
        ).first()
        if batch is None:
            return None
        hashes = (
            await conn.execute(
                sa.select(e.c.leaf_hash)
                .where(e.c.chain == chain, e.c.seq >= batch.first_seq, e.c.seq < batch.tree_size)
                .order_by(e.c.seq)
            )
        ).scalars()
        leaves = [bytes(h) for h in hashes]
    index = row.seq - batch.first_seq
    return EventProof(bytes(row.leaf), row.seq, index, inclusion_path(leaves, index), batch.seal)


def verify_proof(proof: EventProof, public_key_pem: bytes | str) -> str | None:
    """None when the proof holds under the trusted key, else why it does not (no content)."""
    try:
        verifier = SealVerifier([load_public_key(public_key_pem)])
        seal = verifier.verify(proof.seal)
    except (CheckpointFormatError, SealFormatError) as exc:
        return str(exc)
    if seal is None:
        return "the batch seal is not signed by the trusted key"
    if proof.seq != seal.first + proof.index or not 0 <= proof.index < seal.count:
        return "the event's index is not in the sealed batch"
    try:
        doc = orjson.loads(proof.leaf)
    except orjson.JSONDecodeError:
        return "the leaf is not JSON"
    if not isinstance(doc, dict) or doc.get("seq") != proof.seq or doc.get("chain") != seal.chain:
        return "the leaf names another index or chain"
    if root_from_path(leaf_hash(proof.leaf), proof.index, seal.count, proof.path) != seal.batch_root:
        return "the leaf and its path do not lead to the sealed batch root"
    return None
