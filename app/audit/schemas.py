from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from app.core.schemas import ResponseModel


class AuditEventPublic(ResponseModel):
    id: uuid.UUID
    occurred_at: datetime
    actor_type: str
    actor_id: str
    actor_role: str
    action: str
    entity_type: str
    entity_id: str
    study_id: uuid.UUID | None
    participant_id: uuid.UUID | None
    changes: dict[str, Any]
    reason: str | None
    request_id: str | None
