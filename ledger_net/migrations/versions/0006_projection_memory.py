"""projection_memory: what a projection keeps only in memory, saved with its checkpoint

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 19:40:00.000000
"""
import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # No backfill: without a row a projection re-derives its memory from the log once.
    op.create_table(
        'projection_memory',
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('offset', sa.BigInteger(), nullable=False),
        sa.Column('digest', sa.String(length=64), nullable=False),
        sa.Column('data', sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint('name', name=op.f('pk_projection_memory')),
    )


def downgrade() -> None:
    op.drop_table('projection_memory')
