"""`bench/task_bench.py` still runs its issue-13 phases on tiny sizes: a multiply on two node
processes, each pinned to a core, completes and its timeline covers every chunk (with the
worker's fetch, slot wait and store times and the owner's acceptance); the CPU table of
the matrix path's pieces has every row. Never a timing."""

from __future__ import annotations

import pytest

from tests.support.bench import load_bench

pytestmark = pytest.mark.timeout(180)


def test_two_pinned_nodes_split_a_multiply_and_the_timeline_shows_both() -> None:
    bench = load_bench("task_bench")
    run = bench.subprocess_matrix(256, 2, 4, 1)
    assert len(run["all_seconds"]) == 1
    assert sum(run["chunks_by_node"].values()) == 4 and "this node" in run["chunks_by_node"]
    assert sorted(c["chunk"] for c in run["timeline"]) == [0, 1, 2, 3]
    for chunk in run["timeline"]:
        assert 0 <= chunk["assigned_ms"] <= chunk["reported_ms"] and chunk["ran_ms"] >= 0
        # the worker's report says where the rest of its time went; the owner accepted every chunk
        assert all(chunk[stage] >= 0 for stage in bench.STAGES) and chunk["accepted_ms"] is not None
        if chunk["node"] != "this node":  # the owner fetched the other node's result before accepting it
            assert chunk["seen_ms"] <= chunk["held_ms"] <= chunk["accepted_ms"]


def test_the_matrix_path_parts_table_has_every_piece() -> None:
    bench = load_bench("task_bench")
    parts = bench.matrix_parts(64, 4, 1)
    # the Freivalds row counts 0 times: on one node every result is the owner's own, trusted
    assert [times for _, _, times in parts] == [1, 2, 2, 4, 4, 4, 0, 1, 0, 0]
    assert all(seconds >= 0 for _, seconds, _ in parts) and parts[0][0].startswith("BLAS product")
