"""lead management: API keys, owners, scores, consent on capture, double opt-in, rep rotation and notifications, broadcasts

Revision ID: 0003
Revises: 0001
Create Date: 2026-12-04 20:12:44.426321
"""
from alembic import op
import sqlalchemy as sa
import engine.models


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('api_keys',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('prefix', sa.String(length=16), nullable=False),
    sa.Column('key_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', engine.models.UTCDateTime(), nullable=False),
    sa.Column('last_used_at', engine.models.UTCDateTime(), nullable=True),
    sa.Column('revoked_at', engine.models.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key_hash')
    )
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.create_index('uq_api_keys_live_name', ['name'], unique=True, sqlite_where=sa.text('revoked_at IS NULL'), postgresql_where=sa.text('revoked_at IS NULL'))

    op.create_table('broadcasts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('segment', sa.String(length=500), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('recipients', sa.Integer(), nullable=False),
    sa.Column('created_by', sa.String(length=100), nullable=False),
    sa.Column('created_at', engine.models.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('round_robin_cursors',
    sa.Column('pool', sa.String(length=100), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('pool')
    )
    op.create_table('capture_consents',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('contact_id', sa.Integer(), nullable=False),
    sa.Column('method', sa.String(length=40), nullable=False),
    sa.Column('given_at', engine.models.UTCDateTime(), nullable=False),
    sa.Column('proof', sa.JSON(), nullable=False),
    sa.Column('recorded_by', sa.String(length=100), nullable=False),
    sa.Column('created_at', engine.models.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('capture_consents', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_capture_consents_contact_id'), ['contact_id'], unique=False)
        batch_op.create_index('uq_capture_consents', ['contact_id', 'method', 'given_at'], unique=True)

    op.create_table('rep_notifications',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('contact_id', sa.Integer(), nullable=False),
    sa.Column('rep', sa.String(length=100), nullable=False),
    sa.Column('channel', sa.String(length=20), nullable=False),
    sa.Column('target', sa.String(length=500), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.Column('created_at', engine.models.UTCDateTime(), nullable=False),
    sa.Column('claimed_at', engine.models.UTCDateTime(), nullable=True),
    sa.Column('sent_at', engine.models.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('rep_notifications', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_rep_notifications_contact_id'), ['contact_id'], unique=False)
        batch_op.create_index('ix_rep_notifications_status', ['status', 'created_at'], unique=False)

    op.create_table('double_opt_ins',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('contact_id', sa.Integer(), nullable=False),
    sa.Column('sequence_name', sa.String(length=100), nullable=False),
    sa.Column('send_id', sa.Integer(), nullable=True),
    sa.Column('requested_at', engine.models.UTCDateTime(), nullable=False),
    sa.Column('confirmed_at', engine.models.UTCDateTime(), nullable=True),
    sa.Column('enrollment_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], ),
    sa.ForeignKeyConstraint(['enrollment_id'], ['enrollments.id'], ),
    sa.ForeignKeyConstraint(['send_id'], ['scheduled_sends.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('double_opt_ins', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_double_opt_ins_contact_id'), ['contact_id'], unique=False)
        batch_op.create_index('uq_double_opt_ins_open', ['contact_id', 'sequence_name'], unique=True, sqlite_where=sa.text('confirmed_at IS NULL'), postgresql_where=sa.text('confirmed_at IS NULL'))

    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('source', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('owner', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('assigned_at', engine.models.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('score', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('score_reasons', sa.JSON(), server_default=sa.text("'[]'"), nullable=False))
        batch_op.create_index(batch_op.f('ix_contacts_owner'), ['owner'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_contacts_owner'))
        batch_op.drop_column('score_reasons')
        batch_op.drop_column('score')
        batch_op.drop_column('assigned_at')
        batch_op.drop_column('owner')
        batch_op.drop_column('source')

    with op.batch_alter_table('double_opt_ins', schema=None) as batch_op:
        batch_op.drop_index('uq_double_opt_ins_open', sqlite_where=sa.text('confirmed_at IS NULL'), postgresql_where=sa.text('confirmed_at IS NULL'))
        batch_op.drop_index(batch_op.f('ix_double_opt_ins_contact_id'))

    op.drop_table('double_opt_ins')
    with op.batch_alter_table('rep_notifications', schema=None) as batch_op:
        batch_op.drop_index('ix_rep_notifications_status')
        batch_op.drop_index(batch_op.f('ix_rep_notifications_contact_id'))

    op.drop_table('rep_notifications')
    with op.batch_alter_table('capture_consents', schema=None) as batch_op:
        batch_op.drop_index('uq_capture_consents')
        batch_op.drop_index(batch_op.f('ix_capture_consents_contact_id'))

    op.drop_table('capture_consents')
    op.drop_table('round_robin_cursors')
    op.drop_table('broadcasts')
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.drop_index('uq_api_keys_live_name', sqlite_where=sa.text('revoked_at IS NULL'), postgresql_where=sa.text('revoked_at IS NULL'))

    op.drop_table('api_keys')
