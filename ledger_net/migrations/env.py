"""Alembic environment: runs on a connection handed over by the node, or on a URL."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

import ledger_net.projections.tables  # noqa: F401  (registers projection tables on `metadata`)
from ledger_net.ledger.tables import metadata

config = context.config
target_metadata = metadata


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _migrate(connection)
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database URL: pass -x url=... or set sqlalchemy.url in alembic.ini")
    engine = create_engine(url)
    with engine.begin() as conn:
        _migrate(conn)
    engine.dispose()


def _migrate(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("ledger_net migrations run online only: pass a database URL with -x url=...")
run()
