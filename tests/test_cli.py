"""The `mgdiary` command: a new user's first steps (api-contract.md, "Identity")."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app import cli
from app.core.config import get_settings
from app.main import create_app
from tests.factories import bearer


@pytest.fixture
def scratch_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[str]:
    """Point the settings at a scratch SQLite file; restore the suite's settings afterwards."""
    url = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    get_settings.cache_clear()
    with monkeypatch.context() as patch:
        patch.setenv("MGDIARY_DATABASE_URL", url)
        yield url
        get_settings.cache_clear()
    get_settings.cache_clear()
    assert get_settings().database_url != url


def _demo(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    assert cli.main(["demo", "--json"]) == 0
    out = capsys.readouterr().out
    summary: dict[str, Any] = json.loads(out)
    return summary


def test_demo_is_idempotent(scratch_env: str, capsys: pytest.CaptureFixture[str]) -> None:
    first = _demo(capsys)
    second = _demo(capsys)

    assert first["study_id"] == second["study_id"]
    uuid.UUID(first["study_id"])
    assert first["sites"] == second["sites"]
    assert set(first["sites"]) == {"SITE-01", "SITE-02"}
    for summary in (first, second):
        assert len(summary["staff"]) == 4
        assert {s["role"] for s in summary["staff"]} == {"admin", "investigator", "monitor"}
        assert len(summary["participants"]) == 3
        assert all(s["token"].count(".") == 2 for s in summary["staff"])
        assert all(p["token"].count(".") == 2 for p in summary["participants"])
    # Same people the second time, not new ones.
    assert [p["id"] for p in first["participants"]] == [p["id"] for p in second["participants"]]
    assert [p["subject_code"] for p in first["participants"]] == [
        "DEMO-001",
        "DEMO-002",
        "DEMO-003",
    ]


def test_demo_tokens_work_against_the_api(
    scratch_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    summary = _demo(capsys)
    investigator = next(s for s in summary["staff"] if s["site"] == "SITE-01")
    participant = summary["participants"][0]
    app = create_app(get_settings())
    try:
        with TestClient(app) as client:
            study_url = f"/portal/v1/studies/{summary['study_id']}"
            assert client.get(study_url, headers=bearer(investigator["token"])).status_code == 200
            rows = client.get(f"{study_url}/participants", headers=bearer(investigator["token"]))
            assert rows.status_code == 200, rows.text
            # The site-01 investigator sees the two site-01 participants only.
            assert {r["subject_code"] for r in rows.json()["items"]} == {"DEMO-001", "DEMO-002"}
            me = client.get("/app/v1/me", headers=bearer(participant["token"]))
            assert me.status_code == 200, me.text
            assert me.json()["id"] == participant["id"]
    finally:
        app.state.engine.dispose()


def test_token_prints_a_token_the_app_accepts(
    scratch_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    summary = _demo(capsys)
    study_id, site_id = summary["study_id"], summary["sites"]["SITE-02"]
    argv = ["token", "--role", "investigator", "--study", study_id, "--site", site_id]
    assert cli.main([*argv, "--subject", "dr-new"]) == 0
    token = capsys.readouterr().out.strip()
    assert token.count(".") == 2
    assert "\n" not in token

    app = create_app(get_settings())
    try:
        with TestClient(app) as client:
            response = client.get(f"/portal/v1/studies/{study_id}", headers=bearer(token))
            assert response.status_code == 200, response.text
            assert response.json()["id"] == study_id
            rows = client.get(f"/portal/v1/studies/{study_id}/participants", headers=bearer(token))
            assert {r["subject_code"] for r in rows.json()["items"]} == {"DEMO-003"}
            other = client.get(f"/portal/v1/studies/{uuid.uuid4()}", headers=bearer(token))
            assert other.status_code == 404
    finally:
        app.state.engine.dispose()


def test_token_for_investigator_needs_a_study(
    scratch_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as excinfo:
        cli.main(["token", "--role", "investigator"])
    assert excinfo.value.code != 0
    assert "--study" in str(excinfo.value.code)
    assert capsys.readouterr().out == ""


def test_token_for_an_unknown_study_is_refused(
    scratch_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as excinfo:
        cli.main(["token", "--role", "monitor", "--study", str(uuid.uuid4())])
    assert "no study" in str(excinfo.value.code)
    assert capsys.readouterr().out == ""


def test_token_rejects_an_unknown_role(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as excinfo:
        cli.main(["token", "--role", "participant"])
    assert excinfo.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
