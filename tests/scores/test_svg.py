"""The trend picture (app.scores.svg; issue 4 item 5): valid SVG with the data points, the
baseline and improvement band, dosing days and visits marked, a legend, and no free text."""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET
from typing import Any

from app.scores.svg import Dosing, Marks, VisitMark, render_trend

NS = "{http://www.w3.org/2000/svg}"


def document(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "instrument": "mg_adl",
        "day0_date": "2026-01-05",
        "baseline_value": 8,
        "improvement_delta": 2,
        "points": [
            {"date": "2026-01-04", "value": 8, "source": "diary"},
            {"date": "2026-01-12", "value": 6, "source": "clinic"},
            {"date": "2026-02-02", "value": 4.5, "source": "diary"},
        ],
    }
    data.update(overrides)
    return data


MARKS = Marks(
    dosing=(
        Dosing(dt.date(2026, 1, 5), dt.date(2026, 1, 9), cycle=1),
        Dosing(dt.date(2026, 1, 17), dt.date(2026, 1, 21), cycle=2),
    ),
    visits=(
        VisitMark(dt.date(2026, 1, 5), 0, "completed"),
        VisitMark(dt.date(2026, 2, 3), 28, "completed"),
        VisitMark(dt.date(2026, 3, 2), 56, "missed"),
        VisitMark(dt.date(2026, 3, 30), 84, "scheduled"),
        VisitMark(dt.date(2026, 4, 27), 112, "scheduled"),
    ),
)


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)  # valid XML, or this raises
    assert root.tag == f"{NS}svg"
    return root


def test_points_baseline_band_and_legend() -> None:
    root = parse(render_trend(document()))
    circles = root.findall(f"{NS}circle")
    assert [(c.get("data-date"), c.get("data-value"), c.get("data-source")) for c in circles] == [
        ("2026-01-04", "8", "diary"),
        ("2026-01-12", "6", "clinic"),
        ("2026-02-02", "4.5", "diary"),
    ]
    xs = [float(c.get("cx", "")) for c in circles]
    assert xs == sorted(xs)
    ys = [float(c.get("cy", "")) for c in circles]
    assert ys[0] < ys[1] < ys[2]  # lower scores are drawn lower
    assert root.find(f"{NS}line[@class='baseline']") is not None
    assert root.find(f"{NS}rect[@class='improvement-band']") is not None
    kinds = [g.get("data-kind") for g in root.iter(f"{NS}g") if g.get("class") == "legend-item"]
    assert kinds == ["series", "improvement-band", "baseline", "day0"]
    assert root.findtext(f"{NS}title") == "MG-ADL trend"


def test_dosing_days_and_visits_are_marked() -> None:
    root = parse(render_trend(document(), MARKS))
    dosing = root.findall(f"{NS}line[@class='dosing']")
    assert [(d.get("data-date"), d.get("data-end-date")) for d in dosing] == [
        ("2026-01-05", "2026-01-09"),
        ("2026-01-17", "2026-01-21"),
    ]
    assert len(root.findall(f"{NS}rect[@class='dosing-span']")) == 2
    completed = root.findall(f"{NS}path[@class='visit-completed']")
    assert [(v.get("data-day"), v.get("data-date")) for v in completed] == [
        ("0", "2026-01-05"),
        ("28", "2026-02-03"),
    ]
    assert [v.get("data-day") for v in root.findall(f"{NS}path[@class='visit-missed']")] == ["56"]
    # Only the next scheduled visit after the data is drawn, not the whole schedule ahead.
    scheduled = root.findall(f"{NS}path[@class='visit-scheduled']")
    assert [v.get("data-day") for v in scheduled] == ["84"]
    kinds = [g.get("data-kind") for g in root.iter(f"{NS}g") if g.get("class") == "legend-item"]
    assert kinds == [
        "series",
        "improvement-band",
        "baseline",
        "dosing",
        "day0",
        "visit-completed",
        "visit-scheduled",
        "visit-missed",
    ]
    # Completed and scheduled visits look different.
    assert completed[0].get("fill") != scheduled[0].get("fill")
    # The marks fall inside the plot, in date order with the points.
    point_x = {c.get("data-date"): float(c.get("cx", "")) for c in root.findall(f"{NS}circle")}
    assert point_x["2026-01-04"] < float(dosing[0].get("x1", "")) < point_x["2026-01-12"]


def test_text_is_fixed_labels_dates_and_numbers_only() -> None:
    root = parse(render_trend(document(instrument="corticosteroid"), MARKS))
    texts = {t.text for t in root.iter(f"{NS}text")}
    allowed = {
        "Corticosteroid (prednisone-equivalent mg/day) trend",
        "Values",
        "Improvement band",
        "Baseline",
        "Study-drug dosing",
        "Day 0",
        "Visit completed",
        "Visit scheduled",
        "Visit missed",
    }
    for text in texts:
        assert text is not None
        assert text in allowed or text[:4].isdigit() or text.replace(".", "").isdigit(), text


def test_unknown_source_text_is_escaped() -> None:
    doc = document(points=[{"date": "2026-01-04", "value": 3, "source": '"><script>'}])
    root = parse(render_trend(doc))
    assert root.find(f"{NS}circle").get("data-source") == '"><script>'  # type: ignore[union-attr]
    assert root.find(f"{NS}script") is None


def test_no_points_says_so() -> None:
    root = parse(render_trend(document(points=[]), MARKS))
    assert root.findtext(f"{NS}text") == "No data yet"


def test_without_baseline_or_day0() -> None:
    root = parse(render_trend(document(baseline_value=None, day0_date=None)))
    assert root.find(f"{NS}line[@class='baseline']") is None
    assert root.find(f"{NS}line[@class='day0']") is None
    assert len(root.findall(f"{NS}circle")) == 3
