"""study drug administrations

Revision ID: 4c603d1dd67e
Revises: c9e0f1613e8f
Create Date: 2026-11-22
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '4c603d1dd67e'
down_revision: str | None = 'c9e0f1613e8f'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table('study_drug_administration',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('participant_id', sa.Uuid(), nullable=False),
    sa.Column('study_id', sa.Uuid(), nullable=False),
    sa.Column('current_version', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['participant_id'], ['participant.id'], name=op.f('fk_study_drug_administration_participant_id_participant')),
    sa.ForeignKeyConstraint(['study_id'], ['study.id'], name=op.f('fk_study_drug_administration_study_id_study')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_study_drug_administration'))
    )
    with op.batch_alter_table('study_drug_administration', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_study_drug_administration_participant_id'), ['participant_id'], unique=False)

    op.create_table('study_drug_administration_version',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('administration_id', sa.Uuid(), nullable=False),
    sa.Column('participant_id', sa.Uuid(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('product', sa.String(length=120), nullable=False),
    sa.Column('dose', sa.Float(), nullable=False),
    sa.Column('unit', sa.String(length=20), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('start_date', sa.Date(), nullable=False),
    sa.Column('cycle', sa.Integer(), nullable=True),
    sa.Column('dose_level', sa.String(length=40), nullable=True),
    sa.Column('reason', sa.String(length=2000), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor_id', sa.String(length=255), nullable=False),
    sa.Column('actor_role', sa.String(length=40), nullable=False),
    sa.ForeignKeyConstraint(['administration_id'], ['study_drug_administration.id'], name=op.f('fk_study_drug_administration_version_administration_id_study_drug_administration')),
    sa.ForeignKeyConstraint(['participant_id'], ['participant.id'], name=op.f('fk_study_drug_administration_version_participant_id_participant')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_study_drug_administration_version')),
    sa.UniqueConstraint('administration_id', 'version', name=op.f('uq_study_drug_administration_version_administration_id_version'))
    )
    with op.batch_alter_table('study_drug_administration_version', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_study_drug_administration_version_administration_id'), ['administration_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_study_drug_administration_version_participant_id'), ['participant_id'], unique=False)

    table = "study_drug_administration_version"  # append-only, like every version table
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
    table = "study_drug_administration_version"
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP TRIGGER IF EXISTS {table}_no_update_delete ON {table}")
    else:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_no_update")
        op.execute(f"DROP TRIGGER IF EXISTS {table}_no_delete")

    with op.batch_alter_table('study_drug_administration_version', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_study_drug_administration_version_participant_id'))
        batch_op.drop_index(batch_op.f('ix_study_drug_administration_version_administration_id'))

    op.drop_table('study_drug_administration_version')
    with op.batch_alter_table('study_drug_administration', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_study_drug_administration_participant_id'))

    op.drop_table('study_drug_administration')

