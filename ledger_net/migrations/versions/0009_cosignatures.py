"""cosignatures: the checkpoint each cosignature event names, indexed by checkpoint

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 22:05:00.000000
"""
import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # No backfill: the checkpoint service indexes the log's cosignatures on its first use.
    op.create_table(
        'cosignatures',
        sa.Column('hash', sa.String(length=64), nullable=False),
        sa.Column('checkpoint', sa.String(length=64), nullable=False),
        sa.Column('witness', sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint('hash', name=op.f('pk_cosignatures')),
    )
    op.create_index('ix_cosignatures_checkpoint', 'cosignatures', ['checkpoint'])


def downgrade() -> None:
    op.drop_index('ix_cosignatures_checkpoint', table_name='cosignatures')
    op.drop_table('cosignatures')
