"""compliance and delivery: consent records, opt-in/opt-out sources, undeliverable numbers, early status callbacks

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04 20:23:23.980173
"""
from alembic import op
import sqlalchemy as sa
import engine.models


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('early_statuses',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('sid', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=40), nullable=False),
    sa.Column('error_code', sa.Integer(), nullable=True),
    sa.Column('received_at', engine.models.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('early_statuses', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_early_statuses_received_at'), ['received_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_early_statuses_sid'), ['sid'], unique=False)

    op.create_table('consent_records',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('contact_id', sa.Integer(), nullable=False),
    sa.Column('action', sa.String(length=10), nullable=False),
    sa.Column('method', sa.String(length=20), nullable=False),
    sa.Column('keyword', sa.String(length=100), nullable=True),
    sa.Column('message_sid', sa.String(length=64), nullable=True),
    sa.Column('source', sa.String(length=200), nullable=True),
    sa.Column('created_at', engine.models.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('consent_records', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_consent_records_contact_id'), ['contact_id'], unique=False)

    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('opt_out_source', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('opted_in_at', engine.models.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('opt_in_source', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('delivery_failures', sa.Integer(), server_default=sa.text('0'), nullable=False))
        batch_op.add_column(sa.Column('undeliverable_at', engine.models.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.drop_column('undeliverable_at')
        batch_op.drop_column('delivery_failures')
        batch_op.drop_column('opt_in_source')
        batch_op.drop_column('opted_in_at')
        batch_op.drop_column('opt_out_source')

    with op.batch_alter_table('consent_records', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_consent_records_contact_id'))

    op.drop_table('consent_records')
    with op.batch_alter_table('early_statuses', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_early_statuses_sid'))
        batch_op.drop_index(batch_op.f('ix_early_statuses_received_at'))

    op.drop_table('early_statuses')