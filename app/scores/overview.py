"""The investigator's participant list: each row with the latest MG-ADL, its change from
baseline and diary adherence (api-contract.md "Participant list rows").

Everything for a page is read with a fixed number of queries (series and diary dates for all the
page's participants at once), never one query per row.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence

from pydantic import Field
from sqlmodel import Session

from app.diary import queries as diary_queries
from app.participants import service as participants_service
from app.participants.models import Participant
from app.participants.schemas import ParticipantPublic
from app.scores import trends
from app.scores.outcomes import participant_series
from app.studies import service as studies_service


class ParticipantRow(ParticipantPublic):
    latest_mg_adl: int | None = Field(description="The newest MG-ADL total (diary or clinic).")
    latest_mg_adl_date: dt.date | None
    mg_adl_baseline: int | None
    mg_adl_change_from_baseline: int | None = Field(
        description="Latest minus baseline (negative is better); null without a baseline."
    )
    diary_adherence: float | None = Field(description="0-1, by the protocol's diary cadence.")


def _int(value: float | None) -> int | None:
    return None if value is None else round(value)


def participant_rows(
    session: Session, participants: Sequence[Participant], version_numbers: dict[uuid.UUID, int]
) -> list[ParticipantRow]:
    series = participant_series(session, [p.id for p in participants], instruments=("mg_adl",))
    adherence = diary_queries.adherence_many(session, participants)
    rows = []
    for p in participants:
        points = series.get((p.id, "mg_adl"), [])
        protocol = studies_service.definition_for_version(session, p.protocol_version_id)
        settings = trends.settings_for("mg_adl", protocol.efficacy, protocol.baseline)
        base_value, _ = trends.baseline(points, p.day0_date, settings)
        latest = trends.sort_points(points)[-1] if points else None
        change = (latest.value - base_value) if latest and base_value is not None else None
        public = participants_service.to_public(session, p, version_numbers)
        rows.append(
            ParticipantRow(
                **public.model_dump(),
                latest_mg_adl=_int(latest.value) if latest else None,
                latest_mg_adl_date=latest.date if latest else None,
                mg_adl_baseline=_int(base_value),
                mg_adl_change_from_baseline=_int(change),
                diary_adherence=adherence[p.id].adherence,
            )
        )
    return rows
