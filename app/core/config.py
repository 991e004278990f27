"""Service settings: environment variables prefixed ``MGDIARY_`` (and a ``.env`` file).

Every setting is listed with its default in the README's settings table; keep the two in step.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

#: The development secret. Anything that starts the service in production with it is refused.
DEFAULT_JWT_SECRET = "mgdiary-development-secret-change-me-0123456789"  # noqa: S105
MIN_PRODUCTION_SECRET_LENGTH = 32
DEFAULT_RETRY_SCHEDULE = (0, 5, 300, 1800, 7200, 18000, 36000, 36000)


def default_database_url() -> str:
    return f"sqlite:///{(Path.cwd() / 'var' / 'mgdiary.sqlite3').resolve()}"


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="MGDIARY_", env_file=".env", extra="ignore", frozen=True
    )

    env: Literal["development", "production"] = "development"
    database_url: str = Field(default_factory=default_database_url)
    allow_sqlite_in_production: bool = False
    database_pool_size: int = Field(default=20, ge=1, le=200)
    database_statement_timeout_ms: int = Field(default=15_000, ge=0)
    #: SQLite: how often a background thread checkpoints the write-ahead log into the database
    #: file (the capture connection then never checkpoints inside a commit, on the event loop).
    sqlite_checkpoint_interval_seconds: float = Field(default=1.0, gt=0, le=60)

    # Tokens we issue ourselves (HS256).
    jwt_secret: str = DEFAULT_JWT_SECRET
    jwt_kid: str = "mgdiary-hs256-1"
    #: Earlier secrets still accepted during a rotation overlap: ``kid:secret,kid:secret``.
    jwt_previous_secrets: Annotated[list[str], NoDecode] = Field(default_factory=list)
    jwt_issuer: str = "mgdiary"
    #: Staff tokens from a site's identity provider: its issuer and its public keys
    #: (a PEM file, or a JWKS JSON file with ``kid`` on each key).
    idp_issuer: str | None = None
    idp_keys_file: Path | None = None
    jwt_leeway_seconds: int = Field(default=30, ge=0, le=30)
    access_token_ttl_seconds: int = Field(default=900, ge=60, le=86_400)
    refresh_token_ttl_seconds: int = Field(default=30 * 86_400, ge=3600)
    portal_token_default_ttl_seconds: int = Field(default=8 * 3600, ge=60)

    activation_code_ttl_days: int = Field(default=7, ge=1, le=60)
    activation_rate_limit: int = Field(default=10, ge=1)
    activation_rate_window_seconds: int = Field(default=300, ge=1)

    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    max_authorization_header_bytes: int = Field(default=8192, ge=512)
    docs_enabled: bool | None = None
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)

    webhook_allow_private_targets: bool = False
    webhook_retry_schedule: Annotated[tuple[int, ...], NoDecode] = DEFAULT_RETRY_SCHEDULE
    #: Each retry waits its scheduled delay times a random factor in [1 - jitter, 1 + jitter].
    webhook_retry_jitter: float = Field(default=0.2, ge=0, le=0.5)
    #: The whole attempt (connect, send, read the response) ends after this many seconds.
    webhook_timeout_seconds: float = Field(default=10.0, gt=0, le=30)
    #: A claimed delivery is the claimer's for this long; after it, another worker may retry.
    webhook_lease_seconds: int = Field(default=60, ge=5, le=3600)
    #: After a secret rotation the previous secret also signs for this long.
    webhook_secret_overlap_seconds: int = Field(default=86_400, ge=0, le=30 * 86_400)
    #: An endpoint whose attempts have all failed for this long is disabled, with an alert.
    webhook_disable_after_seconds: int = Field(default=5 * 86_400, ge=1)
    #: How often the idle delivery loop looks for due deliveries (it loops at once while busy).
    webhook_poll_seconds: float = Field(default=0.5, gt=0, le=60)
    webhook_batch_size: int = Field(default=20, ge=1, le=500)
    #: Bearer token for ``GET /metrics``; unset, the metrics route answers 404.
    metrics_token: str | None = Field(default=None, min_length=16)
    #: Participants whose outcome summaries each API process keeps between requests
    #: (app/scores/outcome_summaries.py; about 10 KB each); 0 recomputes them every request.
    outcomes_cache_participants: int = Field(default=20_000, ge=0, le=1_000_000)
    inprocess_worker: bool = True
    worker_poll_seconds: float = Field(default=2.0, gt=0)

    @field_validator("jwt_previous_secrets", "cors_origins", mode="before")
    @classmethod
    def _csv_list(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("webhook_retry_schedule", mode="before")
    @classmethod
    def _schedule(cls, value: object) -> object:
        value = _split_csv(value)
        if isinstance(value, list):
            return tuple(int(v) for v in value)
        return value

    @field_validator("webhook_retry_schedule")
    @classmethod
    def _schedule_non_negative(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value or any(v < 0 for v in value):
            raise ValueError("must be a non-empty list of non-negative seconds")
        return value

    @model_validator(mode="after")
    def _lease_outlasts_timeout(self) -> Settings:
        if self.webhook_lease_seconds <= self.webhook_timeout_seconds:
            raise ValueError("MGDIARY_WEBHOOK_LEASE_SECONDS must exceed the webhook timeout")
        return self

    @field_validator("jwt_previous_secrets")
    @classmethod
    def _previous_secrets(cls, value: list[str]) -> list[str]:
        for item in value:
            kid, sep, secret = item.partition(":")
            if not sep or not kid or not secret:
                raise ValueError("each previous secret must be written as kid:secret")
        return value

    @model_validator(mode="after")
    def _production_guard(self) -> Settings:
        if self.env != "production":
            return self
        problems: list[str] = []
        if self.jwt_secret == DEFAULT_JWT_SECRET:
            problems.append("MGDIARY_JWT_SECRET is the development default")
        if len(self.jwt_secret) < MIN_PRODUCTION_SECRET_LENGTH:
            problems.append(
                f"MGDIARY_JWT_SECRET is shorter than {MIN_PRODUCTION_SECRET_LENGTH} characters"
            )
        for item in self.jwt_previous_secrets:
            if len(item.partition(":")[2]) < MIN_PRODUCTION_SECRET_LENGTH:
                problems.append("a MGDIARY_JWT_PREVIOUS_SECRETS entry is too short")
        if self.is_sqlite and not self.allow_sqlite_in_production:
            problems.append("SQLite in production needs MGDIARY_ALLOW_SQLITE_IN_PRODUCTION=true")
        if self.webhook_allow_private_targets:
            problems.append("MGDIARY_WEBHOOK_ALLOW_PRIVATE_TARGETS must be false in production")
        if problems:
            raise ValueError("refusing to start in production: " + "; ".join(problems))
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def show_docs(self) -> bool:
        return self.docs_enabled if self.docs_enabled is not None else self.env == "development"


@lru_cache
def get_settings() -> Settings:
    return Settings()
