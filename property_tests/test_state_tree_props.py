"""Property tests of the incremental state tree (ledger/state_tree.py): whatever sequence of
row changes, additions, removals and reorderings the projections go through, every build of
one `StateBuilder` equals a fresh reference build (`state_entries` + `StateTree.build`) over the
same rows: the state root stays a pure function of the rows, whatever the builder remembers."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ledger_net.ledger import checkpoint as cp
from ledger_net.ledger.state_tree import StateBuilder, supply_of

KEYS = [f"{i:02x}" * 32 for i in range(24)]
amount = st.integers(-(2**63), 2**63 - 1)
account = st.fixed_dictionaries({"balance": amount, "escrow": st.integers(0, 10**6), "incoming": st.integers(0, 9),
                                 "vouchers": st.integers(0, 9), "minted": st.integers(0, 10**6),
                                 "burnt": st.integers(0, 9)})
score = st.fixed_dictionaries({"score_ppm": st.integers(0, 10**6), "positive": st.integers(0, 99),
                               "negative": st.integers(0, 99), "forked": st.booleans()})
step = st.tuples(st.sampled_from(["set", "drop", "rep", "unrep", "reorder"]), st.sampled_from(KEYS), account, score)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.sampled_from(KEYS), account, max_size=12), st.lists(step, max_size=25))
def test_every_build_is_the_reference_build(accounts, steps):
    reputation: dict = {}
    builder = StateBuilder()
    for kind, key, row, rep in steps:
        if kind == "set":
            accounts[key] = row
        elif kind == "drop":
            accounts.pop(key, None)
        elif kind == "rep":
            reputation[key] = rep
        elif kind == "unrep":
            reputation.pop(key, None)
        else:
            accounts = dict(reversed(list(accounts.items())))
        supply = {f: v % 2**40 for f, v in supply_of(accounts).items()}  # totals of 64-bit amounts may overflow
        built = builder.build(accounts, reputation, supply)
        want = cp.StateTree.build(cp.state_entries(accounts, reputation, supply))
        assert built.tree.root == want.tree.root
        assert built.keys == want.keys and built.tree.leaves == want.tree.leaves


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.sampled_from(KEYS), account, max_size=12), st.lists(step, max_size=25),
       st.integers(0, 24))
def test_a_builder_restored_from_any_earlier_dump_builds_the_reference(accounts, steps, saved_at):
    """A restart at any point: a fresh builder restored from the dump of an earlier build,
    then built over the rows as they are later (changed, added, removed, reordered), equals
    the reference build, and so does every build after it."""
    reputation: dict = {}
    builder, dump, restored = StateBuilder(), b"", None
    for at, (kind, key, row, rep) in enumerate(steps):
        if kind == "set":
            accounts[key] = row
        elif kind == "drop":
            accounts.pop(key, None)
        elif kind == "rep":
            reputation[key] = rep
        elif kind == "unrep":
            reputation.pop(key, None)
        else:
            accounts = dict(reversed(list(accounts.items())))
        supply = {f: v % 2**40 for f, v in supply_of(accounts).items()}
        want = cp.StateTree.build(cp.state_entries(accounts, reputation, supply))
        if restored is None:
            builder.build(accounts, reputation, supply)
            if at >= saved_at:
                dump, restored = builder.dump(), StateBuilder()
                assert restored.restore(dump) is None
            continue
        built = restored.build(accounts, reputation, supply)
        assert built.tree.root == want.tree.root
        assert built.keys == want.keys and built.tree.leaves == want.tree.leaves
