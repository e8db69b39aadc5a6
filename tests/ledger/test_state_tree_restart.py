"""The checkpoint state tree across a restart (issue 14): the tree saved by `save_state` makes
the first checkpoint after reopening rehash only the rows changed since, with the root a full
build gives; a damaged or outdated saved tree is refused (one warning) or corrected, never
trusted into a wrong root."""

from __future__ import annotations

import logging

from sqlalchemy import create_engine, update

from ledger_net.core.checkpoints import LIVE_TREE, CheckpointService
from ledger_net.ledger.chain import Ledger
from ledger_net.ledger.identity import Identity
from ledger_net.ledger.state_tree import StateBuilder
from ledger_net.ledger.tables import state_trees
from ledger_net.projections.runner import ProjectionRunner

ALICE = Identity.from_seed(bytes([31]) * 32)
OTHERS = [Identity.from_seed(bytes([40 + i]) * 32).node_id for i in range(12)]


def _open(url: str) -> tuple[Ledger, ProjectionRunner, CheckpointService]:
    led = Ledger.open(url, ALICE)
    runner = ProjectionRunner(led)
    return led, runner, CheckpointService(led, runner)


def _reference(cps: CheckpointService) -> bytes:
    """The root a fresh builder computes over the node's rows (every leaf encoded and hashed)."""
    return cps._tree_of(cps.runner.balances, cps.runner.reputation, StateBuilder()).tree.root


def test_the_first_checkpoint_after_a_restart_rehashes_only_what_changed(db_url, caplog):
    url = db_url
    led, runner, cps = _open(url)
    led.create_network("restart", issuers=[ALICE.node_id])
    led.append("credit.minted", {"to": ALICE.node_id, "amount": 10_000, "reason": "seed"})
    for other in OTHERS:
        led.append("credit.transfer", {"to": other, "amount": 10})
    first = cps.make()  # builds in full and saves (the first save since start)
    assert cps.save_state() is False  # make() saved it; nothing built since
    led.append("credit.transfer", {"to": OTHERS[0], "amount": 5})  # after the save: two rows and the supply move
    runner.flush()
    led.close()

    led, runner, cps = _open(url)
    try:
        _, state = cps.applied_frontier()
        assert cps._builder.rehashed == 3  # alice, OTHERS[0] and the supply: the rest came from the saved tree
        assert state.tree.root == _reference(cps)
        assert cps.resolve(first.hash[:12]).hash == first.hash
        assert cps.save_state() is True and cps.save_state() is False  # saved only when built since
    finally:
        led.close()

    for damage in (lambda data: data[:-1] + bytes([data[-1] ^ 1]), lambda data: b"not a tree"):
        engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
        with engine.begin() as conn:  # damaged while the node is down
            data = conn.execute(state_trees.select()).one().data
            conn.execute(update(state_trees).where(state_trees.c.name == LIVE_TREE).values(data=damage(data)))
        engine.dispose()
        with caplog.at_level(logging.WARNING, logger="ledger_net.core.checkpoints"):
            caplog.clear()
            led, runner, cps = _open(url)  # the saved tree is offered to the builder at start
        try:
            assert "saved checkpoint state tree is not used" in caplog.text
            _, state = cps.applied_frontier()
            assert cps._builder.rehashed == state.tree.size  # a full build
            assert state.tree.root == _reference(cps)
            cps.save_state()  # the next open restores again
        finally:
            led.close()
