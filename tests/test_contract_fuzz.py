"""Contract fuzzing (checklist H47): Schemathesis against both committed OpenAPI documents.

In-process (ASGI), on the test database with every request inside the test's rolled-back
transaction (tests/conftest.py). The app document is called with a participant's token, the
portal document with a study admin's; path parameters sometimes name the test's real study,
participant, visit, staff user and membership, otherwise whatever Schemathesis generates (which
must answer 404/422 cleanly). Positive and negative examples, Schemathesis's coverage phase and
its stateful links (inferred from the schemas; the documents declare none).

Every response must conform to its operation's documentation (status code, content type, body,
headers), never be a 5xx, and every error must be problem+json (RFC 9457).

Bounded for CI: ``MGDIARY_FUZZ_EXAMPLES`` examples per operation (default 10; ``make fuzz``
runs many more), derandomized and without the Hypothesis example database, so a run is
reproducible.
"""

from __future__ import annotations

import json
import os
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis import Case, CheckContext, GenerationMode, Response
from schemathesis.core.failures import AcceptedNegativeData, FailureGroup
from schemathesis.python import asgi
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session, select

from app.auth import service as auth_service
from app.core.config import get_settings
from app.main import create_app
from app.openapi import OPENAPI_DIR
from app.visits.models import Visit
from tests.conftest import override_sessions
from tests.factories import (
    TEST_ACTOR,
    create_participant,
    create_study,
    participant_token,
    staff_token,
)

MAX_EXAMPLES = int(os.environ.get("MGDIARY_FUZZ_EXAMPLES", "10"))
STATEFUL_STEPS = int(os.environ.get("MGDIARY_FUZZ_STEPS", "10"))
#: Schemathesis's coverage phase (boundary values and each constraint broken in turn, a few
#: hundred requests per large body whatever MAX_EXAMPLES says): `make fuzz` turns it on.
COVERAGE = os.environ.get("MGDIARY_FUZZ_COVERAGE", "0") == "1"

CONFIG = schemathesis.Config.from_dict(
    {
        "generation": {
            "mode": "all",  # positive and negative examples
            "max-examples": MAX_EXAMPLES,
            "deterministic": True,
            "database": "none",
            # Each call carries the test's real token; Schemathesis still probes the operations
            # without and with a wrong one (`ignored_auth`).
            "with-security-parameters": False,
        },
        "checks": {
            # Schema-valid requests may still break rules JSON Schema cannot state (a date range
            # backwards, an unknown IANA time zone, a foreign cursor, a protocol's visits out of
            # order): 400/422 are allowed here, and `rules_not_schema` below fails any such
            # refusal that a schema constraint could have declared.
            "positive_data_acceptance": {
                "expected-statuses": ["2xx", "400", "401", "403", "404", "409", "422", "429"],
            },
        },
        "phases": {
            "coverage": {"enabled": COVERAGE},
            "stateful": {"max-steps": STATEFUL_STEPS},
        },
    }
)

#: Problem codes for a rule beyond the request's shape (app/core/errors.py).
RULE_CODES = {"unprocessable", "invalid_cursor", "conflict"}
#: Validation error types a schema-valid value can still earn: a model's own rule (``value_error``),
#: a string that is empty once surrounding whitespace is stripped (RequestModel strips it), or
#: an integral float such as ``4.0`` for a strict integer (JSON Schema counts it as an integer;
#: the app deliberately wants ``4``).
RULE_ERROR_TYPES = {"value_error", "assertion_error", "string_too_short", "int_type"}


def per_kind_payload(case: Case, loc: list[Any]) -> bool:
    """A diary entry's ``data`` is documented as a free object validated per ``kind``
    (``EntryIn``: "the OpenAPI shape; validation is per kind"): its errors are rules."""
    return "/diary/" in case.operation.path and "data" in loc


@schemathesis.check
def rules_not_schema(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """A schema-valid request refused with a validation error must have broken a rule the
    schema cannot state, never a type or constraint the OpenAPI document should declare."""
    if case.meta is None or case.meta.generation.mode != GenerationMode.POSITIVE:
        return None
    if response.status_code not in (400, 422):
        return None
    problem = response.json()
    code = problem.get("code")
    if code in RULE_CODES:
        return None
    assert code == "validation_failed", f"schema-valid request refused with {code!r}"
    undeclared = [
        e
        for e in problem.get("errors") or []
        if e.get("type") not in RULE_ERROR_TYPES and not per_kind_payload(case, e.get("loc") or [])
    ]
    assert not undeclared, f"the schema does not declare these constraints: {undeclared}"
    return True


@schemathesis.check
def errors_are_problem_json(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """Every error is an RFC 9457 problem document whose ``status`` is the response's."""
    if response.status_code < 400:
        return None
    content_type = response.headers.get("content-type", [""])[0]
    assert content_type.startswith("application/problem+json"), (
        f"{response.status_code} answered as {content_type!r}, not application/problem+json"
    )
    problem = response.json()
    assert problem.get("status") == response.status_code, problem
    for member in ("type", "title", "code"):
        assert problem.get(member), problem
    return True


def empty_query_value(case: Case, failure: AcceptedNegativeData) -> bool:
    """Negations that never reach the app: a query value Schemathesis breaks by type (``null``,
    ``{}``) goes on the wire as an empty, schema-valid string (``?cursor=``), and a removed
    ``Authorization`` header is put back by the test (every call carries its token)."""
    lines = failure.message.split("Invalid component:", 1)[-1].strip().splitlines()
    items = [line.strip().removeprefix("- ") for line in lines if line.strip().startswith("- ")]
    if not items:
        return False
    query = case.query or {}
    for item in items:
        if item.startswith("header:") and "Authorization" in item:
            continue
        match = re.fullmatch(r"query: violates `\w+` at /properties/(?P<name>\w+)", item)
        value = query.get(match.group("name")) if match else ""
        # An object or array has no query-string form: it goes out empty (or not at all).
        if match is None or not (value is None or value == "" or isinstance(value, dict | list)):
            return False
    return True


def known_leniency(case: Case, failures: FailureGroup) -> bool:
    """Accepted "invalid" requests that are not: negations that never reach the app."""
    for failure in failures.exceptions:
        if not isinstance(failure, AcceptedNegativeData):
            return False
        if not empty_query_value(case, failure):
            return False
    return True


def call_and_validate(case: Case, headers: dict[str, str]) -> None:
    try:
        case.call_and_validate(headers=headers)
    except FailureGroup as failures:
        if not known_leniency(case, failures):
            raise


class AppProxy:
    """The ASGI app the schemas call: the module's fuzz app, bound by the ``fuzz_app`` fixture
    (the schemas are built at import, before any fixture, and keep the app they were given)."""

    def __init__(self) -> None:
        self.target: FastAPI | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        assert self.target is not None, "the fuzz_app fixture binds the app"
        await self.target(scope, receive, send)


PROXY = AppProxy()


def load(name: str) -> Any:
    schema = schemathesis.openapi.from_dict(
        json.loads((OPENAPI_DIR / name).read_text()), config=CONFIG
    )
    schema.app = PROXY
    return schema


APP_SCHEMA = load("app.v1.json")
PORTAL_SCHEMA = load("portal.v1.json")


@dataclass
class World:
    """The test's rows that path parameters may name, and the tokens to call with."""

    participant_headers: dict[str, str]
    staff_headers: dict[str, str]
    ids: dict[str, str] = field(default_factory=dict)

    def name_real_objects(self, case: Case) -> None:
        """Half of the positive cases (chosen by their generated values, so reproducibly) get
        the ids of real rows in their path; the others keep the generated (unknown) ids."""
        params = case.path_parameters
        if not params or case.meta is None or case.meta.generation.mode != GenerationMode.POSITIVE:
            return
        known = {name: self.ids[name] for name in params if name in self.ids}
        if known and zlib.crc32(repr(sorted(params.items())).encode()) % 2 == 0:
            params.update(known)


@pytest.fixture(scope="module")
def fuzz_app(engine: Engine) -> Iterator[FastAPI]:
    app = create_app(get_settings(), engine=engine)
    PROXY.target = app
    yield app
    asgi.shutdown_lifespans()  # the lifespan Schemathesis started on the first request
    PROXY.target = None


@pytest.fixture
def world(fuzz_app: FastAPI, connection: Connection, session: Session) -> Iterator[World]:
    override_sessions(fuzz_app, connection, session)
    fuzz_app.state.auth_limiter.reset()
    study, sites = create_study(session)
    participant, _ = create_participant(session, study=study, site=sites["X"])
    admin = staff_token(session, role="admin", study=study, subject="fuzz-admin")
    user = auth_service.get_or_create_staff_user(session, subject="fuzz-admin", actor=TEST_ACTOR)
    membership = auth_service.active_memberships(session, staff_user_id=user.id)[0]
    visit = session.exec(select(Visit).where(Visit.participant_id == participant.id)).first()
    ids = {
        "study_id": study.id,
        "participant_id": participant.id,
        "staff_user_id": user.id,
        "membership_id": membership.id,
        **({"visit_id": visit.id} if visit is not None else {}),
    }
    yield World(
        participant_headers={"Authorization": f"Bearer {participant_token(participant)}"},
        staff_headers={"Authorization": f"Bearer {admin}"},
        ids={name: str(value) for name, value in ids.items()},
    )
    fuzz_app.dependency_overrides.clear()


# Hypothesis refuses function-scoped fixtures by default since they are not reset between
# examples: here that is the point (all examples of an operation share one test transaction).
ONE_TRANSACTION_PER_OPERATION = settings(
    suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@APP_SCHEMA.parametrize()
@ONE_TRANSACTION_PER_OPERATION
def test_app_api(case: Case, world: World) -> None:
    world.name_real_objects(case)
    call_and_validate(case, world.participant_headers)


@PORTAL_SCHEMA.parametrize()
@ONE_TRANSACTION_PER_OPERATION
def test_portal_api(case: Case, world: World) -> None:
    world.name_real_objects(case)
    call_and_validate(case, world.staff_headers)


def stateful_settings() -> settings:
    return settings(
        max_examples=max(2, MAX_EXAMPLES // 2),
        stateful_step_count=STATEFUL_STEPS,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )


def run_links(schema: Any, headers: dict[str, str]) -> None:
    """Schemathesis's stateful phase: sequences of calls along the links it infers (an id from
    one response into the next request's path), every response validated as above."""

    class Links(schema.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: Case) -> dict[str, Any]:
            return {"headers": headers}

        def validate_response(
            self, response: Response, case: Case, additional_checks: Any = None, **kwargs: Any
        ) -> None:
            try:
                super().validate_response(response, case, additional_checks, **kwargs)
            except FailureGroup as failures:
                if not known_leniency(case, failures):
                    raise

    Links.run(settings=stateful_settings())


def test_app_api_links(world: World) -> None:
    run_links(APP_SCHEMA, world.participant_headers)


def test_portal_api_links(world: World) -> None:
    run_links(PORTAL_SCHEMA, world.staff_headers)


def test_405_allow_names_every_method_of_the_path(client: Any) -> None:
    """Found by the fuzzing: FastAPI has one route per method, and Starlette's 405 named only
    the first route's methods in ``Allow`` (RFC 9110 15.5.6: all of the resource's)."""
    response = client.delete("/portal/v1/participants/00000000-0000-0000-0000-000000000000/labs")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"
    assert response.headers["content-type"].startswith("application/problem+json")
