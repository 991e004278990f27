"""Settings: production refuses unsafe values; lists parse from the environment (checklist 49)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy.engine import Engine

from app import cli
from app.core.config import DEFAULT_JWT_SECRET, DEFAULT_RETRY_SCHEDULE, Settings, get_settings
from app.main import create_app
from tests.conftest import TEST_DATABASE_URL
from tests.problem_helpers import assert_problem

GOOD_SECRET = "a-production-secret-of-forty-characters!!"
PG_URL = "postgresql+psycopg://mgdiary@db.internal:5432/mgdiary"


def production(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "env": "production",
        "jwt_secret": GOOD_SECRET,
        "database_url": PG_URL,
        "webhook_allow_private_targets": False,
        "jwt_previous_secrets": [],
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_good_production_config_is_accepted() -> None:
    settings = production(jwt_previous_secrets=[f"old-1:{'x' * 40}"])
    assert settings.env == "production"
    assert not settings.show_docs


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"jwt_secret": DEFAULT_JWT_SECRET}, "MGDIARY_JWT_SECRET is the development default"),
        ({"jwt_secret": "too-short-0123456789"}, "shorter than 32 characters"),
        (
            {"jwt_previous_secrets": ["old:short"]},
            "MGDIARY_JWT_PREVIOUS_SECRETS entry is too short",
        ),
        ({"database_url": "sqlite:////srv/mgdiary.sqlite3"}, "MGDIARY_ALLOW_SQLITE_IN_PRODUCTION"),
        (
            {"webhook_allow_private_targets": True},
            "MGDIARY_WEBHOOK_ALLOW_PRIVATE_TARGETS must be false",
        ),
    ],
    ids=["default-secret", "short-secret", "short-previous", "sqlite", "private-webhooks"],
)
def test_production_refuses_unsafe_settings(overrides: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValidationError) as excinfo:
        production(**overrides)
    assert "refusing to start in production" in str(excinfo.value)
    assert problem in str(excinfo.value)


def test_production_lists_every_problem_at_once() -> None:
    with pytest.raises(ValidationError) as excinfo:
        production(
            jwt_secret=DEFAULT_JWT_SECRET[:20],
            database_url="sqlite:////srv/x.sqlite3",
            webhook_allow_private_targets=True,
        )
    message = str(excinfo.value)
    assert "shorter than 32" in message
    assert "SQLITE" in message
    assert "PRIVATE_TARGETS" in message


def test_sqlite_in_production_needs_the_explicit_flag() -> None:
    settings = production(database_url="sqlite:////srv/x.sqlite3", allow_sqlite_in_production=True)
    assert settings.is_sqlite


def test_development_accepts_the_defaults() -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, env="development", jwt_secret=DEFAULT_JWT_SECRET, database_url=PG_URL
    )
    assert settings.show_docs
    assert settings.webhook_retry_schedule == DEFAULT_RETRY_SCHEDULE


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("MGDIARY_WEBHOOK_RETRY_SCHEDULE", "MGDIARY_JWT_PREVIOUS_SECRETS"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.mark.parametrize(
    ("raw", "parsed"),
    [("0,5,300", (0, 5, 300)), (" 0 , 5 ,300 ", (0, 5, 300)), ("60", (60,))],
)
def test_retry_schedule_parses_from_the_environment(
    clean_env: pytest.MonkeyPatch, raw: str, parsed: tuple[int, ...]
) -> None:
    clean_env.setenv("MGDIARY_WEBHOOK_RETRY_SCHEDULE", raw)
    assert Settings(_env_file=None).webhook_retry_schedule == parsed  # type: ignore[call-arg]


@pytest.mark.parametrize("raw", ["0,-5,300", "-1", "", "0,five", "1.5"])
def test_bad_retry_schedule_is_refused(clean_env: pytest.MonkeyPatch, raw: str) -> None:
    clean_env.setenv("MGDIARY_WEBHOOK_RETRY_SCHEDULE", raw)
    with pytest.raises(ValidationError) as excinfo:
        Settings(_env_file=None)  # type: ignore[call-arg]
    assert "webhook_retry_schedule" in str(excinfo.value)


def test_previous_secrets_parse_as_kid_secret_pairs(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("MGDIARY_JWT_PREVIOUS_SECRETS", "k1:first-secret, k2:second:with:colons")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.jwt_previous_secrets == ["k1:first-secret", "k2:second:with:colons"]


@pytest.mark.parametrize("raw", ["just-a-secret", ":no-kid", "kid-only:", "k1:ok,broken"])
def test_previous_secrets_without_a_kid_are_refused(
    clean_env: pytest.MonkeyPatch, raw: str
) -> None:
    clean_env.setenv("MGDIARY_JWT_PREVIOUS_SECRETS", raw)
    with pytest.raises(ValidationError) as excinfo:
        Settings(_env_file=None)  # type: ignore[call-arg]
    assert "kid:secret" in str(excinfo.value)


@pytest.fixture
def production_client(engine: Engine) -> Iterator[TestClient]:
    settings = production(database_url=TEST_DATABASE_URL, allow_sqlite_in_production=True)
    with TestClient(create_app(settings, engine=engine), raise_server_exceptions=False) as client:
        yield client


@pytest.mark.parametrize("path", ["/docs", "/openapi.json", "/redoc", "/docs/oauth2-redirect"])
def test_production_hides_the_api_docs(production_client: TestClient, path: str) -> None:
    assert_problem(production_client.get(path), 404, "not_found")


def test_production_app_still_serves(production_client: TestClient) -> None:
    assert production_client.get("/healthz").status_code == 200
    assert_problem(production_client.get("/app/v1/me"), 401)


def test_production_sends_no_cors_headers_without_an_allow_list(
    production_client: TestClient,
) -> None:
    response = production_client.get("/healthz", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in response.headers


def test_development_serves_the_api_docs(client: TestClient) -> None:
    assert client.get("/openapi.json").status_code == 200
    assert client.get("/docs").status_code == 200


@pytest.fixture
def bad_production_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    get_settings.cache_clear()
    with monkeypatch.context() as patch:
        patch.setenv("MGDIARY_ENV", "production")
        patch.setenv("MGDIARY_DATABASE_URL", PG_URL)
        patch.setenv("MGDIARY_JWT_SECRET", "short")
        yield patch
    get_settings.cache_clear()
    assert get_settings().env == "development"


def test_cli_exits_2_with_a_clear_message_on_bad_production_settings(
    bad_production_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = "this-one-is-long-enough-and-secret-0123456789"
    bad_production_env.setenv("MGDIARY_JWT_SECRET", secret)
    bad_production_env.setenv("MGDIARY_DATABASE_URL", "sqlite:////srv/mgdiary.sqlite3")
    bad_production_env.delenv("MGDIARY_INPROCESS_WORKER", raising=False)
    assert cli.main(["migrate"]) == 2
    err = capsys.readouterr().err
    assert "refusing to start in production" in err
    assert "MGDIARY_ALLOW_SQLITE_IN_PRODUCTION" in err
    # The message must not copy settings values (the secret) into logs.
    assert secret[-10:] not in err
    assert "input_value" not in err
    assert "Traceback" not in err


def test_cli_names_the_bad_setting(
    bad_production_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bad_production_env.setenv("MGDIARY_ENV", "development")
    bad_production_env.setenv("MGDIARY_WEBHOOK_RETRY_SCHEDULE", "0,-5")
    assert cli.main(["token", "--role", "admin"]) == 2
    err = capsys.readouterr().err
    assert "MGDIARY_WEBHOOK_RETRY_SCHEDULE" in err
    assert "non-negative" in err


def test_an_sqlite_too_old_for_the_statements_is_refused_at_startup() -> None:
    """``WITH ... AS MATERIALIZED`` (the safety reads) needs SQLite 3.35: an older one stops the
    app before it serves, naming both versions, instead of failing writes later."""
    from app.core.db import SQLITE_MIN_VERSION, check_sqlite_version

    check_sqlite_version(SQLITE_MIN_VERSION)
    check_sqlite_version((3, 45, 1))
    with pytest.raises(RuntimeError, match=r"SQLite 3\.34\.1 is too old: mgdiary needs 3\.35\.0"):
        check_sqlite_version((3, 34, 1))
