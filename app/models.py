"""Imports every table module, so ``SQLModel.metadata`` knows the whole schema (Alembic, tests)."""

from app.alerts.models import Alert
from app.audit.models import AuditEvent
from app.auth.models import ActivationCode, RefreshToken, StaffMembership, StaffUser
from app.diary.models import (
    DiaryConflict,
    DiaryEntry,
    DiaryEntryVersion,
    IdempotencyRecord,
    MedicationDose,
    MgAdlResponse,
    StepCount,
    StepInterval,
    SymptomReport,
    VitalSign,
)
from app.medications.models import (
    MedicationLine,
    MedicationLineVersion,
    StudyDrugAdministration,
    StudyDrugAdministrationVersion,
)
from app.participants.models import Participant
from app.safety.ae_models import AdverseEvent, AdverseEventVersion
from app.safety.models import SafetyFinding, SafetyPrompt, SafetySignal
from app.scores.models import (
    ClinicAssessment,
    ClinicAssessmentVersion,
    LabResult,
    LabResultVersion,
)
from app.studies.models import ProtocolVersion, Site, Study
from app.visits.models import CalendarFeed, Visit
from app.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from app.worker import WorkerHeartbeat

__all__ = [
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
    "AdverseEvent",
    "AdverseEventVersion",
    "Alert",
    "SafetyFinding",
    "SafetyPrompt",
    "SafetySignal",
    "CalendarFeed",
    "Visit",
    "StudyDrugAdministration",
    "StudyDrugAdministrationVersion",
    "ClinicAssessment",
    "ClinicAssessmentVersion",
    "LabResult",
    "LabResultVersion",
    "MedicationLine",
    "MedicationLineVersion",
    "DiaryConflict",
    "DiaryEntry",
    "DiaryEntryVersion",
    "IdempotencyRecord",
    "MedicationDose",
    "MgAdlResponse",
    "StepCount",
    "StepInterval",
    "SymptomReport",
    "VitalSign",
    "ActivationCode",
    "AuditEvent",
    "Participant",
    "ProtocolVersion",
    "RefreshToken",
    "Site",
    "StaffMembership",
    "StaffUser",
    "Study",
    "WorkerHeartbeat",
]
