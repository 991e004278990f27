"""Built-in protocol definitions for the trials in shared/domain/trials.md.

Each is a template an admin posts (or ``mgdiary demo`` loads); values come from the registry texts
quoted in trials.md. Where the registry is silent the definition says so in ``notes`` and uses
the service default, so the sponsor's protocol can set it.
"""

from __future__ import annotations

from typing import Any

from app.studies.protocol import ProtocolDefinition

_LEAD_SITE = [{"code": "SITE-01", "name": "Lead site"}]
_CORE_CLINIC = [
    {"instrument": "mg_adl", "source": "diary", "when": "weekly"},
    {"instrument": "mg_adl", "source": "clinic", "when": "every_visit"},
    {"instrument": "qmg", "source": "clinic", "when": "every_visit"},
    {"instrument": "mgc", "source": "clinic", "when": "every_visit"},
]

# trials.md section 1 - NCT06836973.
BLINATUMOMAB_NCT06836973: dict[str, Any] = {
    "registry_id": "NCT06836973",
    "title": "Blinatumomab in refractory myasthenia gravis",
    "time_zone": "Asia/Shanghai",
    "sites": _LEAD_SITE,
    "day0_event": "first_administration",
    # A clinic visit every 4 weeks from baseline to 6 months: weeks 0, 4, ... 24.
    "visits": {
        "interval_days": 28,
        "count": 7,
        "window": {"before_days": 3, "after_days": 3},
        "screening": {"start_day": -28, "end_day": -1},
    },
    # Two 5-day continuous infusions, 1 week between them, counted from the end of cycle 1:
    # cycle 1 on days 0-4 (registry days 1-5), cycle 2 on days 12-16 (registry days 13-17).
    "dosing": {
        "pattern": "continuous_infusion_cycles",
        "product": "blinatumomab",
        "cycles": [
            {"cycle": 1, "start_day": 0, "duration_days": 5},
            {"cycle": 2, "start_day": 12, "duration_days": 5},
        ],
    },
    "instruments": [
        *_CORE_CLINIC,
        {"instrument": "mg_qol15", "source": "clinic", "when": "every_visit"},
        {"instrument": "anti_achr", "source": "lab", "when": "monthly"},
        {"instrument": "anti_musk", "source": "lab", "when": "monthly"},
        {"instrument": "anti_lrp4", "source": "lab", "when": "monthly"},
    ],
    "diary": {"mg_adl_every_days": 7, "daily_symptoms": True, "medications": True},
    "efficacy": {"mse_max_mg_adl": 1},
    "safety": {"risk_windows": [{"after": "each_administration", "start_day": 0, "end_day": 7}]},
    "eligibility": {"age_min": 18, "mg_adl_min": 6, "score_rule": "mg_adl"},
    "follow_up_end_day": 168,
    "notes": [
        "Primary outcome: change of MG-ADL from baseline to 6 months.",
        "The registry prints MG-QoL15 as 0-60; it is scored on that 15-item 0-4 instrument.",
        "Doses are not in the registry text; record each administration's dose.",
    ],
}

# trials.md section 2 - CD19-BCMA CAR-T, registry wording of NCT06371040.
CAR_T_CD19_BCMA_NCT06371040: dict[str, Any] = {
    "registry_id": "NCT06371040",
    "title": "CD19-BCMA CAR-T in refractory generalized myasthenia gravis (dose finding)",
    "time_zone": "Asia/Shanghai",
    "sites": _LEAD_SITE,
    "day0_event": "first_administration",
    "visits": {
        "interval_days": 28,
        "count": 7,
        "window": {"before_days": 3, "after_days": 3},
        "screening": {"start_day": -28, "end_day": -1},
    },
    "dosing": {"pattern": "single_infusion", "product": "CD19-BCMA CAR-T", "day": 0},
    "dose_levels": [
        {"code": "DL1", "label": "Dose level 1 (Keyboard design)"},
        {"code": "DL2", "label": "Dose level 2 (Keyboard design)"},
        {"code": "DL3", "label": "Dose level 3 (Keyboard design)"},
    ],
    "instruments": [
        *_CORE_CLINIC,
        {"instrument": "cd19_b_cells", "source": "lab", "when": "monthly"},
        {"instrument": "car_t_cells", "source": "lab", "when": "monthly"},
    ],
    "safety": {
        "risk_windows": [{"after": "each_administration", "start_day": 0, "end_day": 14}],
        "dlt_observation_days": 28,
    },
    "eligibility": {
        "age_min": 18,
        "age_max": 80,
        "mgfa_classes": ["IIa", "IIb", "IIIa", "IIIb", "IVa"],
        "antibodies_any_of": ["anti_achr", "anti_musk", "anti_lrp4"],
        "mg_adl_min": 5,
        "qmg_min": 11,
        "score_rule": "mg_adl_or_qmg",
        # "the eye score accounts for no more than 50%": an exact 50 % is allowed.
        "ocular_share": {"max_share": 0.5, "inclusive": True},
    },
    "follow_up_end_day": 168,
    "notes": [
        "About 12 patients; the Keyboard design sets the dose levels: edit their doses and count "
        "to the protocol's.",
        "Visit schedule and DLT window are not in the registry text: every 4 weeks to month 6 and "
        "a 28-day DLT window are service defaults to be confirmed.",
        "Contraception for 1 year after treatment.",
    ],
}

# trials.md section 3 - HN2301 (in vivo CAR-T).
HN2301: dict[str, Any] = {
    "registry_id": None,
    "title": "HN2301 (in vivo CAR-T) in refractory myasthenia gravis",
    "time_zone": "Asia/Shanghai",
    "sites": _LEAD_SITE,
    "day0_event": "first_administration",
    # Follow-up to 12 months: a visit every 4 weeks, weeks 0 ... 52; screening from day -28.
    "visits": {
        "interval_days": 28,
        "count": 14,
        "window": {"before_days": 3, "after_days": 3},
        "screening": {"start_day": -28, "end_day": -1},
    },
    "dosing": {"pattern": "single_infusion", "product": "HN2301", "day": 0},
    "instruments": [
        *_CORE_CLINIC,
        {"instrument": "mg_qol15r", "source": "clinic", "when": "every_visit"},
        {"instrument": "cd19_b_cells", "source": "lab", "when": "monthly"},
        {"instrument": "b_cell_subsets", "source": "lab", "when": "monthly"},
        {"instrument": "car_t_cells", "source": "lab", "when": "monthly"},
        {"instrument": "corticosteroid", "source": "diary", "when": "daily"},
    ],
    "efficacy": {
        "mg_adl_improvement_delta": 2,
        "qmg_improvement_delta": 3,
        "mgc_improvement_delta": 3,
    },
    "safety": {
        "risk_windows": [{"after": "each_administration", "start_day": 0, "end_day": 14}],
        "ae_follow_up_days": 90,
    },
    "follow_up_end_day": 364,
    "notes": [
        "AEs graded by CTCAE v5.0 over 3 months.",
        "The registry prints QMG as 0-32 and MG-QoL15r as 0-100; the service scores the "
        "standard instruments (QMG 0-39, MG-QoL15r 0-30).",
        "The dosing regimen is not in the registry text: a single administration on day 0 is "
        "assumed; edit it to the protocol's.",
    ],
}

# trials.md section 4 - NCT07243366 (allogeneic CD19 CAR-NK).
CAR_NK_NCT07243366: dict[str, Any] = {
    "registry_id": "NCT07243366",
    "title": "Allogeneic CD19-CAR-NK cells in refractory myasthenia gravis",
    "time_zone": "Asia/Shanghai",
    "sites": _LEAD_SITE,
    "day0_event": "first_administration",
    "visits": {
        "interval_days": 28,
        "count": 7,
        "window": {"before_days": 3, "after_days": 3},
        "screening": {"start_day": -28, "end_day": -1},
    },
    # Once every two weeks for a 24-week treatment period: 12 doses at weeks 0, 2, ... 22;
    # week 24 (day 168) closes the period without a dose.
    "dosing": {
        "pattern": "repeated_doses",
        "product": "CD19 CAR-NK",
        "interval_days": 14,
        "count": 12,
        "first_day": 0,
        "period_end_day": 168,
        "route": "IV",
    },
    "instruments": [*_CORE_CLINIC, {"instrument": "anti_achr", "source": "lab", "when": "monthly"}],
    "safety": {"risk_windows": [{"after": "each_administration", "start_day": 0, "end_day": 7}]},
    "eligibility": {
        "age_min": 18,
        "age_max": 65,
        "mgfa_classes": ["II", "III", "IV"],
        "antibodies_any_of": ["anti_achr"],
        "mg_adl_min": 6,
        "score_rule": "mg_adl",
        # "ocular sub-score < 50 % of the total": an exact 50 % fails.
        "ocular_share": {"max_share": 0.5, "inclusive": False},
    },
    "washouts": [
        {"therapy": "IV methylprednisolone", "min_days": 60},
        {"therapy": "IVIG", "min_days": 60},
        {"therapy": "plasma exchange", "min_days": 60},
        {"therapy": "rituximab", "min_days": 182},
        {"therapy": "eculizumab", "min_days": 91},
        {"therapy": "efgartigimod", "min_days": 30},
        {"therapy": "live vaccine", "min_days": 91},
    ],
    "follow_up_end_day": 168,
    "notes": [
        "15 participants; study start 2025-11-25, completion 2027-11-30.",
        "Washout months are converted to days (1 month = 30 days, 3 months = 91, 6 months = 182).",
    ],
}

# trials.md section 5 - the Duesseldorf blinatumomab case report (Molecular Therapy 2025).
BLINATUMOMAB_CASE_REPORT: dict[str, Any] = {
    "registry_id": None,
    "title": "Blinatumomab, two 12-day continuous infusion cycles (Duesseldorf case report)",
    "time_zone": "Europe/Berlin",
    "sites": [{"code": "DUS", "name": "Duesseldorf"}],
    "day0_event": "first_administration",
    "visits": {"interval_days": 28, "count": 4, "window": {"before_days": 3, "after_days": 3}},
    "dosing": {
        "pattern": "continuous_infusion_cycles",
        "product": "blinatumomab",
        "cycles": [
            {"cycle": 1, "start_day": 0, "duration_days": 12},
            {"cycle": 2, "start_day": 26, "duration_days": 12},
        ],
    },
    "dose_levels": [
        {"code": "C1", "label": "Cycle 1 dose"},
        {"code": "C2", "label": "Cycle 2, higher dose"},
    ],
    "instruments": [
        *_CORE_CLINIC,
        {"instrument": "steps", "source": "wearable", "when": "daily"},
        {"instrument": "cd19_b_cells", "source": "lab", "when": "monthly"},
        {"instrument": "anti_achr", "source": "lab", "when": "monthly"},
    ],
    "diary": {"mg_adl_every_days": 7, "steps": True},
    "safety": {
        "risk_windows": [
            {"after": "each_administration", "start_day": 0, "end_day": 7},
            {"after": "dose_step_up", "start_day": 0, "end_day": 7},
        ]
    },
    "follow_up_end_day": 112,
    "notes": [
        "Second cycle at a higher dose; exact doses were not reported.",
        "The interval between the cycles was not reported: cycle 2 on day 26 (two weeks after "
        "cycle 1 ends) is a placeholder to set from the treating team's plan.",
        "Daily smartwatch step counts are an outcome.",
    ],
}

BUILTIN_PROTOCOLS: dict[str, dict[str, Any]] = {
    "blinatumomab-nct06836973": BLINATUMOMAB_NCT06836973,
    "car-t-cd19-bcma-nct06371040": CAR_T_CD19_BCMA_NCT06371040,
    "hn2301": HN2301,
    "car-nk-nct07243366": CAR_NK_NCT07243366,
    "blinatumomab-case-report-2025": BLINATUMOMAB_CASE_REPORT,
}


def builtin_protocol(key: str) -> ProtocolDefinition:
    return ProtocolDefinition.model_validate(BUILTIN_PROTOCOLS[key])
