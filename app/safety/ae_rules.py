"""The rules an adverse-event version must follow, and the columns it stores.

No session: the participant's enrolment date is the only stored fact the rules read.

Rules checked on every version (422 naming the field and the rule):

- the grade is inside the term's CTCAE range (``app.safety.ctcae``); for Cytokine release
  syndrome it is the ASTCT grade of ``crs_inputs`` (required), for Encephalopathy with
  ``icans_inputs`` the ICANS grade; an explicit grade that differs is refused, and inputs that
  grade 0 (no CRS / no ICANS) are refused; inputs on any other term are refused;
- onset not before enrolment; resolution not before onset, and only with an outcome that ended
  the event (recovered, recovered with sequelae, fatal);
- serious needs at least one seriousness criterion, and criteria need serious;
- death is one fact in three places, which must agree: outcome ``fatal`` <=> grade 5 (CTCAE:
  grade 5 is death related to the AE) <=> the ``death`` seriousness criterion (ICH E2A).
"""

from __future__ import annotations

from typing import Any

from app.core.errors import InvalidInput
from app.participants.models import Participant
from app.safety import grading
from app.safety.ae_schemas import AdverseEventFields, IcansInputsIn
from app.safety.ctcae import BY_CODE, CTCAE_VERSION, CtcaeTerm

#: Outcomes after which the event has a resolution date.
_ENDED = ("recovered", "recovered_with_sequelae", "fatal")


class _Errors:
    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def add(self, field: str | tuple[str, ...], rule: str, msg: str) -> None:
        path = (field,) if isinstance(field, str) else field
        self.items.append({"loc": ["body", *path], "msg": msg, "type": rule})

    def raise_any(self) -> None:
        if self.items:
            raise InvalidInput(self.items)


def _computed_grade(
    term: CtcaeTerm, body: AdverseEventFields, errors: _Errors
) -> tuple[dict[str, Any], int | None]:
    """The ASTCT columns and the grade they give (None when the investigator grades)."""
    columns: dict[str, Any] = {
        "crs_inputs": None,
        "astct_grade": None,
        "icans_inputs": None,
        "icans_grade": None,
        "grading_version": None,
    }
    if body.crs_inputs is not None and term.grading != "astct_crs":
        errors.add("crs_inputs", "not_applicable", "crs_inputs apply to Cytokine release syndrome")
    if body.icans_inputs is not None and term.grading != "astct_icans":
        errors.add("icans_inputs", "not_applicable", "icans_inputs apply to Encephalopathy (ICANS)")
    if term.grading == "astct_crs":
        if body.crs_inputs is None:
            errors.add(
                "crs_inputs", "missing", "Cytokine release syndrome is graded from crs_inputs"
            )
            return columns, None
        grade = grading.crs_grade(grading.CrsInputs(**body.crs_inputs.model_dump()))
        if grade == 0:
            errors.add(
                "crs_inputs",
                "no_crs",
                "these findings are no CRS (ASTCT 2019: fever >= 38.0 C is required until "
                "antipyretic or anti-cytokine therapy, then hypotension or hypoxia)",
            )
            return columns, None
        columns.update(
            crs_inputs=body.crs_inputs.model_dump(),
            astct_grade=grade,
            grading_version=grading.GRADING_VERSION,
        )
        return columns, grade
    if term.grading == "astct_icans" and body.icans_inputs is not None:
        icans = _icans(body.icans_inputs, errors)
        if icans is None:
            return columns, None
        columns.update(
            icans_inputs=body.icans_inputs.model_dump(),
            icans_grade=icans,
            grading_version=grading.GRADING_VERSION,
        )
        return columns, icans
    return columns, None


def _graded_from_inputs(term: CtcaeTerm, body: AdverseEventFields) -> bool:
    """Whether the grade comes from ASTCT inputs (whose own errors are then reported)."""
    return term.grading == "astct_crs" or (
        term.grading == "astct_icans" and body.icans_inputs is not None
    )


def _icans(inputs: IcansInputsIn, errors: _Errors) -> int | None:
    assert inputs.ice_score is not None  # IcansInputsIn fills it in
    try:
        grade = grading.icans_grade(
            grading.IcansInputs(
                ice_score=inputs.ice_score,
                consciousness=inputs.consciousness,
                seizure=inputs.seizure,
                motor=inputs.motor,
                raised_icp=inputs.raised_icp,
                unarousable=inputs.unarousable,
            )
        )
    except grading.GradingInputError as exc:
        errors.add(("icans_inputs", exc.field), "icans_input", str(exc))
        return None
    if grade == 0:
        errors.add("icans_inputs", "no_icans", "these findings are no ICANS (every domain normal)")
        return None
    return grade


def version_values(body: AdverseEventFields, participant: Participant) -> dict[str, Any]:
    """The version row's clinical columns, or InvalidInput listing every broken rule."""
    errors = _Errors()
    term = BY_CODE[body.term]
    columns, computed = _computed_grade(term, body, errors)
    grade = body.grade
    if computed is not None:
        if grade is not None and grade != computed:
            errors.add(
                "grade",
                "grade_mismatch",
                f"grade {grade} is not the ASTCT 2019 grade of the inputs ({computed})",
            )
        grade = computed
    elif grade is None and not _graded_from_inputs(term, body):
        errors.add("grade", "missing", f"{term.term} needs a CTCAE grade")
    if grade is not None and grade not in term.grades:
        errors.add(
            "grade",
            "grade_out_of_range",
            f"{term.term} is graded {term.min_grade}-{term.max_grade} in CTCAE v{CTCAE_VERSION}",
        )
    if body.onset_date < participant.enrolled_date:
        errors.add("onset_date", "before_enrolment", "onset is before the participant's enrolment")
    if body.resolution_date is not None:
        if body.resolution_date < body.onset_date:
            errors.add("resolution_date", "before_onset", "resolution is before onset")
        if body.outcome not in _ENDED:
            errors.add(
                "resolution_date",
                "not_resolved",
                f"an event with outcome {body.outcome} has no resolution date",
            )
    criteria = list(body.seriousness_criteria)
    if body.serious and not criteria:
        errors.add("seriousness_criteria", "criteria_required", "a serious event needs a criterion")
    if criteria and not body.serious:
        errors.add(
            "seriousness_criteria", "criteria_without_serious", "criteria apply to serious events"
        )
    fatal = body.outcome == "fatal"
    if grade is not None and fatal != (grade == 5):
        errors.add(
            "outcome",
            "fatal_is_grade_5",
            "outcome fatal and grade 5 (death related to the event) go together",
        )
    if fatal != ("death" in criteria):
        errors.add(
            "seriousness_criteria",
            "fatal_is_death",
            "outcome fatal and the seriousness criterion death go together",
        )
    errors.raise_any()
    assert grade is not None
    return {
        **columns,
        "ctcae_term": term.term,
        "meddra_code": term.meddra_code,
        "ctcae_version": CTCAE_VERSION,
        "grade": grade,
        "serious": body.serious,
        "seriousness_criteria": criteria,
        "relatedness": body.relatedness,
        "expected": body.expected,
        "onset_date": body.onset_date,
        "resolution_date": body.resolution_date,
        "outcome": body.outcome,
        "action_taken": body.action_taken,
    }
