"""node_holders: the process that runs the node of a key on this database

A second process signing with the same key is how an honest node would equivocate.
The node records itself here (pid, host, URL, start time) so that a second start on
the same database is refused with a line naming the holder. The row is informative:
liveness is a lock (PostgreSQL advisory lock on the holder's connection, flock for
SQLite), so a holder killed with -9 never blocks a restart.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 19:00:00.000000
"""
import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'node_holders',
        sa.Column('node_id', sa.String(length=64), nullable=False),
        sa.Column('pid', sa.Integer(), nullable=False),
        sa.Column('host', sa.String(length=255), nullable=False),
        sa.Column('url', sa.String(length=512), nullable=True),
        sa.Column('started_at', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('node_id', name=op.f('pk_node_holders')),
    )


def downgrade() -> None:
    op.drop_table('node_holders')
