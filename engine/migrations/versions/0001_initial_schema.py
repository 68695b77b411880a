"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-12-04 20:00:18.303340
"""
from alembic import op
import sqlalchemy as sa
import engine.models


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('contacts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('phone', sa.String(length=20), nullable=False),
    sa.Column('first_name', sa.String(length=100), nullable=True),
    sa.Column('last_name', sa.String(length=100), nullable=True),
    sa.Column('email', sa.String(length=254), nullable=True),
    sa.Column('company', sa.String(length=200), nullable=True),
    sa.Column('time_zone', sa.String(length=64), nullable=True),
    sa.Column('fields', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('opted_out_at', engine.models.UTCDateTime(), nullable=True),
    sa.Column('created_at', engine.models.UTCDateTime(), nullable=False),
    sa.Column('updated_at', engine.models.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('phone')
    )
    op.create_table('enrollments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('contact_id', sa.Integer(), nullable=False),
    sa.Column('sequence_name', sa.String(length=100), nullable=False),
    sa.Column('keyword', sa.String(length=100), nullable=True),
    sa.Column('state', sa.String(length=100), nullable=False),
    sa.Column('enrolled_at', engine.models.UTCDateTime(), nullable=False),
    sa.Column('last_sent_at', engine.models.UTCDateTime(), nullable=True),
    sa.Column('ended_at', engine.models.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('enrollments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_enrollments_contact_id'), ['contact_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_enrollments_sequence_name'), ['sequence_name'], unique=False)
        batch_op.create_index('uq_enrollments_live', ['contact_id', 'sequence_name'], unique=True, sqlite_where=sa.text('ended_at IS NULL'), postgresql_where=sa.text('ended_at IS NULL'))

    op.create_table('events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('contact_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('actor', sa.String(length=100), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.Column('created_at', engine.models.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_events_contact_id'), ['contact_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_events_created_at'), ['created_at'], unique=False)

    op.create_table('scheduled_sends',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('contact_id', sa.Integer(), nullable=False),
    sa.Column('enrollment_id', sa.Integer(), nullable=True),
    sa.Column('step_id', sa.String(length=100), nullable=True),
    sa.Column('body', sa.Text(), nullable=True),
    sa.Column('actor', sa.String(length=100), nullable=False),
    sa.Column('due_at', engine.models.UTCDateTime(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('claimed_at', engine.models.UTCDateTime(), nullable=True),
    sa.Column('claimed_by', sa.String(length=200), nullable=True),
    sa.Column('finished_at', engine.models.UTCDateTime(), nullable=True),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.Column('created_at', engine.models.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], ),
    sa.ForeignKeyConstraint(['enrollment_id'], ['enrollments.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('scheduled_sends', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_scheduled_sends_contact_id'), ['contact_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_scheduled_sends_enrollment_id'), ['enrollment_id'], unique=False)
        batch_op.create_index('ix_scheduled_sends_status_due', ['status', 'due_at'], unique=False)

    op.create_table('messages',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('contact_id', sa.Integer(), nullable=False),
    sa.Column('direction', sa.String(length=10), nullable=False),
    sa.Column('sid', sa.String(length=64), nullable=True),
    sa.Column('from_number', sa.String(length=20), nullable=False),
    sa.Column('to_number', sa.String(length=20), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=True),
    sa.Column('error_code', sa.Integer(), nullable=True),
    sa.Column('enrollment_id', sa.Integer(), nullable=True),
    sa.Column('send_id', sa.Integer(), nullable=True),
    sa.Column('reply_text', sa.Text(), nullable=True),
    sa.Column('created_at', engine.models.UTCDateTime(), nullable=False),
    sa.Column('updated_at', engine.models.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], ),
    sa.ForeignKeyConstraint(['enrollment_id'], ['enrollments.id'], ),
    sa.ForeignKeyConstraint(['send_id'], ['scheduled_sends.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('send_id'),
    sa.UniqueConstraint('sid')
    )
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_messages_contact_id'), ['contact_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_messages_enrollment_id'), ['enrollment_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_messages_enrollment_id'))
        batch_op.drop_index(batch_op.f('ix_messages_contact_id'))

    op.drop_table('messages')
    with op.batch_alter_table('scheduled_sends', schema=None) as batch_op:
        batch_op.drop_index('ix_scheduled_sends_status_due')
        batch_op.drop_index(batch_op.f('ix_scheduled_sends_enrollment_id'))
        batch_op.drop_index(batch_op.f('ix_scheduled_sends_contact_id'))

    op.drop_table('scheduled_sends')
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_events_created_at'))
        batch_op.drop_index(batch_op.f('ix_events_contact_id'))

    op.drop_table('events')
    with op.batch_alter_table('enrollments', schema=None) as batch_op:
        batch_op.drop_index('uq_enrollments_live', sqlite_where=sa.text('ended_at IS NULL'), postgresql_where=sa.text('ended_at IS NULL'))
        batch_op.drop_index(batch_op.f('ix_enrollments_sequence_name'))
        batch_op.drop_index(batch_op.f('ix_enrollments_contact_id'))

    op.drop_table('enrollments')
    op.drop_table('contacts')
