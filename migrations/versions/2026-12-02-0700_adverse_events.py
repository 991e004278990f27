"""adverse events: head and append-only versions, recorded by investigators

Revision ID: 0402_adverse_events
Revises: 0401_safety_signals
Create Date: 2026-12-02
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0402_adverse_events'
down_revision: str | None = '0401_safety_signals'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

VERSION_TABLES = ("adverse_event_version",)


def upgrade() -> None:
    op.create_table('adverse_event',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('participant_id', sa.Uuid(), nullable=False),
    sa.Column('study_id', sa.Uuid(), nullable=False),
    sa.Column('site_id', sa.Uuid(), nullable=False),
    sa.Column('current_version', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('signal_id', sa.Uuid(), nullable=True),
    sa.ForeignKeyConstraint(['participant_id'], ['participant.id'], name=op.f('fk_adverse_event_participant_id_participant')),
    sa.ForeignKeyConstraint(['signal_id'], ['safety_signal.id'], name=op.f('fk_adverse_event_signal_id_safety_signal')),
    sa.ForeignKeyConstraint(['site_id'], ['site.id'], name=op.f('fk_adverse_event_site_id_site')),
    sa.ForeignKeyConstraint(['study_id'], ['study.id'], name=op.f('fk_adverse_event_study_id_study')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_adverse_event')),
    sa.UniqueConstraint('signal_id', name=op.f('uq_adverse_event_signal_id'))
    )
    with op.batch_alter_table('adverse_event', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_adverse_event_participant_id'), ['participant_id'], unique=False)
        batch_op.create_index('ix_adverse_event_study_id_site_id', ['study_id', 'site_id'], unique=False)

    op.create_table('adverse_event_version',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('adverse_event_id', sa.Uuid(), nullable=False),
    sa.Column('participant_id', sa.Uuid(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('ctcae_term', sa.String(length=80), nullable=False),
    sa.Column('meddra_code', sa.String(length=12), nullable=False),
    sa.Column('ctcae_version', sa.String(length=10), nullable=False),
    sa.Column('grade', sa.Integer(), nullable=False),
    sa.Column('crs_inputs', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('astct_grade', sa.Integer(), nullable=True),
    sa.Column('icans_inputs', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('icans_grade', sa.Integer(), nullable=True),
    sa.Column('grading_version', sa.String(length=20), nullable=True),
    sa.Column('serious', sa.Boolean(), nullable=False),
    sa.Column('seriousness_criteria', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('relatedness', sa.String(length=20), nullable=False),
    sa.Column('expected', sa.Boolean(), nullable=False),
    sa.Column('onset_date', sa.Date(), nullable=False),
    sa.Column('resolution_date', sa.Date(), nullable=True),
    sa.Column('outcome', sa.String(length=30), nullable=False),
    sa.Column('action_taken', sa.String(length=20), nullable=False),
    sa.Column('reason', sa.String(length=2000), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor_id', sa.String(length=255), nullable=False),
    sa.Column('actor_role', sa.String(length=40), nullable=False),
    sa.CheckConstraint("action_taken IN ('none', 'dose_reduced', 'interrupted', 'withdrawn', 'not_applicable')", name=op.f('ck_adverse_event_version_action_taken')),
    sa.CheckConstraint("outcome IN ('recovered', 'recovering', 'not_recovered', 'recovered_with_sequelae', 'fatal', 'unknown')", name=op.f('ck_adverse_event_version_outcome')),
    sa.CheckConstraint("relatedness IN ('not_related', 'unlikely', 'possible', 'probable', 'definite')", name=op.f('ck_adverse_event_version_relatedness')),
    sa.CheckConstraint('grade BETWEEN 1 AND 5', name=op.f('ck_adverse_event_version_grade')),
    sa.ForeignKeyConstraint(['adverse_event_id'], ['adverse_event.id'], name=op.f('fk_adverse_event_version_adverse_event_id_adverse_event')),
    sa.ForeignKeyConstraint(['participant_id'], ['participant.id'], name=op.f('fk_adverse_event_version_participant_id_participant')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_adverse_event_version')),
    sa.UniqueConstraint('adverse_event_id', 'version', name=op.f('uq_adverse_event_version_adverse_event_id_version'))
    )
    with op.batch_alter_table('adverse_event_version', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_adverse_event_version_adverse_event_id'), ['adverse_event_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_adverse_event_version_participant_id'), ['participant_id'], unique=False)

    # Versions are append-only: corrections add rows, nothing is updated or deleted.
    for table in VERSION_TABLES:
        if op.get_bind().dialect.name == "postgresql":
            op.execute(
                f"CREATE TRIGGER {table}_no_update_delete BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION audit_event_append_only()"
            )
        else:
            for event in ("update", "delete"):
                op.execute(
                    f"CREATE TRIGGER {table}_no_{event} BEFORE {event.upper()} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
                )



def downgrade() -> None:
    for table in VERSION_TABLES:
        if op.get_bind().dialect.name == "postgresql":
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_update_delete ON {table}")
        else:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_update")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_delete")

    with op.batch_alter_table('adverse_event_version', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_adverse_event_version_participant_id'))
        batch_op.drop_index(batch_op.f('ix_adverse_event_version_adverse_event_id'))

    op.drop_table('adverse_event_version')
    with op.batch_alter_table('adverse_event', schema=None) as batch_op:
        batch_op.drop_index('ix_adverse_event_study_id_site_id')
        batch_op.drop_index(batch_op.f('ix_adverse_event_participant_id'))

    op.drop_table('adverse_event')
