"""visits

Revision ID: 790a2165dd83
Revises: 4c603d1dd67e
Create Date: 2026-11-22
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '790a2165dd83'
down_revision: str | None = '4c603d1dd67e'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('calendar_feed',
    sa.Column('participant_id', sa.Uuid(), nullable=False),
    sa.Column('generation', sa.Integer(), nullable=False),
    sa.Column('rotated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['participant_id'], ['participant.id'], name=op.f('fk_calendar_feed_participant_id_participant')),
    sa.PrimaryKeyConstraint('participant_id', name=op.f('pk_calendar_feed'))
    )

    op.create_table('visit',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('participant_id', sa.Uuid(), nullable=False),
    sa.Column('study_id', sa.Uuid(), nullable=False),
    sa.Column('key', sa.String(length=40), nullable=False),
    sa.Column('label', sa.String(length=80), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('day', sa.Integer(), nullable=False),
    sa.Column('target_date', sa.Date(), nullable=False),
    sa.Column('window_start', sa.Date(), nullable=False),
    sa.Column('window_end', sa.Date(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('completed_on', sa.Date(), nullable=True),
    sa.Column('cancel_reason', sa.String(length=2000), nullable=True),
    sa.Column('sequence', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('scheduled', 'completed', 'cancelled')", name=op.f('ck_visit_status')),
    sa.ForeignKeyConstraint(['participant_id'], ['participant.id'], name=op.f('fk_visit_participant_id_participant')),
    sa.ForeignKeyConstraint(['study_id'], ['study.id'], name=op.f('fk_visit_study_id_study')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_visit')),
    sa.UniqueConstraint('participant_id', 'key', name=op.f('uq_visit_participant_id_key'))
    )
    with op.batch_alter_table('visit', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_visit_participant_id'), ['participant_id'], unique=False)
        batch_op.create_index('ix_visit_study_id_target_date', ['study_id', 'target_date'], unique=False)




def downgrade() -> None:
    op.drop_table('calendar_feed')

    with op.batch_alter_table('visit', schema=None) as batch_op:
        batch_op.drop_index('ix_visit_study_id_target_date')
        batch_op.drop_index(batch_op.f('ix_visit_participant_id'))

    op.drop_table('visit')

