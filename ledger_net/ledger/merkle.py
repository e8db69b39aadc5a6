"""RFC 9162 (Certificate Transparency v2) Merkle trees: hashing and proof *generation*.

Hashing (RFC 9162 §2.1.1), SHA-256 with domain separation so that a leaf can never be
passed off as an interior node or the other way round:

    leaf hash  = SHA-256(0x00 || leaf data)
    node hash  = SHA-256(0x01 || left || right)
    empty tree = SHA-256("")

In ledger_net the leaf data of an author's chain is the event's 32-byte digest (the
SHA-256 of its stored canonical bytes), and the event at seq s is leaf s-1.

Proofs are built from *stored* subtree hashes, never by rebuilding a tree. A node is
named (level, index) and covers leaves [index * 2**level, (index + 1) * 2**level); the
store keeps every complete ("perfect") subtree as it grows. Every hash a proof needs is
either such a node or the root of a range ending at the tree size (the "ephemeral"
right edge), which is folded from at most log2(n) perfect nodes. So one proof costs
O(log n) stored hashes, fetched with a single call to the caller's `NodeFetcher`.

Verification lives apart, in `merkle_verify`: it touches no storage and trusts nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

HASH_SIZE = 32
LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
EMPTY_ROOT = hashlib.sha256(b"").digest()
MAX_SIZE = 1 << 63  # tree sizes and indexes are signed 64-bit in the store

NodeId = tuple[int, int]  # (level, index)
# Given node ids, return their hashes in the same order (raise if one is missing).
NodeFetcher = Callable[[Sequence[NodeId]], Sequence[bytes]]


def leaf_hash(data: bytes) -> bytes:
    """RFC 9162 leaf hash of `data` (for an event: its 32-byte digest)."""
    return hashlib.sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 interior node hash of two child hashes."""
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def event_leaf(event_hash: str) -> bytes:
    """Leaf hash of an event named by its hex hash (the digest of its stored bytes)."""
    return leaf_hash(bytes.fromhex(event_hash))


def _split(n: int) -> int:
    """The largest power of two strictly below n (n >= 2): where RFC 9162 splits D[n]."""
    return 1 << ((n - 1).bit_length() - 1)


# ----------------------------------------------------------------- ranges
def perfect_nodes(begin: int, end: int) -> list[NodeId]:
    """The perfect subtrees that make up leaves [begin, end), left to right.

    Every range an RFC 9162 tree hashes starts at a multiple of the smallest power of two
    at least as long as itself, so the greedy split (largest aligned power of two first)
    yields subtrees of strictly decreasing size, whose right fold is the range's hash."""
    out: list[NodeId] = []
    while begin < end:
        level = (end - begin).bit_length() - 1
        while begin & ((1 << level) - 1):  # not aligned: a smaller subtree first
            level -= 1
        out.append((level, begin >> level))
        begin += 1 << level
    return out


def fold(hashes: Sequence[bytes]) -> bytes:
    """Hash of a range from its perfect subtrees (left to right): a right fold."""
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = node_hash(h, acc)
    return acc


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """Leaf ranges whose hashes form the inclusion proof of leaf `index` in a tree of
    `size` leaves, in proof order (the sibling nearest the leaf first). RFC 9162 §2.1.3.1."""
    _check_index(index, size)
    out: list[tuple[int, int]] = []
    lo, hi = 0, size
    while hi - lo > 1:
        mid = lo + _split(hi - lo)
        if index < mid:
            out.append((mid, hi))
            hi = mid
        else:
            out.append((lo, mid))
            lo = mid
    out.reverse()
    return out


def consistency_ranges(old_size: int, new_size: int) -> list[tuple[int, int]]:
    """Leaf ranges whose hashes form the proof that the tree of `old_size` leaves is a
    prefix of the tree of `new_size` leaves, in proof order. RFC 9162 §2.1.4.1 (SUBPROOF);
    empty when old_size is 0 or equals new_size."""
    _check_sizes(old_size, new_size)
    if old_size in (0, new_size):
        return []
    out: list[tuple[int, int]] = []
    lo, hi, whole = 0, new_size, True  # whole: [lo, hi) is still the root's left spine
    while old_size != hi:
        mid = lo + _split(hi - lo)
        if old_size <= mid:
            out.append((mid, hi))
            hi = mid
        else:
            out.append((lo, mid))
            lo, whole = mid, False
    if not whole:  # the old tree's own subtree, unless the verifier already holds it as its root
        out.append((lo, hi))
    out.reverse()
    return out


def hash_ranges(ranges: Sequence[tuple[int, int]], fetch: NodeFetcher) -> list[bytes]:
    """The hash of each range, from one `fetch` of all the perfect nodes they need."""
    parts = [perfect_nodes(lo, hi) for lo, hi in ranges]
    wanted = sorted({node for nodes in parts for node in nodes})
    got = list(fetch(wanted))
    if len(got) != len(wanted) or any(not isinstance(h, bytes) or len(h) != HASH_SIZE for h in got):
        raise LookupError("the node fetcher returned missing or malformed hashes")
    known = dict(zip(wanted, got, strict=False))
    return [fold([known[node] for node in nodes]) for nodes in parts]


def inclusion_proof(index: int, size: int, fetch: NodeFetcher) -> list[bytes]:
    """Inclusion proof of leaf `index` in the tree of `size` leaves (at most 63 hashes)."""
    return hash_ranges(inclusion_ranges(index, size), fetch)


def consistency_proof(old_size: int, new_size: int, fetch: NodeFetcher) -> list[bytes]:
    """Consistency proof from the tree of `old_size` leaves to the tree of `new_size`."""
    return hash_ranges(consistency_ranges(old_size, new_size), fetch)


def tree_root(size: int, fetch: NodeFetcher) -> bytes:
    """Root of the tree of `size` leaves (EMPTY_ROOT for size 0)."""
    _check_sizes(0, size)
    return hash_ranges([(0, size)], fetch)[0] if size else EMPTY_ROOT


def root_of(leaves: Sequence[bytes]) -> bytes:
    """Root over leaf hashes held in memory (O(n) time, O(log n) space)."""
    stack: list[tuple[int, bytes]] = []  # perfect subtrees so far: (level, hash), biggest first
    for h in leaves:
        level = 0
        while stack and stack[-1][0] == level:
            h = node_hash(stack.pop()[1], h)
            level += 1
        stack.append((level, h))
    return fold([h for _, h in stack]) if stack else EMPTY_ROOT


# ----------------------------------------------------------------- growing a stored tree
Frontier = list[tuple[int, int, bytes]]  # (level, index, hash) of [0, size)'s perfect subtrees, biggest first


def frontier_ids(size: int) -> list[NodeId]:
    """The perfect subtrees that make up a tree of `size` leaves, biggest first: exactly
    the hashes needed to append to it (and to compute its root)."""
    return perfect_nodes(0, size)


def extend(frontier: Frontier, leaves: Sequence[bytes]) -> tuple[Frontier, list[tuple[int, int, bytes]]]:
    """Append leaf hashes to a tree given by its frontier. Returns the new frontier and
    every node that became complete, leaves included, as (level, index, hash)."""
    stack = list(frontier)
    size = sum(1 << level for level, _, _ in stack)
    created: list[tuple[int, int, bytes]] = []
    for h in leaves:
        level, index = 0, size
        created.append((0, index, h))
        while stack and stack[-1][0] == level:
            h = node_hash(stack.pop()[2], h)
            level, index = level + 1, index >> 1
            created.append((level, index, h))
        stack.append((level, index, h))
        size += 1
    return stack, created


def _is_int(value: object) -> bool:
    return type(value) is int


def _check_index(index: int, size: int) -> None:
    if not (_is_int(index) and _is_int(size)):
        raise ValueError("leaf index and tree size must be integers")
    if not 0 <= index < size <= MAX_SIZE:
        raise ValueError(f"leaf index {index} is not inside a tree of size {size}")


def _check_sizes(old_size: int, new_size: int) -> None:
    if not (_is_int(old_size) and _is_int(new_size)):
        raise ValueError("tree sizes must be integers")
    if not 0 <= old_size <= new_size <= MAX_SIZE:
        raise ValueError(f"tree size {old_size} cannot be a prefix of tree size {new_size}")
