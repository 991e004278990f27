"""The committed OpenAPI documents are the contract clients build against (conventions.md)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI

from app.openapi import DOCUMENTS, OPENAPI_DIR, build_documents, render

HTTP_METHODS = {"get", "put", "post", "patch", "delete", "head", "options", "trace"}
PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}

#: Paths from api-contract.md that exist so far (extend as domains land).
CONTRACT_PATHS = {
    "app.v1.json": {"/app/v1/me", "/auth/v1/activate", "/auth/v1/refresh", "/healthz", "/readyz"},
    "portal.v1.json": {
        "/portal/v1/studies",
        "/portal/v1/studies/{study_id}",
        "/portal/v1/studies/{study_id}/participants",
        "/portal/v1/participants/{participant_id}",
        "/portal/v1/participants/{participant_id}/withdraw",
        "/portal/v1/participants/{participant_id}/activation-code",
        "/portal/v1/audit-events",
        "/healthz",
        "/readyz",
    },
}
CONTRACT_OPERATIONS = {
    ("post", "/auth/v1/activate"),
    ("post", "/auth/v1/refresh"),
    ("get", "/app/v1/me"),
    ("get", "/portal/v1/studies"),
    ("post", "/portal/v1/studies"),
    ("get", "/portal/v1/studies/{study_id}"),
    ("get", "/portal/v1/studies/{study_id}/participants"),
    ("post", "/portal/v1/studies/{study_id}/participants"),
    ("get", "/portal/v1/participants/{participant_id}"),
    ("patch", "/portal/v1/participants/{participant_id}"),
    ("post", "/portal/v1/participants/{participant_id}/withdraw"),
    ("post", "/portal/v1/participants/{participant_id}/activation-code"),
    ("get", "/portal/v1/audit-events"),
}


@pytest.fixture(scope="module")
def documents(app: FastAPI) -> dict[str, dict[str, Any]]:
    return build_documents(app)


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in HTTP_METHODS
    ]


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_committed_document_matches_the_app(
    documents: dict[str, dict[str, Any]], name: str
) -> None:
    path = OPENAPI_DIR / name
    assert path.exists(), f"openapi/{name} is missing: run `make openapi` and commit it"
    expected = render(documents[name])
    assert path.read_text() == expected, (
        f"openapi/{name} is out of date with the app: run `make openapi` and commit the result"
    )


def test_documents_are_not_empty(documents: dict[str, dict[str, Any]]) -> None:
    for name, document in documents.items():
        assert len(_operations(document)) >= 5, f"{name} documents almost nothing"


def test_operation_ids_are_unique(documents: dict[str, dict[str, Any]]) -> None:
    owner: dict[str, tuple[str, str]] = {}
    for document in documents.values():
        seen_here: set[str] = set()
        for method, path, operation in _operations(document):
            op_id = operation["operationId"]
            assert op_id not in seen_here, f"duplicate operationId {op_id}"
            seen_here.add(op_id)
            # The health checks appear in both documents; they are one operation.
            assert owner.setdefault(op_id, (method, path)) == (method, path), (
                f"operationId {op_id} names both {owner[op_id]} and {(method, path)}"
            )


def test_contract_paths_are_documented(documents: dict[str, dict[str, Any]]) -> None:
    for name, paths in CONTRACT_PATHS.items():
        missing = paths - documents[name]["paths"].keys()
        assert not missing, f"{name} lacks contract paths {sorted(missing)}"
    documented = {(m, p) for d in documents.values() for m, p, _ in _operations(d)}
    assert CONTRACT_OPERATIONS <= documented, sorted(CONTRACT_OPERATIONS - documented)


def test_each_document_keeps_to_its_audience(documents: dict[str, dict[str, Any]]) -> None:
    assert not [p for p in documents["app.v1.json"]["paths"] if p.startswith("/portal/")]
    assert not [
        p for p in documents["portal.v1.json"]["paths"] if p.startswith(("/app/", "/auth/"))
    ]


def test_problem_schema_has_the_rfc_9457_members(documents: dict[str, dict[str, Any]]) -> None:
    for document in documents.values():
        problem = document["components"]["schemas"]["Problem"]
        assert {"type", "title", "status", "detail", "code", "request_id", "errors"} <= set(
            problem["properties"]
        )
        assert {"type", "title", "status", "code"} <= set(problem["required"])


def _assert_problem_response(operation: dict[str, Any], status: str, where: str) -> None:
    response = operation["responses"].get(status)
    assert response is not None, f"{where} does not document {status}"
    content = response.get("content", {})
    assert content.get("application/problem+json", {}).get("schema") == PROBLEM_REF, (
        f"{where} {status} is not documented as application/problem+json Problem"
    )


def test_authenticated_operations_document_401_and_422_problems(
    documents: dict[str, dict[str, Any]],
) -> None:
    checked = 0
    for document in documents.values():
        for method, path, operation in _operations(document):
            if not path.startswith(("/app/v1/", "/portal/v1/")):
                continue
            where = f"{method.upper()} {path}"
            for status in ("401", "422"):
                _assert_problem_response(operation, status, where)
            assert operation.get("security"), f"{where} does not declare bearer auth"
            checked += 1
    assert checked >= 10


def test_token_exchange_documents_its_problems(documents: dict[str, dict[str, Any]]) -> None:
    for path in ("/auth/v1/activate", "/auth/v1/refresh"):
        operation = documents["app.v1.json"]["paths"][path]["post"]
        for status in ("401", "422", "429"):
            _assert_problem_response(operation, status, f"POST {path}")


def test_paginated_lists_document_limit_bounds_and_bad_cursor(
    documents: dict[str, dict[str, Any]],
) -> None:
    for path in ("/portal/v1/studies", "/portal/v1/studies/{study_id}/participants"):
        operation = documents["portal.v1.json"]["paths"][path]["get"]
        params = {p["name"]: p for p in operation["parameters"]}
        limit = params["limit"]["schema"]
        assert (limit["minimum"], limit["maximum"], limit["default"]) == (1, 200, 50)
        assert "cursor" in params
        _assert_problem_response(operation, "400", f"GET {path}")
