"""A flush deletes the changed rows' keys before it writes them again (`runner._delete_keys`)."""

from __future__ import annotations

from sqlalchemy import select

from ledger_net.projections.runner import SQLITE_DELETE_KEYS, _delete_keys
from ledger_net.projections.tables import balances


def test_a_flush_deletes_exactly_the_changed_keys(store):
    """The runner's deletes before it inserts changed rows: several keys a statement on SQLite."""
    keys = [f"acct-{i:04d}" for i in range(3 * SQLITE_DELETE_KEYS + 7)]
    with store.engine.begin() as conn:
        store.bulk_insert(conn, balances, [(k, *range(10)) for k in keys])
        _delete_keys(conn, balances, keys[5:-3])
    with store.engine.connect() as conn:
        left = sorted(r[0] for r in conn.execute(select(balances.c.account)))
    assert left == keys[:5] + keys[-3:]
