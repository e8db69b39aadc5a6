"""events.offset is SQLite's rowid, and SQLite no longer keeps an offset counter

A one-event append on SQLite wrote five B-trees and two statements: the event's row, a
separate index for its BIGINT primary key, the hash, (author, seq) and type indexes, and
the `counters` row it bumped for its offset. Declared INTEGER, the primary key is the
table's rowid (no index of its own), and the insert takes MAX("offset") + 1 in the same
statement (SQLite has one writer at a time), so the counter row is dropped. The events are
copied into the new table in offset order. PostgreSQL is unchanged: its writers run side by
side and the counter's row lock keeps offsets visible in order.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 00:10:00.000000
"""
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

_COLUMNS = '"offset", hash, author, seq, type, ts, raw, sig, valid, reason'


def _rebuild(offset_type: str) -> None:
    """The events table again with `offset` of `offset_type`, its rows and indexes kept."""
    op.execute(f'''CREATE TABLE events_0010 (
        "offset" {offset_type} NOT NULL,
        hash VARCHAR(64) NOT NULL,
        author VARCHAR(64) NOT NULL,
        seq BIGINT NOT NULL,
        type VARCHAR(64) NOT NULL,
        ts BIGINT NOT NULL,
        raw BLOB NOT NULL,
        sig BLOB NOT NULL,
        valid BOOLEAN NOT NULL,
        reason TEXT,
        CONSTRAINT pk_events PRIMARY KEY ("offset"),
        CONSTRAINT uq_events_author_seq UNIQUE (author, seq),
        CONSTRAINT uq_events_hash UNIQUE (hash)
    )''')
    op.execute(f'INSERT INTO events_0010 ({_COLUMNS}) SELECT {_COLUMNS} FROM events ORDER BY "offset"')
    op.execute('DROP TABLE events')
    op.execute('ALTER TABLE events_0010 RENAME TO events')
    op.execute('CREATE INDEX ix_events_type ON events (type)')


def upgrade() -> None:
    if op.get_bind().dialect.name != 'sqlite':
        return
    _rebuild('INTEGER')
    op.execute("DELETE FROM counters WHERE name = 'offset'")


def downgrade() -> None:
    if op.get_bind().dialect.name != 'sqlite':
        return
    _rebuild('BIGINT')
    op.execute("INSERT INTO counters (name, value) SELECT 'offset', COALESCE(MAX(\"offset\"), 0) FROM events")
