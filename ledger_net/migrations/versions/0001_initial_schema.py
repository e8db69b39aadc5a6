"""initial schema: log, forks, blobs, projections

Revision ID: 0001
Revises:
Create Date: 2026-11-27 17:27:03.526919
"""
import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('balances',
    sa.Column('account', sa.String(length=64), nullable=False),
    sa.Column('balance', sa.BigInteger(), nullable=False),
    sa.Column('escrow', sa.BigInteger(), nullable=False),
    sa.Column('incoming', sa.BigInteger(), nullable=False),
    sa.Column('vouchers', sa.BigInteger(), nullable=False),
    sa.Column('minted', sa.BigInteger(), nullable=False),
    sa.Column('burnt', sa.BigInteger(), nullable=False),
    sa.Column('earned', sa.BigInteger(), nullable=False),
    sa.Column('spent', sa.BigInteger(), nullable=False),
    sa.Column('sent', sa.BigInteger(), nullable=False),
    sa.Column('received', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('account', name=op.f('pk_balances'))
    )
    op.create_table('blobs',
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('hash', name=op.f('pk_blobs'))
    )
    op.create_table('chunks',
    sa.Column('task_id', sa.String(length=128), nullable=False),
    sa.Column('chunk', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('worker', sa.String(length=64), nullable=True),
    sa.Column('price', sa.BigInteger(), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('result_hash', sa.String(length=64), nullable=True),
    sa.Column('payment', sa.BigInteger(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('usage', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('task_id', 'chunk', name=op.f('pk_chunks'))
    )
    op.create_table('void_events',
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.Column('author', sa.String(length=64), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('raw', sa.LargeBinary(), nullable=False),
    sa.Column('sig', sa.LargeBinary(length=64), nullable=False),
    sa.PrimaryKeyConstraint('hash', name=op.f('pk_void_events'))
    )
    op.create_table('counters',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('value', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_counters'))
    )
    counters = sa.table('counters', sa.column('name', sa.String), sa.column('value', sa.BigInteger))
    op.bulk_insert(counters, [{'name': 'offset', 'value': 0}])
    op.create_table('credit_history',
    sa.Column('offset', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('part', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('account', sa.String(length=64), nullable=False),
    sa.Column('event_hash', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('delta', sa.BigInteger(), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('counterparty', sa.String(length=64), nullable=True),
    sa.Column('task_id', sa.String(length=128), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('ts', sa.BigInteger(), nullable=False),
    sa.Column('balance_after', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('offset', 'part', name=op.f('pk_credit_history'))
    )
    with op.batch_alter_table('credit_history', schema=None) as batch_op:
        batch_op.create_index('ix_credit_history_account', ['account', 'offset'], unique=False)

    op.create_table('events',
    sa.Column('offset', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.Column('author', sa.String(length=64), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('type', sa.String(length=64), nullable=False),
    sa.Column('ts', sa.BigInteger(), nullable=False),
    sa.Column('raw', sa.LargeBinary(), nullable=False),
    sa.Column('sig', sa.LargeBinary(length=64), nullable=False),
    sa.Column('valid', sa.Boolean(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('offset', name=op.f('pk_events')),
    sa.UniqueConstraint('author', 'seq', name='uq_events_author_seq'),
    sa.UniqueConstraint('hash', name=op.f('uq_events_hash'))
    )
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.create_index('ix_events_type', ['type'], unique=False)

    op.create_table('fork_proofs',
    sa.Column('author', sa.String(length=64), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('hash_a', sa.String(length=64), nullable=False),
    sa.Column('raw_a', sa.LargeBinary(), nullable=False),
    sa.Column('sig_a', sa.LargeBinary(length=64), nullable=False),
    sa.Column('hash_b', sa.String(length=64), nullable=False),
    sa.Column('raw_b', sa.LargeBinary(), nullable=False),
    sa.Column('sig_b', sa.LargeBinary(length=64), nullable=False),
    sa.PrimaryKeyConstraint('author', 'seq', name=op.f('pk_fork_proofs'))
    )
    op.create_table('meta',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_meta'))
    )
    op.create_table('nodes',
    sa.Column('node_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('url', sa.String(length=512), nullable=True),
    sa.Column('node_type', sa.String(length=32), nullable=False),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('capabilities', sa.Text(), nullable=False),
    sa.Column('load', sa.Text(), nullable=False),
    sa.Column('events', sa.BigInteger(), nullable=False),
    sa.Column('forked_at', sa.BigInteger(), nullable=True),
    sa.Column('last_ts', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('node_id', name=op.f('pk_nodes'))
    )
    op.create_table('projection_checkpoints',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('offset', sa.BigInteger(), nullable=False),
    sa.Column('state_hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_projection_checkpoints'))
    )
    op.create_table('reputation',
    sa.Column('subject', sa.String(length=64), nullable=False),
    sa.Column('score_ppm', sa.Integer(), nullable=False),
    sa.Column('positive', sa.Integer(), nullable=False),
    sa.Column('negative', sa.Integer(), nullable=False),
    sa.Column('quality_sum_ppm', sa.BigInteger(), nullable=False),
    sa.Column('feedback_count', sa.Integer(), nullable=False),
    sa.Column('forked', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('subject', name=op.f('pk_reputation'))
    )
    op.create_table('reputation_history',
    sa.Column('offset', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('subject', sa.String(length=64), nullable=False),
    sa.Column('author', sa.String(length=64), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('event_hash', sa.String(length=64), nullable=False),
    sa.Column('positive', sa.Boolean(), nullable=False),
    sa.Column('quality_ppm', sa.Integer(), nullable=False),
    sa.Column('weight_ppm', sa.Integer(), nullable=False),
    sa.Column('score_after_ppm', sa.Integer(), nullable=False),
    sa.Column('ts', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('offset', name=op.f('pk_reputation_history'))
    )
    with op.batch_alter_table('reputation_history', schema=None) as batch_op:
        batch_op.create_index('ix_reputation_history_subject', ['subject', 'offset'], unique=False)

    op.create_table('tasks',
    sa.Column('task_id', sa.String(length=128), nullable=False),
    sa.Column('owner', sa.String(length=64), nullable=False),
    sa.Column('task_type', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('priority', sa.Integer(), nullable=False),
    sa.Column('escrow', sa.BigInteger(), nullable=False),
    sa.Column('max_price', sa.BigInteger(), nullable=False),
    sa.Column('paid', sa.BigInteger(), nullable=False),
    sa.Column('refund', sa.BigInteger(), nullable=False),
    sa.Column('chunks_total', sa.Integer(), nullable=False),
    sa.Column('chunks_done', sa.Integer(), nullable=False),
    sa.Column('chunks_failed', sa.Integer(), nullable=False),
    sa.Column('submitted_hash', sa.String(length=64), nullable=False),
    sa.Column('spec', sa.Text(), nullable=False),
    sa.Column('result', sa.Text(), nullable=True),
    sa.Column('result_hash', sa.String(length=64), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('submitted_ts', sa.BigInteger(), nullable=False),
    sa.Column('finished_ts', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('task_id', name=op.f('pk_tasks'))
    )
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.create_index('ix_tasks_owner', ['owner'], unique=False)
        batch_op.create_index('ix_tasks_status', ['status'], unique=False)



def downgrade() -> None:
    op.drop_table('void_events')
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.drop_index('ix_tasks_status')
        batch_op.drop_index('ix_tasks_owner')

    op.drop_table('tasks')
    with op.batch_alter_table('reputation_history', schema=None) as batch_op:
        batch_op.drop_index('ix_reputation_history_subject')

    op.drop_table('reputation_history')
    op.drop_table('reputation')
    op.drop_table('projection_checkpoints')
    op.drop_table('nodes')
    op.drop_table('meta')
    op.drop_table('fork_proofs')
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index('ix_events_type')

    op.drop_table('events')
    with op.batch_alter_table('credit_history', schema=None) as batch_op:
        batch_op.drop_index('ix_credit_history_account')

    op.drop_table('credit_history')
    op.drop_table('counters')
    op.drop_table('chunks')
    op.drop_table('blobs')
    op.drop_table('balances')
