"""The incremental state tree (ledger/state_tree.py): its leaves are the canonical ones, and
every build, incremental or not, equals a fresh reference build over the same rows."""

from __future__ import annotations

import hashlib
import random

import pytest

from ledger_net.ledger import checkpoint as cp
from ledger_net.ledger.state_tree import StateBuilder, leaf_bytes, supply_of


def _key(i: int) -> str:
    return hashlib.sha256(f"state tree account {i}".encode()).hexdigest()


def _account(rng: random.Random) -> dict[str, int]:
    return {"balance": rng.randrange(-5, 10**12), "escrow": rng.randrange(100), "incoming": rng.randrange(3),
            "vouchers": 0, "minted": rng.randrange(10**6), "burnt": 0, "earned": 7}


def _reference(accounts, reputation) -> cp.StateTree:
    return cp.StateTree.build(cp.state_entries(accounts, reputation, supply_of(accounts)))


def test_leaf_bytes_are_the_canonical_leaves():
    odd = ['a/"quoted"\\', "a/é\u2028", "r/\x01", "a/" + _key(1), "r/" + _key(2)]
    for key in odd:
        if key.startswith("a/"):
            value = {"balance": -(2**63), "escrow": 2**63 - 1, "incoming": 0, "vouchers": 3}
            assert leaf_bytes(key, tuple(value[f] for f in cp.ACCOUNT_FIELDS)) == cp.state_leaf(key, value)
        else:
            for forked in (True, False):
                rep = {"score_ppm": 999_999, "positive": 4, "negative": 2, "forked": forked}
                assert leaf_bytes(key, tuple(rep[f] for f in cp.REPUTATION_FIELDS)) == cp.state_leaf(key, rep)
    supply = dict(zip(cp.SUPPLY_FIELDS, range(6), strict=True))
    assert leaf_bytes(cp.SUPPLY_KEY, tuple(supply.values())) == cp.state_leaf(cp.SUPPLY_KEY, supply)
    with pytest.raises(ValueError, match="outside signed 64 bits"):
        leaf_bytes("a/x", (2**63, 0, 0, 0))


def test_every_build_equals_a_fresh_reference_build():
    rng = random.Random(7)
    accounts = {_key(i): _account(rng) for i in range(200)}
    reputation = {k: {"score_ppm": rng.randrange(10**6), "positive": 1, "negative": 0, "forked": False}
                  for k in list(accounts)[:60]}
    builder = StateBuilder()
    first = builder.build(accounts, reputation)
    first_root, first_proof = first.tree.root, first.tree.proof(17)
    for step in range(60):
        kind = step % 6
        if kind == 0:  # a few balances move: only those leaves are rehashed
            moved = rng.sample(list(accounts), 3)
            for k in moved:
                accounts[k]["balance"] += 1
        elif kind == 1:
            accounts[_key(1000 + step)] = _account(rng)  # a new account: keys shift
        elif kind == 2:
            del accounts[rng.choice(list(accounts))]
        elif kind == 3:
            node = rng.choice(list(reputation))
            reputation[node] = {**reputation[node], "forked": not reputation[node]["forked"]}
        elif kind == 4:  # the same rows in another dict order
            reputation = dict(reversed(list(reputation.items())))
        else:  # a row without some fields reads them as 0
            accounts[rng.choice(list(accounts))].pop("incoming", None)
        built = builder.build(accounts, reputation)
        want = _reference(accounts, reputation)
        assert built.tree.root == want.tree.root, step
        assert built.keys == want.keys and built.tree.leaves == want.tree.leaves
        assert all(built.tree.proof(i) == want.tree.proof(i) for i in range(0, built.tree.size, 13))
        if kind == 0:
            assert builder.rehashed == 4  # three accounts and the supply
    # what an earlier build returned is a snapshot: later builds do not change it
    assert first.tree.root == first_root and first.tree.proof(17) == first_proof


def test_an_unchanged_build_rehashes_nothing():
    rng = random.Random(3)
    accounts = {_key(i): _account(rng) for i in range(50)}
    builder = StateBuilder()
    a = builder.build(accounts, {})
    b = builder.build(accounts, {})
    assert builder.rehashed == 0 and a.tree.root == b.tree.root == _reference(accounts, {}).tree.root


def test_an_amount_outside_64_bits_is_refused_on_every_path():
    rng = random.Random(5)
    accounts = {_key(i): _account(rng) for i in range(64)}
    first, last = sorted(accounts)[0], sorted(accounts)[-1]  # far apart in the tree: no parent in common below the root
    huge = {**_account(rng), "escrow": 2**63}
    with pytest.raises(ValueError, match="outside signed 64 bits"):
        StateBuilder().build({**accounts, _key(99): huge}, {})  # the first build
    builder = StateBuilder()
    builder.build(accounts, {})
    accounts[first] = {**accounts[first], "balance": 77}  # a valid change in the same refused build
    with pytest.raises(ValueError, match="outside signed 64 bits"):
        builder.build({**accounts, last: huge}, {})  # an update of a held row
    # a refused build leaves the builder as it was: the next one still sees both changes
    accounts[last] = {**huge, "escrow": 5}
    assert builder.build(accounts, {}).tree.root == _reference(accounts, {}).tree.root


def _rows(n: int, seed: int) -> tuple[dict, dict]:
    rng = random.Random(seed)
    accounts = {_key(i): _account(rng) for i in range(n)}
    reputation = {k: {"score_ppm": rng.randrange(10**6), "positive": 1, "negative": 0, "forked": rng.random() < .5}
                  for k in list(accounts)[: n // 3]}
    return accounts, reputation


def test_a_restored_dump_rehashes_only_the_rows_changed_since():
    """A restart: the dump of an earlier build, then rows that moved on (in another dict order,
    as projections loaded from tables have): the root is the reference's, and only the rows
    that differ from the dump are re-encoded; with keys added or removed too."""
    accounts, reputation = _rows(300, 11)
    old = StateBuilder()
    old.build(accounts, reputation)
    dump = old.dump()
    moved = sorted(accounts)[5:12]
    for k in moved:
        accounts[k]["balance"] += 3
    shuffled = dict(sorted(accounts.items(), reverse=True))
    fresh = StateBuilder()
    assert fresh.restore(dump) is None
    built = fresh.build(shuffled, reputation)
    want = _reference(shuffled, reputation)
    assert built.tree.root == want.tree.root and built.tree.leaves == want.tree.leaves
    assert fresh.rehashed == len(moved) + 1  # and the supply
    assert fresh.build(shuffled, reputation).tree.root == want.tree.root and fresh.rehashed == 0
    again = StateBuilder()
    assert again.restore(dump) is None
    accounts[_key(5000)] = _account(random.Random(1))
    del accounts[sorted(accounts)[0]]
    assert again.build(accounts, reputation).tree.root == _reference(accounts, reputation).tree.root
    empty = StateBuilder()
    assert empty.restore(dump) is None  # the dump holds rows the projections no longer have
    assert empty.build({}, {}).tree.root == _reference({}, {}).tree.root


def _tampered(dump: bytes, edit) -> bytes:
    """`dump` with its body changed by `edit` and the header's digest recomputed to match."""
    head, _, body = dump.partition(b"\n")
    fmt, n, a, b, c, _ = head.split(b" ")
    body = edit(body, int(a), int(b))
    return b" ".join([fmt, n, a, b, c, hashlib.sha256(body).hexdigest().encode()]) + b"\n" + body


def test_a_damaged_stale_or_foreign_dump_is_refused_and_changes_nothing():
    accounts, reputation = _rows(40, 12)
    builder = StateBuilder()
    builder.build(accounts, reputation)
    dump = builder.dump()
    head_len = dump.index(b"\n") + 1
    flip = lambda at: dump[:at] + bytes([dump[at] ^ 1]) + dump[at + 1:]  # noqa: E731
    bad = [flip(head_len + 3), flip(len(dump) - 1), flip(len(dump) // 2), dump[:-32], dump + b"x",
           dump.replace(dump[:dump.index(b" ")], b"state-tree-0:0000000000000000", 1), b"", b"junk\n",
           # internally consistent bytes (the digest matches) that do not hash as stored:
           _tampered(dump, lambda body, a, b: body.replace(b'"balance":', b'"balance":1', 1)),  # a leaf's bytes
           _tampered(dump, lambda body, a, b: body[:a + b + 40] + bytes([body[a + b + 40] ^ 1]) + body[a + b + 41:]),
           _tampered(dump, lambda body, a, b: body[:-1] + bytes([body[-1] ^ 1])),  # the root's hash
           _tampered(dump, lambda body, a, b: body.replace(b"1", b"2", 1))]  # a value in the JSON
    accounts[sorted(accounts)[3]]["balance"] += 1
    want = _reference(accounts, reputation).tree.root
    for data in bad:
        target = StateBuilder()
        why = target.restore(data)
        assert why is not None, data[:80]
        assert target.build(accounts, reputation).tree.root == want
        held = StateBuilder()
        held.build(accounts, reputation)
        assert held.restore(data) is not None and held.build(accounts, reputation).tree.root == want
        assert held.rehashed == 0  # the refused dump left the builder's own tree as it was
