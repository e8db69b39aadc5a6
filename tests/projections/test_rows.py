"""Each typed row (projections/rows.py) names exactly its table's columns, less the key
columns the projection keeps as dict keys: a column added to a table without its row
type (or the reverse) fails here, not as a KeyError in a reader."""

from __future__ import annotations

from typing import Any, get_type_hints

import pytest
from sqlalchemy import Table

from ledger_net.projections import rows, tables
from ledger_net.projections.balances import BalancesProjection
from ledger_net.projections.nodes import NodesProjection
from ledger_net.projections.reputation import ReputationProjection
from ledger_net.projections.runner import ProjectionRunner
from ledger_net.projections.tasks import TasksProjection

CASES: list[tuple[Any, Table, set[str]]] = [
    (rows.AccountRow, tables.balances, {"account"}),
    (rows.HistoryRow, tables.credit_history, set()),
    (rows.NodeRow, tables.nodes, {"node_id"}),
    (rows.TaskRow, tables.tasks, {"task_id"}),
    (rows.ChunkRow, tables.chunks, {"task_id", "owner", "chunk"}),
    (rows.AssignmentRow, tables.task_assignments, {"hash"}),
    (rows.SubjectRow, tables.reputation, {"subject"}),
    (rows.FeedbackRow, tables.reputation_history, set()),
]


@pytest.mark.parametrize(("row", "table", "keys"), CASES, ids=[c[1].name for c in CASES])
def test_a_row_type_names_its_table_columns(row: Any, table: Table, keys: set[str]) -> None:
    assert set(get_type_hints(row)) == {c.name for c in table.columns} - keys


def test_account_columns_are_the_account_row() -> None:
    assert list(rows.ACCOUNT_COLUMNS) == list(get_type_hints(rows.AccountRow))


def test_node_info_is_a_node_row_with_its_id() -> None:
    assert set(get_type_hints(rows.NodeInfo)) == set(get_type_hints(rows.NodeRow)) | {"node_id"}


def test_stored_rows_fit_their_tables() -> None:
    """What the projections hand the runner to store has exactly the table's columns."""
    from ledger_net.core.founding import found_network
    from ledger_net.ledger.chain import Ledger
    from ledger_net.ledger.identity import Identity

    identity = Identity.from_seed(bytes(range(32)))
    ledger = Ledger.open("sqlite://", identity, signer_threads=1)
    try:
        runner = ProjectionRunner(ledger)
        found_network(ledger, "rows", 10)
        ledger.append("node.joined", {"name": "n", "node_type": "public"})
        ledger.append("task.submitted", {"task_id": "t", "task_type": "range_reduce", "escrow": 4, "max_price": 2,
                                         "chunks": 2, "spec": {"config": {}}, "priority": 1})
        seen = set()
        for kind in (BalancesProjection, NodesProjection, ReputationProjection, TasksProjection):
            for table, stored in runner.of(kind).full_rows().items():
                for row in stored:
                    assert set(row) == {c.name for c in table.columns}, table.name
                    seen.add(table.name)
        assert {"balances", "credit_history", "nodes", "tasks", "chunks", "reputation"} <= seen
    finally:
        ledger.close()
