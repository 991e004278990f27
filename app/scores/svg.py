"""The trend picture (issue 4 item 5): a small, hand-built, dependency-free SVG.

Pure module (stdlib only): it renders a TREND document (``trend_service.participant_trend``)
and the participant's marks - study-drug administrations and clinic visits - that
``app.scores.picture`` reads. What it draws:

- the series (a line and one circle per value, with ``data-date`` / ``data-value`` /
  ``data-source``), the baseline (dashed) and the improvement band (baseline minus the
  protocol's improvement delta and below), day 0;
- each study-drug administration: a vertical dashed marker on its start day, and for an
  infusion lasting several days a light band over its days (``class="dosing"`` /
  ``"dosing-span"``);
- clinic visits along the top edge: completed ones (filled triangle on the day done),
  scheduled ones (hollow triangle on the target day) and missed ones (grey hollow triangle);
- a legend of what is shown, the instrument name and the first and last date.

No identifiers or free text: the only words are fixed labels and the instrument's name; study
drug product names, visit labels and reasons are not drawn. The x range spans the values,
administrations, completed and missed visits, and scheduled visits up to the next one after
them (the next appointment), so a long schedule ahead does not squeeze the data.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal
from xml.sax.saxutils import escape, quoteattr

VisitStatus = Literal["completed", "scheduled", "missed"]

W: Final = 720
H: Final = 380
LEFT: Final = 56
RIGHT: Final = W - 24
TOP: Final = 56
BOTTOM: Final = H - 100

INSTRUMENT_NAMES: Final[dict[str, str]] = {
    "mg_adl": "MG-ADL",
    "qmg": "QMG",
    "mgc": "MG Composite",
    "mg_qol15r": "MG-QoL15r",
    "mg_qol15": "MG-QoL15",
    "steps": "Daily steps (weekly mean)",
    "corticosteroid": "Corticosteroid (prednisone-equivalent mg/day)",
}

_SERIES = "#1a73e8"
_BASELINE = "#5f6368"
_BAND = "#e6f4ea"
_DAY0 = "#c5221f"
_DOSING = "#8e24aa"
_DOSING_SPAN = "#f3e5f5"
_VISIT = "#00796b"
_MISSED = "#9aa0a6"
_FONT = 'font-family="sans-serif"'


@dataclass(frozen=True, slots=True)
class Dosing:
    """A study-drug administration: its first and last participant-local day (inclusive)."""

    start: dt.date
    end: dt.date
    cycle: int | None = None

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError("a dosing's end is before its start")


@dataclass(frozen=True, slots=True)
class VisitMark:
    """A clinic visit: the day it was done (completed) or is due (scheduled, missed)."""

    date: dt.date
    day: int
    status: VisitStatus


@dataclass(frozen=True, slots=True)
class Marks:
    dosing: tuple[Dosing, ...] = ()
    visits: tuple[VisitMark, ...] = ()


def _svg_open(title: str) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
        f'viewBox="0 0 {W} {H}" role="img" aria-label={quoteattr(title)}>',
        f"<title>{escape(title)}</title>",
        f'<rect x="0" y="0" width="{W}" height="{H}" fill="white"/>',
    ]


def _visible_visits(visits: Sequence[VisitMark], end: dt.date | None) -> list[VisitMark]:
    """Completed and missed visits, scheduled ones up to ``end``, and the first scheduled one
    after ``end`` (the next appointment)."""
    shown = [v for v in visits if v.status != "scheduled" or (end is not None and v.date <= end)]
    later = sorted(
        (v for v in visits if v.status == "scheduled" and (end is None or v.date > end)),
        key=lambda v: v.date,
    )
    return shown + later[:1]


def _triangle(cx: float, cy: float) -> str:
    return f"M{cx - 6:.1f},{cy - 5:.1f} L{cx + 6:.1f},{cy - 5:.1f} L{cx:.1f},{cy + 5:.1f} Z"


def _visit_style(status: VisitStatus) -> str:
    if status == "completed":
        return f'fill="{_VISIT}" stroke="{_VISIT}"'
    if status == "scheduled":
        return f'fill="white" stroke="{_VISIT}" stroke-width="1.5"'
    return f'fill="white" stroke="{_MISSED}" stroke-width="1.5" stroke-dasharray="2 1"'


def render_trend(document: dict[str, Any], marks: Marks | None = None) -> str:
    """The SVG picture of a TREND document with the participant's dosing and visit marks."""
    marks = marks or Marks()
    points = [p for p in document["points"] if p["value"] is not None]
    name = INSTRUMENT_NAMES.get(document["instrument"], "Score")
    title = f"{name} trend"
    parts = _svg_open(title)
    if not points:
        parts.append(
            f'<text x="{W / 2}" y="{H / 2}" text-anchor="middle" {_FONT} '
            'font-size="14">No data yet</text></svg>'
        )
        return "".join(parts)

    dates = [dt.date.fromisoformat(p["date"]) for p in points]
    values = [float(p["value"]) for p in points]
    raw_baseline, raw_delta = document.get("baseline_value"), document.get("improvement_delta")
    baseline = float(raw_baseline) if raw_baseline is not None else None
    delta = float(raw_delta) if raw_delta else None
    raw_day0 = document.get("day0_date")
    day0 = dt.date.fromisoformat(raw_day0) if raw_day0 else None

    fixed = [
        *dates,
        *(d.start for d in marks.dosing),
        *(d.end for d in marks.dosing),
        *(v.date for v in marks.visits if v.status != "scheduled"),
    ]
    visits = _visible_visits(marks.visits, max(fixed))
    all_dates = fixed + [v.date for v in visits] + ([day0] if day0 else [])
    first, last = min(all_dates), max(all_dates)
    span = max((last - first).days, 1)

    lows = values + ([baseline - delta] if baseline is not None and delta else [])
    highs = values + ([baseline] if baseline is not None else [])
    lo, hi = min(0.0, min(lows)), max(highs) or 1.0

    def x(d: dt.date) -> float:
        return LEFT + (d - first).days / span * (RIGHT - LEFT)

    def y(v: float) -> float:
        return BOTTOM - (v - lo) / ((hi - lo) or 1.0) * (BOTTOM - TOP)

    legend: list[tuple[str, str]] = [("series", "Values")]
    if baseline is not None:
        if delta:
            top, bottom = y(baseline - delta), y(lo)
            parts.append(
                f'<rect class="improvement-band" x="{LEFT}" y="{top:.1f}" '
                f'width="{RIGHT - LEFT}" height="{max(bottom - top, 0):.1f}" fill="{_BAND}"/>'
            )
            legend.append(("improvement-band", "Improvement band"))
        parts.append(
            f'<line class="baseline" x1="{LEFT}" x2="{RIGHT}" y1="{y(baseline):.1f}" '
            f'y2="{y(baseline):.1f}" stroke="{_BASELINE}" stroke-dasharray="4 3"/>'
        )
        legend.append(("baseline", "Baseline"))
    # Axes.
    parts.append(
        f'<path class="axes" d="M{LEFT},{TOP} L{LEFT},{BOTTOM} L{RIGHT},{BOTTOM}" '
        'fill="none" stroke="#dadce0"/>'
    )
    for dosing in marks.dosing:
        if dosing.end > dosing.start:
            parts.append(
                f'<rect class="dosing-span" x="{x(dosing.start):.1f}" y="{TOP}" '
                f'width="{x(dosing.end) - x(dosing.start):.1f}" height="{BOTTOM - TOP}" '
                f'fill="{_DOSING_SPAN}" fill-opacity="0.7"/>'
            )
    for dosing in marks.dosing:
        label = "Study-drug administration" + (
            f" (cycle {dosing.cycle})" if dosing.cycle is not None else ""
        )
        xd = x(dosing.start)
        parts.append(
            f'<line class="dosing" x1="{xd:.1f}" x2="{xd:.1f}" y1="{TOP}" y2="{BOTTOM}" '
            f'stroke="{_DOSING}" stroke-width="1.5" stroke-dasharray="6 3" '
            f'data-date="{dosing.start.isoformat()}" data-end-date="{dosing.end.isoformat()}">'
            f"<title>{escape(label)} {dosing.start.isoformat()}</title></line>"
        )
    if marks.dosing:
        legend.append(("dosing", "Study-drug dosing"))
    if day0 is not None:
        x0 = x(day0)
        parts.append(
            f'<line class="day0" x1="{x0:.1f}" x2="{x0:.1f}" y1="{TOP}" y2="{BOTTOM}" '
            f'stroke="{_DAY0}"/>'
        )
        legend.append(("day0", "Day 0"))
    path = " ".join(f"{x(d):.1f},{y(v):.1f}" for d, v in zip(dates, values, strict=True))
    parts.append(
        f'<polyline class="series" points="{path}" fill="none" stroke="{_SERIES}" '
        'stroke-width="2"/>'
    )
    for p, d, v in zip(points, dates, values, strict=True):
        parts.append(
            f'<circle class="point" cx="{x(d):.1f}" cy="{y(v):.1f}" r="3" '
            f'fill="{_SERIES}" data-date="{d.isoformat()}" data-value="{v:g}" '
            f"data-source={quoteattr(str(p['source']))}/>"
        )
    for status in ("completed", "scheduled", "missed"):
        shown = [v for v in visits if v.status == status]
        for visit in shown:
            parts.append(
                f'<path class="visit-{status}" d="{_triangle(x(visit.date), TOP - 10)}" '
                f'{_visit_style(visit.status)} data-date="{visit.date.isoformat()}" '
                f'data-day="{visit.day}"><title>Clinic visit, day {visit.day} ({status}) '
                f"{visit.date.isoformat()}</title></path>"
            )
        if shown:
            legend.append((f"visit-{status}", f"Visit {status}"))

    # Text: title, y range, first and last date.
    parts.append(
        f'<text x="{LEFT}" y="24" {_FONT} font-size="14" font-weight="bold">{escape(title)}</text>'
    )
    for value in sorted({lo, hi}):
        parts.append(
            f'<text class="y-label" x="{LEFT - 6}" y="{y(value) + 4:.1f}" text-anchor="end" '
            f'{_FONT} font-size="11">{value:g}</text>'
        )
    parts.append(
        f'<text x="{LEFT}" y="{BOTTOM + 18}" {_FONT} font-size="11">{first.isoformat()}</text>'
    )
    parts.append(
        f'<text x="{RIGHT}" y="{BOTTOM + 18}" text-anchor="end" {_FONT} '
        f'font-size="11">{last.isoformat()}</text>'
    )
    parts.append(_legend(legend))
    parts.append("</svg>")
    return "".join(parts)


def _swatch(kind: str, x: float, y: float) -> str:
    """A 16 x 10 legend symbol drawn like the mark it explains."""
    mid = y + 5
    if kind == "series":
        return (
            f'<line x1="{x}" x2="{x + 16}" y1="{mid}" y2="{mid}" stroke="{_SERIES}" '
            f'stroke-width="2"/><circle cx="{x + 8}" cy="{mid}" r="3" fill="{_SERIES}"/>'
        )
    if kind == "improvement-band":
        return f'<rect x="{x}" y="{y}" width="16" height="10" fill="{_BAND}" stroke="#b7dfc2"/>'
    if kind == "baseline":
        return (
            f'<line x1="{x}" x2="{x + 16}" y1="{mid}" y2="{mid}" stroke="{_BASELINE}" '
            'stroke-dasharray="4 3"/>'
        )
    if kind == "dosing":
        return (
            f'<rect x="{x}" y="{y}" width="16" height="10" fill="{_DOSING_SPAN}"/>'
            f'<line x1="{x + 3}" x2="{x + 3}" y1="{y - 2}" y2="{y + 12}" stroke="{_DOSING}" '
            'stroke-width="1.5" stroke-dasharray="6 3"/>'
        )
    if kind == "day0":
        return f'<line x1="{x + 8}" x2="{x + 8}" y1="{y - 2}" y2="{y + 12}" stroke="{_DAY0}"/>'
    status: VisitStatus = "completed"
    if kind == "visit-scheduled":
        status = "scheduled"
    elif kind == "visit-missed":
        status = "missed"
    return f'<path d="{_triangle(x + 8, mid)}" {_visit_style(status)}/>'


def _legend(items: list[tuple[str, str]]) -> str:
    """The legend below the plot: symbol and label per item, wrapped onto a second row."""
    parts = ['<g class="legend">']
    x, y = float(LEFT), float(BOTTOM + 36)
    for kind, label in items:
        width = 16 + 6 + 6.2 * len(label) + 18
        if x + width > RIGHT and x > LEFT:
            x, y = float(LEFT), y + 20
        parts.append(
            f'<g class="legend-item" data-kind="{kind}">{_swatch(kind, x, y)}'
            f'<text x="{x + 22:.1f}" y="{y + 9}" {_FONT} font-size="11">{escape(label)}</text>'
            "</g>"
        )
        x += width
    parts.append("</g>")
    return "".join(parts)
