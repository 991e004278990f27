"""Reference data the app shows: the symptom vocabulary, the MG-ADL questions, the formulary."""

from __future__ import annotations

from pydantic import BaseModel

from app.diary.vocabulary import SEVERITY_LABELS, SYMPTOMS, VOCABULARY_VERSION
from app.medications.formulary import FORMULARY, ROUTES, UNITS
from app.scores.instruments import mg_adl


class SymptomTermOut(BaseModel):
    code: str
    label: str
    category: str
    ctcae_term: str | None
    meddra_code: str | None


class SymptomVocabulary(BaseModel):
    version: str
    severities: dict[int, str]
    symptoms: list[SymptomTermOut]


class InstrumentItemOut(BaseModel):
    key: str
    number: int
    label: str
    domain: str
    anchors: list[str]


class InstrumentOut(BaseModel):
    instrument: str
    version: str
    recall_period_days: int
    score_range: tuple[int, int]
    items: list[InstrumentItemOut]


class MedicationOut(BaseModel):
    code: str
    generic_name: str
    brand_names: list[str]
    drug_class: str
    usual_units: list[str]
    routes: list[str]
    is_study_drug: bool
    is_corticosteroid: bool


class Formulary(BaseModel):
    units: list[str]
    routes: list[str]
    medications: list[MedicationOut]


def symptom_vocabulary() -> SymptomVocabulary:
    return SymptomVocabulary(
        version=VOCABULARY_VERSION,
        severities=dict(SEVERITY_LABELS),
        symptoms=[
            SymptomTermOut(
                code=t.code,
                label=t.label,
                category=t.category,
                ctcae_term=t.ctcae_term,
                meddra_code=t.meddra_code,
            )
            for t in SYMPTOMS.values()
        ],
    )


def mg_adl_instrument(recall_period_days: int) -> InstrumentOut:
    return InstrumentOut(
        instrument=mg_adl.INSTRUMENT,
        version=mg_adl.VERSION,
        recall_period_days=recall_period_days,
        score_range=(0, mg_adl.TOTAL_MAX),
        items=[
            InstrumentItemOut(
                key=i.key, number=i.number, label=i.label, domain=i.domain, anchors=list(i.anchors)
            )
            for i in mg_adl.ITEMS
        ],
    )


def formulary() -> Formulary:
    return Formulary(
        units=list(UNITS),
        routes=list(ROUTES),
        medications=[
            MedicationOut(
                code=m.code,
                generic_name=m.generic_name,
                brand_names=list(m.brand_names),
                drug_class=m.drug_class,
                usual_units=list(m.usual_units),
                routes=list(m.routes),
                is_study_drug=m.is_study_drug,
                is_corticosteroid=m.is_corticosteroid,
            )
            for m in FORMULARY.values()
        ],
    )
