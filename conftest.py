"""Repository-wide pytest configuration (applies to tests/ and property_tests/).

Two things live here because both test trees need them:

* Hypothesis profiles, chosen with the HYPOTHESIS_PROFILE environment variable
  (default ``dev``; ``.ci/run`` sets ``ci``).
* Database-URL fixtures, so every store test runs on SQLite *and* PostgreSQL:

  ``db_url``        parametrised ``[sqlite]`` / ``[postgresql]``: a URL for a fresh,
                    empty database that belongs to this test only.
  ``sqlite_db_url`` just the SQLite one (a file in the test's tmp_path).
  ``pg_db_url``     just the PostgreSQL one: a uniquely named database created
                    for this test and dropped (WITH (FORCE)) after it.

  The PostgreSQL server comes from LEDGER_NET_TEST_PG_URL, e.g.
  ``postgresql+psycopg://ledger:ledger@127.0.0.1:5432/ledger_test``; its role
  needs CREATEDB. ``bash .ci/start-postgres.sh`` (as root) sets one up and
  prints that URL. Without the variable the postgres parameter is *skipped*
  on a developer machine but *fails* when CI=true, so a store test is never
  silently skipped in CI. ``-m "not postgres"`` deselects it explicitly.

  Inside a Hypothesis test a function-scoped fixture is shared by all examples,
  so reset the schema per example (or use ``pg_database_factory``).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from hypothesis import HealthCheck, settings

from ledger_net.ledger.store import Store

# --------------------------------------------------------------------------
# Hypothesis profiles
# --------------------------------------------------------------------------
settings.register_profile(
    "ci",
    max_examples=50,
    deadline=None,  # shared CI machines are noisy; don't fail on timing
    derandomize=False,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,  # failing example can be reproduced with @reproduce_failure
)
settings.register_profile("dev", max_examples=25)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


# --------------------------------------------------------------------------
# Database-URL fixtures
# --------------------------------------------------------------------------
PG_URL_ENV = "LEDGER_NET_TEST_PG_URL"
DB_BACKENDS = ("sqlite", "postgresql")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "postgres: needs the PostgreSQL server from LEDGER_NET_TEST_PG_URL"
    )


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def _pg_base_url():
    """The server URL from the environment, or fail (CI) / skip (dev) without it."""
    from sqlalchemy.engine import make_url

    raw = os.environ.get(PG_URL_ENV, "").strip()
    if not raw:
        if _in_ci():
            pytest.fail(
                f"{PG_URL_ENV} is not set but CI=true: PostgreSQL store tests must run "
                "in CI, never be skipped. Run the suite through `bash .ci/run` (it "
                "starts PostgreSQL and exports the variable).",
                pytrace=False,
            )
        pytest.skip(
            f"PostgreSQL tests need {PG_URL_ENV} "
            "(e.g. postgresql+psycopg://ledger:ledger@127.0.0.1:5432/ledger_test); "
            "run `bash .ci/start-postgres.sh` as root to start a server and print it"
        )
    url = make_url(raw)
    if url.get_backend_name() != "postgresql":
        pytest.fail(f"{PG_URL_ENV} must be a postgresql URL, got {url!r}", pytrace=False)
    if url.drivername == "postgresql":  # bare URL: use psycopg 3, not psycopg2
        url = url.set(drivername="postgresql+psycopg")
    if not url.database:
        pytest.fail(f"{PG_URL_ENV} must name a database to connect to: {url!r}", pytrace=False)
    return url


@pytest.fixture(scope="session")
def _pg_admin() -> Iterator[tuple[object, object]]:
    """(base URL, AUTOCOMMIT engine) used to CREATE/DROP the per-test databases."""
    from sqlalchemy import create_engine, text

    url = _pg_base_url()
    # client_encoding: decode text as UTF-8 even if the base database is SQL_ASCII.
    engine = create_engine(
        url,
        isolation_level="AUTOCOMMIT",
        pool_pre_ping=True,
        connect_args={"client_encoding": "utf8"},
    )
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - report any driver/connection error
        engine.dispose()
        pytest.fail(
            f"cannot connect to PostgreSQL at {url!r} ({PG_URL_ENV}): {exc}\n"
            "Start it with `bash .ci/start-postgres.sh` (as root).",
            pytrace=False,
        )
    yield url, engine
    engine.dispose()


def _new_pg_database(admin: tuple[object, object]) -> tuple[str, Callable[[], None]]:
    """Create a uniquely named empty database; return (its URL, a function that drops it)."""
    from sqlalchemy import text

    base_url, engine = admin
    name = f"{base_url.database}_t_{uuid.uuid4().hex[:12]}"[-63:]
    with engine.connect() as conn:
        # template0: pristine (no extensions a developer added to template1);
        # UTF8 with the base database's locale, whatever the cluster default is.
        collate, ctype = conn.execute(
            text("SELECT datcollate, datctype FROM pg_database WHERE datname = current_database()")
        ).one()
        conn.execute(
            text(
                f"CREATE DATABASE \"{name}\" TEMPLATE template0 ENCODING 'UTF8' "
                f"LC_COLLATE '{collate}' LC_CTYPE '{ctype}'"
            )
        )

    def drop() -> None:
        from sqlalchemy.exc import DBAPIError

        # FORCE: terminate connections the test's engines may still hold. A server whose
        # role lacks pg_signal_backend cannot end an autovacuum worker that just started on
        # the database; such a worker is done within moments, so try again a few times.
        for attempt in range(10):
            try:
                with engine.connect() as conn:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                return
            except DBAPIError:
                if attempt == 9:
                    raise
                time.sleep(0.2 * (attempt + 1))

    return base_url.set(database=name).render_as_string(hide_password=False), drop


@pytest.fixture
def pg_db_url(_pg_admin) -> Iterator[str]:
    """URL of a fresh PostgreSQL database for this test only (dropped afterwards)."""
    url, drop = _new_pg_database(_pg_admin)
    try:
        yield url
    finally:
        drop()


@pytest.fixture
def pg_database_factory(_pg_admin) -> Iterator[Callable[[], str]]:
    """Callable returning the URL of a new empty PostgreSQL database on each call
    (e.g. one per Hypothesis example); all are dropped when the test ends."""
    drops: list[Callable[[], None]] = []

    def make() -> str:
        url, drop = _new_pg_database(_pg_admin)
        drops.append(drop)
        return url

    try:
        yield make
    finally:
        for drop in reversed(drops):
            drop()


@pytest.fixture
def sqlite_db_url(tmp_path) -> str:
    """URL of a fresh SQLite database file in this test's tmp_path."""
    return f"sqlite:///{tmp_path}/ledger.db"


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    ]
)
def db_url(request) -> str:
    """A fresh, empty database URL, once per backend: ``[sqlite]`` and ``[postgresql]``."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_db_url")
    return request.getfixturevalue("pg_db_url")


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    """A migrated, empty ``Store`` on each backend, closed after the test."""
    s = Store.open(db_url)
    yield s
    s.close()
