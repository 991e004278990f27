"""vital_sign (participant_id, temperature_c)

The safety rules read a participant's stored fevers on every write that can take part in a
CRS finding (app/safety/engine.py). Through ``diary_entry (participant_id, kind, recorded_at)``
that read walked every vitals entry of the evidence window - a participant with a reading
every few minutes paid for all of them; a range on the temperature finds the few fevers. The
new index leads with ``participant_id``, so it also serves what the single-column index it
replaces did (the foreign key's lookups).

On PostgreSQL the index is built CONCURRENTLY (outside the migration's transaction): capture
keeps writing vital signs while it builds, and a step interrupted half-way is safe to run again.

Revision ID: 0405_vital_sign_fever_index
Revises: 0404_mg_adl_append_only
Create Date: 2026-12-04 19:30:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0405_vital_sign_fever_index"
down_revision: str | None = "0404_mg_adl_append_only"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NEW = "ix_vital_sign_participant_id_temperature_c"
OLD = "ix_vital_sign_participant_id"


def _swap(create: str, columns: list[str], drop: str) -> None:
    if op.get_bind().dialect.name == "postgresql":
        # A build interrupted before (a CONCURRENTLY build can leave an invalid index behind)
        # is dropped and built again; migrations run one at a time (migrations/env.py holds an
        # advisory lock), so what exists here is never another migrator's finished index.
        with op.get_context().autocommit_block():
            concurrently = {"postgresql_concurrently": True, "if_exists": True}
            op.drop_index(create, table_name="vital_sign", **concurrently)
            op.create_index(create, "vital_sign", columns, postgresql_concurrently=True)
            op.drop_index(drop, table_name="vital_sign", **concurrently)
    else:
        op.create_index(create, "vital_sign", columns)
        op.drop_index(drop, table_name="vital_sign")


def upgrade() -> None:
    _swap(NEW, ["participant_id", "temperature_c"], OLD)


def downgrade() -> None:
    _swap(OLD, ["participant_id"], NEW)
