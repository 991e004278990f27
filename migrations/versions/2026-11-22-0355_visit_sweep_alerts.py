"""visit sweep and alerts: visit status 'missed' with missed_at, and the alert table

Revision ID: 0322_visit_sweep_alerts
Revises: 790a2165dd83
Create Date: 2026-11-22
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql


revision: str = '0322_visit_sweep_alerts'
down_revision: str | None = '790a2165dd83'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

VISIT_STATUSES = "status IN ('scheduled', 'completed', 'cancelled', 'missed')"
VISIT_STATUSES_BEFORE = "status IN ('scheduled', 'completed', 'cancelled')"


def upgrade() -> None:
    op.create_table('alert',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('study_id', sa.Uuid(), nullable=False),
    sa.Column('site_id', sa.Uuid(), nullable=True),
    sa.Column('participant_id', sa.Uuid(), nullable=True),
    sa.Column('type', sa.String(length=60), nullable=False),
    sa.Column('priority', sa.String(length=20), nullable=False),
    sa.Column('subject_type', sa.String(length=60), nullable=False),
    sa.Column('subject_id', sa.String(length=64), nullable=False),
    sa.Column('data', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('dedup_key', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('acknowledged_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('acknowledged_by', sa.String(length=255), nullable=True),
    sa.CheckConstraint("priority IN ('routine', 'high', 'urgent')", name=op.f('ck_alert_priority')),
    sa.ForeignKeyConstraint(['participant_id'], ['participant.id'], name=op.f('fk_alert_participant_id_participant')),
    sa.ForeignKeyConstraint(['site_id'], ['site.id'], name=op.f('fk_alert_site_id_site')),
    sa.ForeignKeyConstraint(['study_id'], ['study.id'], name=op.f('fk_alert_study_id_study')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_alert')),
    sa.UniqueConstraint('dedup_key', name=op.f('uq_alert_dedup_key'))
    )
    with op.batch_alter_table('alert', schema=None) as batch_op:
        batch_op.create_index('ix_alert_study_id_created_at', ['study_id', 'created_at'], unique=False)

    # On SQLite, batch mode rebuilds the table: the check constraint is replaced in the copy.
    with op.batch_alter_table('visit', schema=None) as batch_op:
        batch_op.add_column(sa.Column('missed_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.drop_constraint(op.f('ck_visit_status'), type_='check')
        batch_op.create_check_constraint(op.f('ck_visit_status'), sa.text(VISIT_STATUSES))
        batch_op.create_index('ix_visit_status_window_end', ['status', 'window_end'], unique=False)


def downgrade() -> None:
    # A missed visit has no place in the older statuses: it goes back to scheduled (its missed_at
    # column is dropped; the audit trail keeps the sweep's events).
    op.execute("UPDATE visit SET status = 'scheduled' WHERE status = 'missed'")
    with op.batch_alter_table('visit', schema=None) as batch_op:
        batch_op.drop_index('ix_visit_status_window_end')
        batch_op.drop_constraint(op.f('ck_visit_status'), type_='check')
        batch_op.create_check_constraint(op.f('ck_visit_status'), sa.text(VISIT_STATUSES_BEFORE))
        batch_op.drop_column('missed_at')

    with op.batch_alter_table('alert', schema=None) as batch_op:
        batch_op.drop_index('ix_alert_study_id_created_at')

    op.drop_table('alert')
