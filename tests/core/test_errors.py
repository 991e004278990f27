"""Every error the service returns is an RFC 9457 problem+json document (api-contract.md)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session

from app.core.config import get_settings
from app.main import create_app
from tests.factories import bearer, staff_token
from tests.problem_helpers import REQUEST_ID, assert_problem

JSON = {"content-type": "application/json"}
MIB = 1024 * 1024


def test_unknown_path_is_a_404_problem(client: TestClient) -> None:
    body = assert_problem(client.get("/portal/v1/no-such-thing"), 404, "not_found")
    assert body["instance"] == "/portal/v1/no-such-thing"


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("DELETE", "/portal/v1/studies/{id}", "GET"),
        ("PUT", "/app/v1/me", "GET"),
        ("PATCH", "/portal/v1/participants/{id}/withdraw", "POST"),
        ("GET", "/auth/v1/activate", "POST"),
    ],
)
def test_undefined_method_is_a_405_problem(
    client: TestClient, method: str, path: str, allowed: str
) -> None:
    response = client.request(method, path.replace("{id}", str(uuid.uuid4())))
    assert_problem(response, 405, "method_not_allowed")
    assert allowed in response.headers["allow"]


def test_validation_error_names_each_field(client: TestClient) -> None:
    response = client.post("/auth/v1/activate", json={"activation_code": 5, "role": "admin"})
    body = assert_problem(response, 422, "validation_failed")
    by_loc = {tuple(e["loc"]): e for e in body["errors"]}
    assert by_loc[("body", "activation_code")]["type"] == "string_type"
    assert by_loc[("body", "role")]["type"] == "extra_forbidden"
    assert all(set(e) == {"loc", "msg", "type"} and e["msg"] for e in body["errors"])
    assert "body.activation_code" in body["detail"]


def test_validation_error_names_nested_and_query_fields(
    client: TestClient, session: Session
) -> None:
    token = staff_token(session, role="admin")
    response = client.post(
        "/portal/v1/studies", json={"sites": [{"code": 5, "name": "A"}]}, headers=bearer(token)
    )
    body = assert_problem(response, 422, "validation_failed")
    assert ["body", "sites", 0, "code"] in [e["loc"] for e in body["errors"]]

    response = client.get("/portal/v1/studies?limit=ten", headers=bearer(token))
    body = assert_problem(response, 422, "validation_failed")
    assert body["errors"][0]["loc"] == ["query", "limit"]


@pytest.mark.parametrize(
    "raw",
    [
        b'{"activation_code": NaN}',
        b'{"activation_code": "ABCD-EFGH", "x": Infinity}',
        b'{"activation_code": "ABCD-EFGH", "x": -Infinity}',
        b'{"activation_code": "ABCD-EFGH", "x": [1, 2, NaN]}',
    ],
)
def test_nan_and_infinity_literals_reject_the_whole_request(client: TestClient, raw: bytes) -> None:
    body = assert_problem(client.post("/auth/v1/activate", content=raw, headers=JSON), 422)
    assert body["errors"][0]["type"] == "json_invalid"


@pytest.mark.parametrize(
    "raw",
    [b'{"activation_code": ', b"{'activation_code': 'x'}", b"\xff\xfe{}", b""],
    ids=["truncated", "single-quotes", "not-utf8", "empty"],
)
def test_invalid_json_is_a_422_problem(client: TestClient, raw: bytes) -> None:
    assert_problem(client.post("/auth/v1/activate", content=raw, headers=JSON), 422)


@pytest.mark.parametrize(
    "raw",
    [b"[" * 10_000 + b"]" * 10_000, b'{"a":' * 10_000 + b"1" + b"}" * 10_000],
    ids=["arrays", "objects"],
)
def test_deeply_nested_json_is_a_client_error(client: TestClient, raw: bytes) -> None:
    response = client.post("/auth/v1/activate", content=raw, headers=JSON)
    assert 400 <= response.status_code < 500, response.text
    assert_problem(response, response.status_code)


def test_body_over_the_limit_with_content_length_is_a_413_problem(client: TestClient) -> None:
    raw = b'{"activation_code": "' + b"a" * (2 * MIB) + b'"}'
    response = client.post("/auth/v1/activate", content=raw, headers=JSON)
    body = assert_problem(response, 413, "content_too_large")
    assert str(get_settings().max_body_bytes) in body["detail"]


def test_chunked_body_over_the_limit_is_a_413_problem(client: TestClient) -> None:
    def stream() -> Iterator[bytes]:
        yield b'{"activation_code": "'
        for _ in range(32):
            yield b"a" * (64 * 1024)
        yield b'"}'

    response = client.post("/auth/v1/activate", content=stream(), headers=JSON)
    assert "content-length" not in response.request.headers
    assert_problem(response, 413, "content_too_large")


def test_chunked_body_stops_being_read_past_the_limit(app: FastAPI, client: TestClient) -> None:
    """Speak ASGI directly: the test client buffers a streamed body before the app sees it."""
    chunk, total = 64 * 1024, 50 * MIB // (64 * 1024)
    received = 0
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        nonlocal received
        received += 1
        return {"type": "http.request", "body": b"a" * chunk, "more_body": received < total}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/auth/v1/activate",
        "raw_path": b"/auth/v1/activate",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver"), (b"content-type", b"application/json")],
        "client": ("127.0.0.1", 1234),
        "server": ("testserver", 80),
        "state": {},
    }
    asyncio.run(app(scope, receive, send))  # type: ignore[arg-type]
    start = next(m for m in sent if m["type"] == "http.response.start")
    assert start["status"] == 413
    headers = dict(start["headers"])  # type: ignore[call-overload]
    assert headers[b"content-type"] == b"application/problem+json"
    # A 50 MiB upload is cut off just past the 1 MiB limit, not buffered.
    assert received * chunk <= get_settings().max_body_bytes + chunk


def test_body_under_the_limit_is_processed(client: TestClient) -> None:
    raw = b'{"activation_code": "' + b"a" * (MIB // 2) + b'"}'
    response = client.post("/auth/v1/activate", content=raw, headers=JSON)
    body = assert_problem(response, 422, "validation_failed")
    assert body["errors"][0]["loc"] == ["body", "activation_code"]


def test_sane_request_id_is_echoed(client: TestClient) -> None:
    response = client.get("/healthz", headers={"X-Request-ID": "phone-42:sync.7_a-b"})
    assert response.headers["x-request-id"] == "phone-42:sync.7_a-b"

    response = client.get("/nope", headers={"X-Request-ID": "trace-123"})
    assert assert_problem(response, 404)["request_id"] == "trace-123"


@pytest.mark.parametrize(
    "sent",
    [None, "a" * 300, "has spaces in it", "", "caf\u00e9".encode(), "<script>"],
    ids=["absent", "300-chars", "spaces", "empty", "non-ascii", "markup"],
)
def test_missing_or_malformed_request_id_is_replaced(
    client: TestClient, sent: str | bytes | None
) -> None:
    headers = {} if sent is None else {"X-Request-ID": sent}
    ok = client.get("/healthz", headers=headers)
    assert REQUEST_ID.match(ok.headers["x-request-id"])

    response = client.get("/nope", headers=headers)
    body = assert_problem(response, 404)
    assert REQUEST_ID.match(body["request_id"])
    assert body["request_id"] != ok.headers["x-request-id"]


def test_every_request_gets_its_own_request_id(client: TestClient) -> None:
    ids = {client.get("/healthz").headers["x-request-id"] for _ in range(5)}
    assert len(ids) == 5


def test_auth_errors_are_problems_with_the_request_id(client: TestClient) -> None:
    response = client.get("/app/v1/me", headers={"X-Request-ID": "r-401"})
    body = assert_problem(response, 401, "unauthorized")
    assert body["request_id"] == "r-401"
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.fixture
def crashing_app(engine: Engine) -> FastAPI:
    app = create_app(get_settings(), engine=engine)

    @app.get("/test-only/boom")
    def boom() -> None:
        raise RuntimeError("connection string postgresql://user:hunter2@db/secret")

    return app


def test_unexpected_exception_is_a_500_problem_without_internals(
    crashing_app: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    with TestClient(crashing_app, raise_server_exceptions=False) as test_client:
        response = test_client.get("/test-only/boom", headers={"X-Request-ID": "crash-1"})
    body = assert_problem(response, 500, "internal_error")
    assert body["request_id"] == "crash-1"
    for leak in ("Traceback", "RuntimeError", "hunter2", "connection string", 'File "'):
        assert leak not in response.text
    # The operator can find the traceback in the log by the id the client reports.
    records = [r for r in caplog.records if r.name == "mgdiary.errors"]
    assert records
    assert "crash-1" in records[-1].getMessage()
    assert records[-1].exc_info is not None


def test_service_failure_inside_a_real_route_is_a_500_problem(
    client: TestClient, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.studies import service as studies_service

    def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError("relation 'study' is corrupt")

    monkeypatch.setattr(studies_service, "list_studies", explode)
    token = staff_token(session, role="admin")
    response = client.get("/portal/v1/studies", headers=bearer(token))
    assert_problem(response, 500, "internal_error")
    assert "corrupt" not in response.text
    assert REQUEST_ID.match(response.headers["x-request-id"])
