"""Property test of auditor bundles (ledger_net.bundle): any permutation of a valid bundle,
with any lines repeated, verifies to the same result as the bundle in its offset order."""

from __future__ import annotations

import random
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from ledger_strategies import build_world, operations

from ledger_net.bundle import Bundle, bundle_line
from ledger_net.ledger.chain import Ledger


def _verify(path: Path) -> dict:
    bundle = Bundle.read([str(path)], threads=2)
    report = bundle.verify().as_dict()
    report["duplicates"] = bundle.duplicates
    return report


@settings(deadline=None, max_examples=25)  # each example folds a ledger twice: kept small
@given(ops=operations(max_size=20), seed=st.integers(0, 2**32 - 1), dups=st.integers(0, 10))
def test_any_permutation_with_duplicates_verifies_the_same(ops: list[tuple], seed: int, dups: int) -> None:
    world = build_world(ops)
    led = Ledger.open("sqlite://")
    try:
        led.ingest(world.events)
        assert len(led.pending) == 0
        lines = [bundle_line(row) for row in led.store.select_events()]
    finally:
        led.close()
        world.close()
    rnd = random.Random(seed)
    shuffled = lines + [rnd.choice(lines) for _ in range(dups)]
    rnd.shuffle(shuffled)
    with tempfile.TemporaryDirectory() as tmp:
        ordered, mixed = Path(tmp) / "ordered.ndjson", Path(tmp) / "mixed.ndjson"
        ordered.write_bytes(b"".join(lines))
        mixed.write_bytes(b"".join(shuffled))
        reference = _verify(ordered)
        result = _verify(mixed)
    assert reference["ok"], reference["problems"]
    assert reference["duplicates"] == 0 and result["duplicates"] == dups
    assert {k: v for k, v in result.items() if k != "duplicates"} == \
        {k: v for k, v in reference.items() if k != "duplicates"}
