"""The schema's one way in: Alembic, with its scripts found as package data (`ledger_net/migrations`).

The store never creates a table itself; `upgrade` runs `upgrade head` inside one transaction.
"""

from __future__ import annotations

import importlib.resources
import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine


def migrations_dir() -> Path:
    """The Alembic scripts shipped inside the package, found as a package resource so
    that an installed wheel (not only a checkout) can create and upgrade its database."""
    location = importlib.resources.files("ledger_net") / "migrations"
    if not isinstance(location, Path) or not (location / "env.py").is_file():
        raise RuntimeError(f"ledger_net's migrations are not on the file system ({location}); "
                           "install the package unzipped")
    return location


def _no_alembic_preamble(record: logging.LogRecord) -> bool:
    """Alembic says which dialect it uses and how it treats DDL on every start: noise in a
    node's story. Its "Running upgrade" lines (the schema changed) stay."""
    return not str(record.msg).startswith(("Context impl", "Will assume"))


logging.getLogger("alembic.runtime.migration").addFilter(_no_alembic_preamble)


def alembic_config() -> Config:
    """An Alembic config built in code: no `alembic.ini` is needed, so it works from any cwd."""
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    return config


def upgrade(engine: Engine) -> None:
    """Bring the database at `engine` to the newest schema (`upgrade head`)."""
    config = alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
