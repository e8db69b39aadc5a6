"""Per-author Merkle logs (RFC 9162): hashing, proofs, the store's bookkeeping, and the
frozen vectors in tests/ledger/vectors/merkle.json.

Known answers come from two places independent of ledger_net's code: the published RFC
6962 reference roots (the CT project's eight test leaves), and a naive recursive
implementation of the RFC's definitions (MTH, PATH, SUBPROOF) written out below with
hashlib. If a vector test fails, the proof format drifted: fix the code, do not
regenerate the file (see tests/ledger/vectors/make_merkle_vectors.py).
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import pytest
from sqlalchemy import text

from ledger_net.errors import ChainError, ProofError
from ledger_net.ledger import merkle
from ledger_net.ledger.merkle_log import STORED_LEVEL
from ledger_net.ledger.merkle_verify import (
    check_consistency,
    check_inclusion,
    verify_consistency,
    verify_inclusion,
)
from ledger_net.ledger.store import Store

VECTORS = json.loads((Path(__file__).parent / "vectors" / "merkle.json").read_text(encoding="utf-8"))


# ----------------------------------------------------------------- the RFC, naively
def _h(b: bytes) -> bytes:
    return hashlib.sha256(b).digest()


def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(d: list[bytes]) -> bytes:
    """RFC 9162 §2.1.1 MTH over leaf *data*."""
    if not d:
        return _h(b"")
    if len(d) == 1:
        return _h(b"\x00" + d[0])
    k = _k(len(d))
    return _h(b"\x01" + mth(d[:k]) + mth(d[k:]))


def path(m: int, d: list[bytes]) -> list[bytes]:
    """RFC 9162 §2.1.3.1 PATH(m, D[n])."""
    if len(d) <= 1:
        return []
    k = _k(len(d))
    return path(m, d[:k]) + [mth(d[k:])] if m < k else path(m - k, d[k:]) + [mth(d[:k])]


def subproof(m: int, d: list[bytes], whole: bool = True) -> list[bytes]:
    """RFC 9162 §2.1.4.1 SUBPROOF(m, D[n], b)."""
    if m == len(d):
        return [] if whole else [mth(d)]
    k = _k(len(d))
    if m <= k:
        return subproof(m, d[:k], whole) + [mth(d[k:])]
    return subproof(m - k, d[k:], False) + [mth(d[:k])]


def _data(n: int, tag: str = "") -> list[bytes]:
    return [hashlib.sha256(f"leaf {tag}{i}".encode()).digest() for i in range(n)]


def _fetcher(leaf_data: list[bytes]):
    nodes = {(lv, i): h for lv, i, h in merkle.extend([], [merkle.leaf_hash(x) for x in leaf_data])[1]}
    asked: list[int] = []

    def fetch(ids):
        asked.append(len(ids))
        return [nodes[i] for i in ids]

    return fetch, asked


# ----------------------------------------------------------------- pure hashing and proofs
def test_published_rfc6962_reference_roots():
    data = [bytes.fromhex(x) for x in ("", "00", "10", "2021", "3031", "40414243", "5051525354555657",
                                        "606162636465666768696a6b6c6d6e6f")]
    leaves = [merkle.leaf_hash(x) for x in data]
    assert merkle.root_of([]).hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert merkle.root_of(leaves[:1]).hex() == "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    assert merkle.root_of(leaves).hex() == "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"
    fetch, _ = _fetcher(data)
    assert merkle.inclusion_proof(0, 8, fetch)[0].hex().startswith("96a296d224f285c6")  # leaf hash of "00"


def test_generation_equals_the_rfc_definitions_and_verifies():
    data = _data(40)
    leaves = [merkle.leaf_hash(x) for x in data]
    fetch, _ = _fetcher(data)
    for n in range(1, 41):
        root = mth(data[:n])
        assert merkle.root_of(leaves[:n]) == root == merkle.tree_root(n, fetch)
        for m in range(n):
            proof = merkle.inclusion_proof(m, n, fetch)
            assert proof == path(m, data[:n]), (m, n)
            check_inclusion(m, n, leaves[m], proof, root)
        for m in range(n + 1):
            proof = merkle.consistency_proof(m, n, fetch)
            assert proof == (subproof(m, data[:n]) if 0 < m < n else []), (m, n)
            check_consistency(m, n, mth(data[:m]), root, proof)


def test_extend_in_pieces_equals_extend_at_once():
    leaves = [merkle.leaf_hash(x) for x in _data(77)]
    whole_front, whole = merkle.extend([], leaves)
    front, pieces, i = [], [], 0
    for step in [1, 5, 2, 16, 3, 31, 19]:
        front, made = merkle.extend(front, leaves[i:i + step])
        pieces += made
        i += step
    assert front == whole_front and sorted(pieces) == sorted(whole)
    assert merkle.fold([h for _, _, h in front]) == merkle.root_of(leaves)


def test_a_proof_reads_log_n_stored_nodes():
    fetch, asked = _fetcher(_data(1000))
    for m, n in [(0, 1000), (999, 1000), (500, 777), (511, 512)]:
        merkle.inclusion_proof(m, n, fetch)
        merkle.consistency_proof(m + 1 if m + 1 < n else 1, n, fetch)
    assert max(asked) <= 2 * (1000).bit_length()


@pytest.mark.parametrize("index,size", [(-1, 5), (5, 5), (0, 0), (True, 3), (1.0, 3), (0, 1 << 64)])
def test_generation_refuses_impossible_positions(index, size):
    fetch, _ = _fetcher(_data(4))
    with pytest.raises(ValueError):
        merkle.inclusion_proof(index, size, fetch)


# ----------------------------------------------------------------- tampering and garbage
def _case(n: int = 13, m: int = 5):
    data = _data(n)
    fetch, _ = _fetcher(data)
    return merkle.leaf_hash(data[m]), merkle.inclusion_proof(m, n, fetch), mth(data), data, fetch


def test_tampered_inclusion_proofs_fail_with_a_reason():
    leaf, proof, root, data, _ = _case()
    check_inclusion(5, 13, leaf, proof, root)
    flipped = [proof[0], bytes([proof[1][0] ^ 1]) + proof[1][1:], *proof[2:]]
    for args, reason in [
        ((5, 13, leaf, flipped, root), "does not lead to the root"),
        ((4, 13, leaf, proof, root), "does not lead to the root"),  # wrong leaf index
        ((5, 13, leaf, proof, mth(data[:12])), "does not lead to the root"),  # another root
        ((5, 12, leaf, proof, mth(data[:12])), "does not lead to the root"),  # another size and its root
        ((5, 13, leaf, proof[:-1], root), "needs 4"),
        ((5, 13, leaf, proof + [root], root), "needs 4"),
    ]:
        with pytest.raises(ProofError, match=reason):
            check_inclusion(*args)
        assert verify_inclusion(*args) is False


@pytest.mark.parametrize("bad", [
    {"index": "5"}, {"index": None}, {"index": False}, {"index": -1}, {"index": 1 << 70}, {"size": 2.5},
    {"leaf": "not hex"}, {"leaf": b"short"}, {"leaf": None}, {"leaf": 12}, {"root": "AB" * 32},
    {"root": "ab" * 33}, {"proof": "ab" * 32}, {"proof": None}, {"proof": {"a": 1}}, {"proof": [None]},
    {"proof": [b""]}, {"proof": ["ab" * 32] * 500}, {"proof": [["x"]]},
])
def test_garbage_inclusion_input_is_a_proof_error_never_a_crash(bad):
    leaf, proof, root, _, _ = _case()
    args = {"index": 5, "size": 13, "leaf": leaf, "proof": proof, "root": root, **bad}
    with pytest.raises(ProofError):
        check_inclusion(**args)
    assert verify_inclusion(**args) is False


@pytest.mark.parametrize("bad", [
    {"old_size": "6"}, {"old_size": -1}, {"new_size": None}, {"old_size": 14}, {"old_root": "zz"},
    {"new_root": b"\x00" * 31}, {"proof": "x"}, {"proof": [1, 2]}, {"proof": []},
    {"old_size": 0}, {"old_size": 13},
])
def test_garbage_consistency_input_is_a_proof_error_never_a_crash(bad):
    data = _data(13)
    fetch, _ = _fetcher(data)
    args = {"old_size": 6, "new_size": 13, "old_root": mth(data[:6]), "new_root": mth(data),
            "proof": merkle.consistency_proof(6, 13, fetch), **bad}
    with pytest.raises(ProofError):
        check_consistency(**args)
    assert verify_consistency(**args) is False


def test_proof_does_not_bind_the_size_alone_so_sizes_travel_with_their_roots():
    """Documented in merkle_verify and docs/proofs.md: leaf 0 of size 5 has the same path
    shape at size 6, so the one root verifies at both sizes; a checkpoint binds the size."""
    leaf, proof, root, _, _ = _case(n=5, m=0)
    assert verify_inclusion(0, 5, leaf, proof, root) and verify_inclusion(0, 6, leaf, proof, root)


# ----------------------------------------------------------------- frozen vectors
def test_vector_file_shape():
    assert VECTORS["format"] == "ledger_net merkle vectors v1"
    names = {v["name"] for v in VECTORS["inclusion"] + VECTORS["consistency"]}
    assert {"flipped_sibling_bit", "wrong_leaf_index", "against_another_root", "against_another_size",
            "flipped_proof_bit", "wrong_new_root"} <= names
    assert sum(v["valid"] for v in VECTORS["inclusion"]) >= 5 and sum(not v["valid"] for v in VECTORS["inclusion"]) >= 8


def test_vector_hashes_and_roots_recomputed_from_the_rfc():
    data = [bytes.fromhex(x) for x in VECTORS["leaf_data"]]
    assert VECTORS["leaf_hashes"] == [merkle.leaf_hash(x).hex() for x in data]
    assert VECTORS["roots"] == {str(n): mth(data[:n]).hex() for n in range(len(data) + 1)}


@pytest.mark.parametrize("vec", VECTORS["inclusion"], ids=[v["name"] for v in VECTORS["inclusion"]])
def test_inclusion_vector(vec):
    args = (vec["index"], vec["size"], vec["leaf"], vec["proof"], vec["root"])
    assert verify_inclusion(*args) is vec["valid"]
    if vec["valid"]:
        data = [bytes.fromhex(x) for x in VECTORS["leaf_data"]]
        assert vec["proof"] == [p.hex() for p in path(vec["index"], data[:vec["size"]])]
    else:
        with pytest.raises(ProofError, match=vec["error"]):
            check_inclusion(*args)


@pytest.mark.parametrize("vec", VECTORS["consistency"], ids=[v["name"] for v in VECTORS["consistency"]])
def test_consistency_vector(vec):
    args = (vec["old_size"], vec["new_size"], vec["old_root"], vec["new_root"], vec["proof"])
    assert verify_consistency(*args) is vec["valid"]
    if vec["valid"]:
        data = [bytes.fromhex(x) for x in VECTORS["leaf_data"]]
        m, n = vec["old_size"], vec["new_size"]
        assert vec["proof"] == ([p.hex() for p in subproof(m, data[:n])] if 0 < m < n else [])
    else:
        with pytest.raises(ProofError, match=vec["error"]):
            check_consistency(*args)


# ----------------------------------------------------------------- the store, both backends
A = hashlib.sha256(b"author-a").hexdigest()
B = hashlib.sha256(b"author-b").hexdigest()


def erow(author: str, seq: int, tag: str = "") -> dict:
    return {"hash": hashlib.sha256(f"{author}|{seq}|{tag}".encode()).hexdigest(), "author": author, "seq": seq,
            "type": "node.updated", "ts": seq, "raw": b'{"seq":%d}' % seq, "sig": bytes(64), "valid": True,
            "reason": None}


def _chain_data(author: str, n: int, tag: str = "") -> list[bytes]:
    return [bytes.fromhex(erow(author, s, tag)["hash"]) for s in range(1, n + 1)]


def _node_rows(store: Store) -> list[tuple]:
    with store.engine.connect() as conn:
        return [tuple(r[:3]) + (bytes(r[3]),) for r in
                conn.execute(text("SELECT author, level, idx, hash FROM merkle_nodes ORDER BY author, level, idx"))]


def test_store_roots_and_proofs_equal_the_rfc_through_every_write_path(store):
    rng = random.Random(7)
    seq = {A: 1, B: 1}
    for i in range(30):  # batches of both authors, through write, insert_events, and a caller's connection
        author = A if i % 3 else B
        rows = [erow(author, seq[author] + j) for j in range(rng.randint(1, 6))]
        seq[author] += len(rows)
        if i % 3 == 0:
            store.write(rows)
        elif i % 3 == 1:
            store.insert_events(rows)
        else:
            with store.engine.begin() as conn:
                store.insert_events(rows, conn)
    for author in (A, B):
        n = seq[author] - 1
        data = _chain_data(author, n)
        for size in range(1, n + 1):
            root = store.author_root(author, size)
            assert root == mth(data[:size])
            for s in {1, size, (size + 1) // 2}:
                proof = store.inclusion_proof(author, s, size)
                assert proof == path(s - 1, data[:size])
                check_inclusion(s - 1, size, merkle.leaf_hash(data[s - 1]), proof, root)
            for old in {0, 1, size // 2, size}:
                check_consistency(old, size, mth(data[:old]), root, store.consistency_proof(author, old, size))
    stored = sum((seq[a] - 1) >> level for a in (A, B) for level in range(STORED_LEVEL, 64))
    assert len(_node_rows(store)) == stored and stored > 0


def test_a_gap_is_refused_and_nothing_is_written(store):
    store.insert_events([erow(A, s) for s in (1, 2, 3)])
    before = (store.count(), store.last_offset(), _node_rows(store))
    for rows in ([erow(A, 5)], [erow(A, 4), erow(A, 6)], [erow(B, 2)], [erow(B, 1), erow(A, 5)]):
        with pytest.raises(ChainError):
            store.insert_events(rows)
        with pytest.raises(ChainError):
            store.write(rows)
        with pytest.raises(ChainError), store.engine.begin() as conn:
            store.insert_events(rows, conn)
        assert (store.count(), store.last_offset(), _node_rows(store)) == before
    store.insert_events([erow(A, 4)])
    assert store.author_root(A, 4) == mth(_chain_data(A, 4))


def test_a_rolled_back_write_leaves_no_node_and_no_stale_frontier(store):
    from sqlalchemy.exc import IntegrityError

    store.insert_events([erow(A, 1)])
    with pytest.raises(IntegrityError):  # seq 3 would complete nodes; the duplicate seq 1 aborts it all
        store.insert_events([erow(A, 2), erow(A, 3), erow(A, 1, "dup")])
    assert len(_node_rows(store)) == 0
    store.insert_events([erow(A, 2, "other"), erow(A, 3)])
    data = [bytes.fromhex(erow(A, 1)["hash"]), bytes.fromhex(erow(A, 2, "other")["hash"]),
            bytes.fromhex(erow(A, 3)["hash"])]
    assert store.author_root(A, 3) == mth(data)


def test_two_stores_extending_one_chain_by_turns(db_url):
    """Each store caches frontiers of its own commits; the other's appends make that stale,
    and a stale frontier must never be used."""
    one, two = Store.open(db_url), Store.open(db_url)
    try:
        for seq in range(1, 21):
            (one if seq % 3 else two).insert_events([erow(A, seq)])
        assert one.author_root(A, 20) == two.author_root(A, 20) == mth(_chain_data(A, 20))
    finally:
        one.close()
        two.close()


@pytest.mark.parametrize("call", [
    lambda s: s.author_root(A, 4), lambda s: s.author_root(A, -1), lambda s: s.author_root("nobody", 1),
    lambda s: s.author_root(A, "2"), lambda s: s.inclusion_proof(A, 0, 3), lambda s: s.inclusion_proof(A, 4, 3),
    lambda s: s.inclusion_proof(A, 1, 4), lambda s: s.inclusion_proof(B, 1, 1),
    lambda s: s.consistency_proof(A, 2, 1), lambda s: s.consistency_proof(A, 1, 9),
    lambda s: s.consistency_proof(A, None, 2),
])
def test_impossible_proof_requests_are_proof_errors(store, call):
    store.insert_events([erow(A, s) for s in (1, 2, 3)])
    with pytest.raises(ProofError):
        call(store)


def test_the_empty_chain_has_the_empty_root(store):
    assert store.author_root(A, 0) == merkle.EMPTY_ROOT
    assert store.consistency_proof(A, 0, 0) == []


def test_migration_0004_backfills_existing_chains(db_url):
    from alembic import command

    from ledger_net.ledger.store.migrations import alembic_config

    old = Store.open(db_url, upgrade=False)
    try:
        config = alembic_config()
        with old.engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "0003")
        rows = [erow(A, s) for s in range(1, 38)] + [erow(B, s) for s in range(1, 9)]
        with old.engine.begin() as conn:  # events as a 0003 store wrote them: no Merkle nodes
            conn.execute(text('INSERT INTO events ("offset", hash, author, seq, type, ts, raw, sig, valid, reason) '
                              "VALUES (:o, :hash, :author, :seq, :type, :ts, :raw, :sig, :valid, :reason)"),
                         [{"o": i + 1, **r} for i, r in enumerate(rows)])
            conn.execute(text("UPDATE counters SET value = :n WHERE name = 'offset'"), {"n": len(rows)})
    finally:
        old.close()
    new, fresh = Store.open(db_url), Store.open("sqlite://")
    try:
        fresh.insert_events(rows)
        assert _node_rows(new) == _node_rows(fresh)
        new.insert_events([erow(A, 38)])  # and the backfilled chain grows on
        assert new.author_root(A, 38) == mth(_chain_data(A, 38))
        check_consistency(37, 38, mth(_chain_data(A, 37)), mth(_chain_data(A, 38)), new.consistency_proof(A, 37, 38))
    finally:
        new.close()
        fresh.close()


def test_the_worked_example_in_docs_is_what_the_code_computes():
    """docs/proofs.md quotes real hex from the first five vector leaves; keep it true."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "proofs.md").read_text(encoding="utf-8")
    data = [bytes.fromhex(x) for x in VECTORS["leaf_data"][:5]]
    leaves = [merkle.leaf_hash(x) for x in data]
    fetch, _ = _fetcher(data)
    quoted = [*data, *leaves, merkle.node_hash(leaves[0], leaves[1]), merkle.node_hash(leaves[2], leaves[3]),
              mth(data[:4]), mth(data[:3]), mth(data), merkle.EMPTY_ROOT]
    for h in quoted:
        assert h.hex() in doc, h.hex()
    assert merkle.inclusion_proof(2, 5, fetch) == [leaves[3], mth(data[:2]), leaves[4]]
    assert merkle.consistency_proof(3, 5, fetch) == [leaves[2], leaves[3], mth(data[:2]), leaves[4]]
    assert "`[91742fcd… (L3), 835e70e4… (n(0,1)), 7e508e58… (L4)]`" in doc
    assert "`[9cba9904… (L2), 91742fcd… (L3), 835e70e4… (n(0,1)), 7e508e58… (L4)]`" in doc
