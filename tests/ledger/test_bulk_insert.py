"""`Store.bulk_insert`: dict rows, and tuple rows in the table's column order (on SQLite several
to a statement), store exactly the rows given (the projection flushes rely on it)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from ledger_net.ledger.store.bulk import ROWS_PER_STATEMENT
from ledger_net.projections.tables import credit_history


def _history(n: int, first: int = 1) -> list[tuple]:
    return [(o, o % 2, f"acct-{o % 7}", f"{o:064x}", "transfer_out", -o, o, None if o % 3 else f"cp-{o}",
             None, "why" if o % 5 == 0 else None, 1_700_000_000_000 + o, 10 * o) for o in range(first, first + n)]


@pytest.mark.parametrize("n", [1, ROWS_PER_STATEMENT - 1, ROWS_PER_STATEMENT, 2 * ROWS_PER_STATEMENT + 5])
def test_tuple_rows_are_stored_as_given(store, n):
    rows = _history(n)
    with store.engine.begin() as conn:
        store.bulk_insert(conn, credit_history, rows)
    with store.engine.connect() as conn:
        back = [tuple(r) for r in conn.execute(select(credit_history).order_by(credit_history.c.offset))]
    assert back == rows


def test_dict_and_tuple_rows_store_the_same(store):
    names = [c.name for c in credit_history.columns]
    with store.engine.begin() as conn:
        store.bulk_insert(conn, credit_history, _history(30))
        store.bulk_insert(conn, credit_history, [dict(zip(names, r, strict=True)) for r in _history(30, first=31)])
    with store.engine.connect() as conn:
        back = [tuple(r) for r in conn.execute(select(credit_history).order_by(credit_history.c.offset))]
    assert back == _history(60)

