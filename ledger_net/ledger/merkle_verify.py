"""RFC 9162 proof *verification*: pure checks over bytes, apart from any storage.

Everything here trusts nothing it is given. Hashes may be 32 bytes or 64 lowercase hex
characters; anything else (wrong length, non-hex, a bool for an index, a proof that is
not a list, a size beyond 2**63) is a `ProofError` with a reason, never a crash.

`check_*` raise `ProofError(reason)`; `verify_*` return True or False for callers that
only need the answer. The algorithms are RFC 9162 §2.1.3.2 and §2.1.4.2; the expected
proof length is checked first so that a reason can say what was wrong.

A proof binds the leaf (or old root), the index and the hashes to the root. It does not
bind the tree size by itself: for some sizes one proof verifies against one root at two
neighbouring sizes. The size must come authenticated with the root (a signed checkpoint).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from ..errors import ProofError
from .merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    MAX_SIZE,
    consistency_ranges,
    inclusion_ranges,
    leaf_hash,
    node_hash,
)

_HEX = re.compile(r"[0-9a-f]{64}").fullmatch
MAX_PROOF_HASHES = 128  # a consistency proof in a tree of 2**63 leaves is at most 2 * 63 hashes


def as_hash(value: Any, what: str = "hash") -> bytes:
    """A 32-byte hash from bytes or lowercase hex; ProofError naming `what` otherwise."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        if len(raw) != HASH_SIZE:
            raise ProofError(f"{what} is {len(raw)} bytes, not {HASH_SIZE}")
        return raw
    if isinstance(value, str):
        if _HEX(value) is None:
            raise ProofError(f"{what} is not {2 * HASH_SIZE} lowercase hex characters")
        return bytes.fromhex(value)
    raise ProofError(f"{what} is a {type(value).__name__}, not a hash")


def _as_proof(proof: Any) -> list[bytes]:
    if not isinstance(proof, (list, tuple)):
        raise ProofError(f"proof is a {type(proof).__name__}, not a list of hashes")
    if len(proof) > MAX_PROOF_HASHES:
        raise ProofError(f"proof has {len(proof)} hashes; none is longer than {MAX_PROOF_HASHES}")
    return [as_hash(p, f"proof hash {i}") for i, p in enumerate(proof)]


def _as_size(value: Any, what: str) -> int:
    if type(value) is not int:
        raise ProofError(f"{what} is a {type(value).__name__}, not an integer")
    if not 0 <= value <= MAX_SIZE:
        raise ProofError(f"{what} {value} is outside 0..2**63")
    return value


def check_inclusion(index: int, size: int, leaf: Any, proof: Any, root: Any) -> None:
    """Raise ProofError unless `proof` shows leaf hash `leaf` at `index` in the tree of
    `size` leaves whose root is `root`."""
    index = _as_size(index, "leaf index")
    size = _as_size(size, "tree size")
    leaf_h, root_h, path = as_hash(leaf, "leaf hash"), as_hash(root, "root"), _as_proof(proof)
    if index >= size:
        raise ProofError(f"leaf index {index} is not inside a tree of size {size}")
    want = len(inclusion_ranges(index, size))
    if len(path) != want:
        raise ProofError(f"proof has {len(path)} hashes; leaf {index} of a tree of size {size} needs {want}")
    if root_from_inclusion(index, size, leaf_h, path) != root_h:
        raise ProofError("proof does not lead to the root")


def root_from_inclusion(index: int, size: int, leaf: bytes, path: Sequence[bytes]) -> bytes:
    """The root an inclusion path leads to (RFC 9162 §2.1.3.2 steps 2-4); inputs already checked."""
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            raise ProofError("proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn:  # a right-edge node with no right sibling: climb
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("proof is shorter than the tree is deep")
    return r


def check_consistency(old_size: int, new_size: int, old_root: Any, new_root: Any, proof: Any) -> None:
    """Raise ProofError unless `proof` shows the tree of `old_size` leaves with root
    `old_root` is a prefix of the tree of `new_size` leaves with root `new_root`."""
    old_size = _as_size(old_size, "old tree size")
    new_size = _as_size(new_size, "new tree size")
    old_h, new_h, path = as_hash(old_root, "old root"), as_hash(new_root, "new root"), _as_proof(proof)
    if old_size > new_size:
        raise ProofError(f"a tree of size {old_size} cannot be a prefix of one of size {new_size}")
    want = len(consistency_ranges(old_size, new_size))
    if len(path) != want:
        raise ProofError(f"proof has {len(path)} hashes; sizes {old_size} -> {new_size} need {want}")
    if old_size == 0:
        if old_h != EMPTY_ROOT:
            raise ProofError("old root is not the empty tree's root")
        return
    if old_size == new_size:
        if old_h != new_h:
            raise ProofError("two roots of one size differ")
        return
    fr, sr = _roots_from_consistency(old_size, new_size, old_h, path)
    if fr != old_h:
        raise ProofError("proof does not lead to the old root")
    if sr != new_h:
        raise ProofError("proof does not lead to the new root")


def _roots_from_consistency(old_size: int, new_size: int, old_root: bytes,
                            path: list[bytes]) -> tuple[bytes, bytes]:
    """(old root, new root) a consistency path leads to (RFC 9162 §2.1.4.2 steps 2-6)."""
    if old_size & (old_size - 1) == 0:  # the old tree is one perfect subtree: its root starts the path
        path = [old_root] + path
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("proof is shorter than the tree is deep")
    return fr, sr


def verify_inclusion(index: int, size: int, leaf: Any, proof: Any, root: Any) -> bool:
    """True iff `check_inclusion` passes."""
    try:
        check_inclusion(index, size, leaf, proof, root)
    except ProofError:
        return False
    return True


def verify_consistency(old_size: int, new_size: int, old_root: Any, new_root: Any, proof: Any) -> bool:
    """True iff `check_consistency` passes."""
    try:
        check_consistency(old_size, new_size, old_root, new_root, proof)
    except ProofError:
        return False
    return True


def event_leaf_hash(event_hash: Any) -> bytes:
    """The leaf hash of an event named by its digest (32 bytes or lowercase hex)."""
    return leaf_hash(as_hash(event_hash, "event hash"))


def implied_old_root(old_size: int, new_size: int, new_root: Any, full_proof: Any) -> bytes:
    """The root the tree whose root is `new_root` had at `old_size`, as `full_proof` shows it:
    the RFC 9162 consistency proof, preceded by the old root itself when `old_size` is a power
    of two (the verifier's own copy, which the RFC leaves out). Raises ProofError unless the
    proof leads to `new_root`. Collision resistance makes the result the one true old root, so
    a result that differs from a root someone signed is evidence that it was not a prefix."""
    old_size = _as_size(old_size, "old tree size")
    new_size = _as_size(new_size, "new tree size")
    new_h, path = as_hash(new_root, "new root"), _as_proof(full_proof)
    if not 0 < old_size < new_size:
        raise ProofError(f"sizes {old_size} -> {new_size} do not make a proper prefix")
    power = old_size & (old_size - 1) == 0
    want = len(consistency_ranges(old_size, new_size)) + power
    if len(path) != want:
        raise ProofError(f"full proof has {len(path)} hashes; sizes {old_size} -> {new_size} need {want}")
    old_root, path = (path[0], path[1:]) if power else (b"", path)
    fr, sr = _roots_from_consistency(old_size, new_size, old_root, path)
    if sr != new_h:
        raise ProofError("proof does not lead to the new root")
    return fr
