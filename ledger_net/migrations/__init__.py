"""Alembic scripts of the node's database, shipped as package data (see `ledger.store.migrations.migrations_dir`)."""
