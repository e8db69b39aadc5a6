"""Property tests of the per-author Merkle logs, on SQLite and PostgreSQL (`db_url`):

* every inclusion and consistency proof the store produces, whatever the batches its
  events arrived in, equals the RFC 9162 definition and verifies against the naive root;
* the verifier accepts a claim exactly when the proof is the honest one for it: every
  single-bit change of a proof, a leaf or a root fails, and so does a changed index or
  size (checked against the honest root of the changed size) unless the changed claim
  happens to be true with the very same proof.
"""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from ledger_net.ledger import merkle
from ledger_net.ledger.merkle_verify import verify_consistency, verify_inclusion
from ledger_net.ledger.store import Store

AUTHOR = hashlib.sha256(b"merkle-props").hexdigest()


# The RFC's definitions, naively (as in tests/ledger/test_merkle.py; kept here so this tree stands alone).
def _h(b: bytes) -> bytes:
    return hashlib.sha256(b).digest()


def _k(n: int) -> int:
    return 1 << ((n - 1).bit_length() - 1)


def mth(d: list[bytes]) -> bytes:
    if not d:
        return _h(b"")
    if len(d) == 1:
        return _h(b"\x00" + d[0])
    k = _k(len(d))
    return _h(b"\x01" + mth(d[:k]) + mth(d[k:]))


def path(m: int, d: list[bytes]) -> list[bytes]:
    if len(d) <= 1:
        return []
    k = _k(len(d))
    return path(m, d[:k]) + [mth(d[k:])] if m < k else path(m - k, d[k:]) + [mth(d[:k])]


def subproof(m: int, d: list[bytes], whole: bool = True) -> list[bytes]:
    if m == len(d):
        return [] if whole else [mth(d)]
    k = _k(len(d))
    if m <= k:
        return subproof(m, d[:k], whole) + [mth(d[k:])]
    return subproof(m - k, d[k:], False) + [mth(d[:k])]


def consistency(m: int, d: list[bytes]) -> list[bytes]:
    return subproof(m, d) if 0 < m < len(d) else []


def flips(b: bytes):
    for i in range(len(b) * 8):
        yield bytes(x ^ (1 << (i % 8)) if j == i // 8 else x for j, x in enumerate(b))


@pytest.fixture
def store(db_url):
    s = Store.open(db_url)
    yield s
    s.close()


def _fill(store: Store, salt: int, batches: list[int]) -> list[bytes]:
    """A fresh chain of AUTHOR (tables emptied: one database serves every example)."""
    with store.engine.begin() as conn:
        conn.execute(text("DELETE FROM merkle_nodes"))
        conn.execute(text("DELETE FROM events"))
    store.merkle.forget()
    seq, data = 1, []
    for i, size in enumerate(batches):
        rows = []
        for _ in range(size):
            digest = hashlib.sha256(f"{salt}|{seq}".encode()).digest()
            data.append(digest)
            rows.append({"hash": digest.hex(), "author": AUTHOR, "seq": seq, "type": "node.updated", "ts": seq,
                         "raw": b"{}", "sig": bytes(64), "valid": True, "reason": None})
            seq += 1
        (store.write if i % 2 else store.insert_events)(rows)
    return data


chains = st.lists(st.integers(1, 33), min_size=1, max_size=12)  # up to 396 events: stored levels 4-8


@settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(batches=chains, salt=st.integers(0, 2**32), data=st.data())
def test_inclusion_proofs_verify_and_nothing_else_does(store, batches, salt, data):
    leaves_data = _fill(store, salt, batches)
    n = len(leaves_data)
    size = data.draw(st.integers(1, n), label="size")
    seq = data.draw(st.integers(1, size), label="seq")
    index, leaf = seq - 1, merkle.leaf_hash(leaves_data[seq - 1])
    root = store.author_root(AUTHOR, size)
    proof = store.inclusion_proof(AUTHOR, seq, size)
    assert root == mth(leaves_data[:size]) and proof == path(index, leaves_data[:size])
    assert verify_inclusion(index, size, leaf, proof, root)
    assert len(proof) <= (size - 1).bit_length()

    for i, p in enumerate(proof):
        for bad in flips(p):
            assert not verify_inclusion(index, size, leaf, [*proof[:i], bad, *proof[i + 1:]], root)
    assert not any(verify_inclusion(index, size, bad, proof, root) for bad in flips(leaf))
    assert not any(verify_inclusion(index, size, leaf, proof, bad) for bad in flips(root))
    for bit in range(size.bit_length() + 2):
        other = index ^ (1 << bit)
        honest = other < size and path(other, leaves_data[:size]) == proof and leaves_data[other] == leaves_data[index]
        assert verify_inclusion(other, size, leaf, proof, root) is honest
        other_size = size ^ (1 << bit)
        if 0 < other_size <= n:
            honest = index < other_size and path(index, leaves_data[:other_size]) == proof
            assert verify_inclusion(index, other_size, leaf, proof, mth(leaves_data[:other_size])) is honest


@settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(batches=chains, salt=st.integers(0, 2**32), data=st.data())
def test_consistency_proofs_verify_and_nothing_else_does(store, batches, salt, data):
    leaves_data = _fill(store, salt, batches)
    n = len(leaves_data)
    new = data.draw(st.integers(0, n), label="new")
    old = data.draw(st.integers(0, new), label="old")
    old_root, new_root = store.author_root(AUTHOR, old), store.author_root(AUTHOR, new)
    proof = store.consistency_proof(AUTHOR, old, new)
    assert (old_root, new_root) == (mth(leaves_data[:old]), mth(leaves_data[:new]))
    assert proof == consistency(old, leaves_data[:new])
    assert verify_consistency(old, new, old_root, new_root, proof)
    assert len(proof) <= (new - 1).bit_length() + 1 if new else proof == []

    for i, p in enumerate(proof):
        for bad in flips(p):
            assert not verify_consistency(old, new, old_root, new_root, [*proof[:i], bad, *proof[i + 1:]])
    assert not any(verify_consistency(old, new, bad, new_root, proof) for bad in flips(old_root))
    if 0 < old < new:  # (equal sizes: one root stands for both; the empty tree is a prefix of any tree)
        assert not any(verify_consistency(old, new, old_root, bad, proof) for bad in flips(new_root))
    for bit in range(max(new, 1).bit_length() + 2):
        for o, nw in ((old ^ (1 << bit), new), (old, new ^ (1 << bit))):
            if 0 <= o <= n and 0 <= nw <= n:
                honest = o <= nw and consistency(o, leaves_data[:nw]) == proof
                assert verify_consistency(o, nw, mth(leaves_data[:o]), mth(leaves_data[:nw]), proof) is honest
