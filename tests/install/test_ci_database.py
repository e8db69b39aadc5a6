"""Exercises the repo-wide ``db_url`` fixture (see /conftest.py) on each backend."""

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url


def test_db_url_roundtrip(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE ci_probe (id INTEGER PRIMARY KEY, note TEXT NOT NULL)"))
            conn.execute(
                text("INSERT INTO ci_probe (id, note) VALUES (:id, :note)"),
                [{"id": 1, "note": "hello"}, {"id": 2, "note": "ledger"}],
            )
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT id, note FROM ci_probe ORDER BY id")).all()
        assert [tuple(r) for r in rows] == [(1, "hello"), (2, "ledger")]
    finally:
        engine.dispose()


def test_db_url_is_fresh_and_private(db_url: str) -> None:
    """Each test gets its own empty database: the table above must not exist here."""
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            if make_url(db_url).get_backend_name() == "postgresql":
                assert "_t_" in make_url(db_url).database  # a per-test database, not the base one
                assert conn.execute(text("SHOW server_encoding")).scalar_one() == "UTF8"
                count = conn.execute(
                    text("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'")
                ).scalar_one()
            else:
                count = conn.execute(text("SELECT count(*) FROM sqlite_master WHERE type = 'table'")).scalar_one()
        assert count == 0
    finally:
        engine.dispose()
