import hashlib

from hypothesis import given
from hypothesis import strategies as st

from privacy_middleware.audit.merkle import EMPTY_ROOT, Frontier, leaf_hash, tree_root

# The RFC 6962 reference inputs and tree heads used by certificate-transparency and
# transparency-dev/merkle (roots for the first 1..8 leaves).
VECTOR_LEAVES = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    b"\x50\x51\x52\x53\x54\x55\x56\x57",
    bytes(range(0x60, 0x70)),
]
VECTOR_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


def test_empty_tree_head_is_sha256_of_nothing() -> None:
    assert Frontier().root() == EMPTY_ROOT == hashlib.sha256(b"").digest()


def test_frontier_matches_rfc6962_reference_roots_for_every_size() -> None:
    frontier = Frontier()
    for size, data in enumerate(VECTOR_LEAVES, start=1):
        frontier.append(leaf_hash(data))
        assert frontier.root().hex() == VECTOR_ROOTS[size - 1]
        assert tree_root([leaf_hash(d) for d in VECTOR_LEAVES[:size]]).hex() == VECTOR_ROOTS[size - 1]


@given(st.lists(st.binary(max_size=8), max_size=70), st.integers(min_value=0, max_value=70))
def test_incremental_frontier_equals_recursive_head_and_survives_a_restore(leaves: list[bytes], cut: int) -> None:
    hashes = [leaf_hash(x) for x in leaves]
    cut = min(cut, len(hashes))
    first = Frontier()
    first.extend(hashes[:cut])
    restored = Frontier(first.size, first.nodes)  # what the chain-head row stores
    restored.extend(hashes[cut:])
    assert restored.size == len(hashes)
    assert restored.root() == tree_root(hashes)


def test_leaf_and_node_hashes_are_domain_separated() -> None:
    # A leaf whose data looks like two child hashes must not collide with the inner node.
    a, b = leaf_hash(b"a"), leaf_hash(b"b")
    assert tree_root([a, b]) != leaf_hash(a + b)


@given(st.lists(st.integers(min_value=0, max_value=70), min_size=1, max_size=6))
def test_extending_in_chunks_gives_the_same_tree_as_appending_one_by_one(chunks: list[int]) -> None:
    leaves = [leaf_hash(i.to_bytes(4, "big")) for i in range(sum(chunks))]
    extended, appended = Frontier(), Frontier()
    position = 0
    for size in chunks:
        extended.extend(leaves[position : position + size])
        position += size
        for leaf in leaves[:position][appended.size :]:
            appended.append(leaf)
        assert (extended.size, extended.nodes, extended.root()) == (appended.size, appended.nodes, appended.root())
    assert extended.root() == tree_root(leaves)
