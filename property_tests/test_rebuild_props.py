"""A batched fold (the rebuild's path, `Projection.fold_rows`) equals the event-by-event fold.

For random economies (every rule's events, refused ones included) stored in a random causal
order, with or without a forker in the context: folding the stored rows in random batches,
hashing and flushing at random points between them, gives every projection the same state
hash, the same rows and the same history rows as `apply` row by row; and a runner's rebuild
at a random flush cadence stores exactly the rows of the event-by-event fold, written in
this process or (on a SQLite file) by the rebuild's writer process.
"""

from __future__ import annotations

import json
import random
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from ledger_strategies import IDENTITIES, build_world, chunked, operations, topological_shuffle
from sqlalchemy import Table, select

from ledger_net.ledger.chain import Ledger
from ledger_net.ledger.events import Event
from ledger_net.ledger.store import sqlite_url
from ledger_net.projections.base import Context, Projection, RowBatch
from ledger_net.projections.runner import ProjectionRunner, default_projections

# Receipts and transfers need a credit received first: a stretch of money moves after the first
# operations makes them common (they are nearly every event of a real ledger's log).
_money_moves = st.lists(st.tuples(st.sampled_from(("receive", "receive", "transfer", "transfer", "settle", "burn")),
                                  st.integers(0, len(IDENTITIES) - 1), st.integers(0, len(IDENTITIES) - 1),
                                  st.integers(1, 120), st.integers(0, 7)), min_size=2, max_size=12)
economies = st.tuples(operations(max_size=18), _money_moves, operations(min_size=0, max_size=12)).map(
    lambda parts: parts[0] + parts[1] + parts[2])


def _canonical(tables: dict[Table, Any]) -> dict[str, list[str]]:
    """Each table's rows as sorted canonical JSON (row order and dict order play no part)."""
    return {t.name: sorted(json.dumps(dict(r), sort_keys=True) for r in rows) for t, rows in tables.items()}


def _as_dicts(table: Table, rows: Any) -> list[dict[str, Any]]:
    names = [c.name for c in table.columns]
    return [dict(zip(names, r, strict=True)) if isinstance(r, tuple) else dict(r) for r in rows]


def _history(parts: list[dict[Table, Any]]) -> dict[Table, list[dict[str, Any]]]:
    """The rows of the history tables (those with an `offset` column) in `parts`, joined."""
    out: dict[Table, list[dict[str, Any]]] = {}
    for part in parts:
        for table, rows in part.items():
            if "offset" in table.c:
                out.setdefault(table, []).extend(rows)
    return out


def _ledger(ops: list[tuple], seed: int, url: str = "sqlite://") -> tuple[Any, Ledger, random.Random]:
    world = build_world(ops)
    rnd = random.Random(seed)
    led = Ledger.open(url)
    for chunk in chunked(topological_shuffle(world.events, rnd), rnd):
        led.ingest(chunk)
    return world, led, rnd


@settings(deadline=None, max_examples=40)  # database-backed: timing varies; kept fast
@given(ops=economies, seed=st.integers(0, 2**32 - 1),
       forker=st.none() | st.tuples(st.integers(0, len(IDENTITIES) - 1), st.integers(1, 6)))
def test_batched_fold_equals_the_event_by_event_fold(ops, seed, forker):
    world, led, rnd = _ledger(ops, seed)
    try:
        ctx = ProjectionRunner(led, subscribe=False).context()
        if forker is not None:  # a forker's events count for nothing past its fork: every projection's own path
            ctx = Context(ctx.issuers, {**ctx.frozen, IDENTITIES[forker[0]].node_id: forker[1]}, ctx.params)
        rows = [row for batch in led.store.select_rows() for row in batch]

        one = default_projections()
        for offset, hash_, _, _, _, _, raw, sig, valid, reason in rows:
            event = Event.from_stored(raw, sig, hash_)
            for p in one:
                p.apply(offset, event, None if valid else reason, ctx)

        batched = default_projections()
        written: list[dict[Table, Any]] = []  # what each flush of the batched fold handed over
        i = 0
        while i < len(rows):
            n = rnd.randint(1, 9)
            batch = RowBatch(rows[i:i + n])
            for p in batched:
                p.fold_rows(batch, ctx)
            i += n
            if rnd.random() < 0.3:
                for p in batched:
                    p.state_hash()  # the kept lines of the state hash must follow later changes
            if rnd.random() < 0.3:
                written.append({t: _as_dicts(t, r) for p in batched for t, (_, r) in p.flush_rows().items()})

        for a, b in zip(one, batched, strict=True):
            assert b.state_hash() == a.state_hash() == Projection.state_hash(a) == Projection.state_hash(b), a.name
            assert _canonical(b.rows()) == _canonical(a.rows()), a.name
        # the history rows: those flushed along the way and those still held, against the whole fold's
        history = _history([*written, *(p.full_rows() for p in batched)])
        want = _history([p.full_rows() for p in one])
        assert _canonical(history) == _canonical(want)
        led.close()
    finally:
        world.close()


@settings(deadline=None, max_examples=25)  # database-backed: timing varies; kept fast
@given(ops=economies, seed=st.integers(0, 2**32 - 1), fold_batch=st.integers(0, 12),
       on_file=st.sampled_from((False, False, True)))
def test_a_rebuild_stores_the_rows_of_the_event_by_event_fold(ops, seed, fold_batch, on_file):
    """On a file, a log longer than `fold_batch` is written by the writer process."""
    with tempfile.TemporaryDirectory() as tmp:
        url = sqlite_url(Path(tmp) / "ledger.db") if on_file else "sqlite://"
        ProjectionRunner.rebuild_writer = True  # whatever the machine's load
        try:
            _rebuild_equals_the_fold(ops, seed, fold_batch, url)
        finally:
            ProjectionRunner.rebuild_writer = None


def _rebuild_equals_the_fold(ops: list[tuple], seed: int, fold_batch: int, url: str) -> None:
    world, led, _ = _ledger(ops, seed, url)
    try:
        runner = ProjectionRunner(led, subscribe=False, fold_batch=fold_batch)
        runner.rebuild()
        fresh = runner.replay()  # apply, row by row, nothing written
        assert runner.state_hash() == runner.state_hash(fresh)
        want = {t: r for p in fresh for t, r in p.full_rows().items()}
        with led.store.engine.connect() as conn:
            stored = {t: [dict(r) for r in conn.execute(select(t)).mappings()] for t in want}
        assert _canonical(stored) == _canonical(want)
        led.close()
    finally:
        world.close()
