"""RFC 6962 Merkle tree hashing, kept incrementally as a compact frontier.

leaf = SHA-256(0x00 || data), node = SHA-256(0x01 || left || right); the head of n leaves
splits at the largest power of two below n. The frontier holds the roots of the perfect
subtrees that make up the tree (largest first), so appending and computing the head need
only O(log n) hashes and the state fits in one database row.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


class Frontier:
    """The compact range [0, size) of an RFC 6962 tree."""

    __slots__ = ("_nodes", "size")

    def __init__(self, size: int = 0, nodes: Sequence[bytes] = ()) -> None:
        if size < 0 or len(nodes) != bin(size).count("1"):
            raise ValueError("frontier does not match its size")
        self.size = size
        self._nodes = list(nodes)

    @property
    def nodes(self) -> list[bytes]:
        return list(self._nodes)

    def append(self, leaf: bytes) -> None:
        """Add one leaf hash; merge equal-sized perfect subtrees like a binary counter."""
        node = leaf
        size = self.size
        nodes = self._nodes
        while size & 1:
            node = node_hash(nodes.pop(), node)
            size >>= 1
        nodes.append(node)
        self.size += 1

    def extend(self, leaves: Iterable[bytes]) -> None:
        """Append many leaf hashes: whole aligned subtrees are hashed level by level (a verifier's
        hot loop; the same tree as appending one by one)."""
        pending = list(leaves)
        sha256 = hashlib.sha256
        position = 0
        while position < len(pending):
            remaining = len(pending) - position
            size = self.size
            # the largest perfect subtree that starts at `size` and fits in what is left
            height = (size & -size).bit_length() - 1 if size else remaining.bit_length() - 1
            while (1 << height) > remaining:
                height -= 1
            level = pending[position : position + (1 << height)]
            while len(level) > 1:
                pairs = iter(level)  # zip(it, it): left and right children without indexing
                level = [sha256(b"\x01" + left + right).digest() for left, right in zip(pairs, pairs, strict=False)]
            self._append_subtree(level[0], height)
            position += 1 << height

    def _append_subtree(self, node: bytes, height: int) -> None:
        nodes = self._nodes
        count = self.size >> height
        while count & 1:
            node = node_hash(nodes.pop(), node)
            count >>= 1
        nodes.append(node)
        self.size += 1 << height

    def root(self) -> bytes:
        """The tree head: fold the subtrees from the right, as RFC 6962's split does."""
        if not self._nodes:
            return EMPTY_ROOT
        nodes = self._nodes
        root = nodes[-1]
        for node in reversed(nodes[:-1]):
            root = node_hash(node, root)
        return root

    def copy(self) -> Frontier:
        return Frontier(self.size, self._nodes)


def batch_root(leaves: Sequence[bytes]) -> bytes:
    """The RFC 6962 root of a run of leaf hashes, level by level (an odd last node moves up as it is):
    the same value as `tree_root`, without recursion, for the sequencer and the verifier's hot loops."""
    if not leaves:
        return EMPTY_ROOT
    sha256 = hashlib.sha256
    level = list(leaves)
    while len(level) > 1:
        pairs = iter(level)  # zip(it, it) stops before an odd last node, which moves up as it is
        paired = [sha256(b"\x01" + left + right).digest() for left, right in zip(pairs, pairs, strict=False)]
        if len(level) & 1:
            paired.append(level[-1])
        level = paired
    return level[0]


def inclusion_path(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """The RFC 9162 audit path of leaf `index` in the tree over `leaves` (sibling hashes, leaf upwards)."""
    if not 0 <= index < len(leaves):
        raise ValueError("leaf index outside the tree")
    path: list[bytes] = []
    sha256 = hashlib.sha256
    level = list(leaves)
    position = index
    while len(level) > 1:
        sibling = position ^ 1
        if sibling < len(level):
            path.append(level[sibling])
        paired = [sha256(b"\x01" + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)]
        if len(level) & 1:
            paired.append(level[-1])
        level = paired
        position >>= 1
    return path


def root_from_path(leaf: bytes, index: int, size: int, path: Sequence[bytes]) -> bytes | None:
    """Recompute a tree root from one leaf hash and its audit path (RFC 9162 section 2.1.3.2);
    None when the path cannot belong to a leaf at `index` of a tree of `size` leaves."""
    if not 0 <= index < size:
        return None
    fn, sn = index, size - 1
    node = leaf
    for sibling in path:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            node = node_hash(sibling, node)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            node = node_hash(node, sibling)
        fn >>= 1
        sn >>= 1
    return node if sn == 0 else None


def tree_root(leaves: Sequence[bytes]) -> bytes:
    """The recursive RFC 6962 definition; the reference the frontier is tested against."""
    n = len(leaves)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaves[0]
    k = 1 << ((n - 1).bit_length() - 1)
    return node_hash(tree_root(leaves[:k]), tree_root(leaves[k:]))
