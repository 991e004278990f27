"""Onboarding: enrolment -> activation code -> token pair -> refresh rotation (checklist A8).

A reused activation code or a spent refresh token is a 401; a spent refresh token presented again
revokes its whole family, including the access tokens that carry the family (``fam``).
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from fastapi.testclient import TestClient
from jose import jwt
from sqlalchemy import update
from sqlalchemy.engine import Connection
from sqlmodel import Session, select

from app.auth.models import ActivationCode, RefreshToken
from app.core.config import get_settings
from app.participants import activation
from tests.auth.conftest import World
from tests.auth.helpers import APP_ME, PROBLEM, assert_unauthorized
from tests.factories import bearer

ACTIVATE = "/auth/v1/activate"
REFRESH = "/auth/v1/refresh"
CODE_FORMAT = re.compile(r"^[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{2}$")


def _activate(client: TestClient, code: str) -> Any:
    return client.post(ACTIVATE, json={"activation_code": code})


def _refresh(client: TestClient, token: str) -> Any:
    return client.post(REFRESH, json={"refresh_token": token})


def _pair(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == get_settings().access_token_ttl_seconds
    return body


def _me(client: TestClient, access_token: str) -> Any:
    return client.get(APP_ME, headers=bearer(access_token))


def _refused(response: Any) -> None:
    body = assert_unauthorized(response)
    assert body["code"] == "invalid_grant"


def _enrol(client: TestClient, world: World, **extra: Any) -> dict[str, Any]:
    response = client.post(
        f"/portal/v1/studies/{world.study.id}/participants",
        headers=bearer(world.investigator_token),
        json={
            "subject_code": f"MG-{uuid.uuid4().hex[:6]}",
            "site_id": str(world.sites["X"].id),
            "time_zone": "Europe/Berlin",
            **extra,
        },
    )
    assert response.status_code == 201, response.text
    return response.json()


def test_enrol_activate_and_use_the_app(client: TestClient, world: World) -> None:
    enrolled = _enrol(client, world)
    assert CODE_FORMAT.match(enrolled["activation_code"]), enrolled["activation_code"]
    expires = datetime.fromisoformat(enrolled["activation_expires_at"])
    assert timedelta(days=6, hours=23) < expires - datetime.now(UTC) <= timedelta(days=7)

    pair = _pair(_activate(client, enrolled["activation_code"]))
    assert pair["participant_id"] == enrolled["id"]
    me = _me(client, pair["access_token"])
    assert me.status_code == 200, me.text
    assert me.json()["id"] == enrolled["id"]
    assert me.json()["subject_code"] == enrolled["subject_code"]


def _crockford_confusables(code: str) -> str:
    return code.lower().replace("-", "").replace("0", "o").replace("1", "l")


@pytest.mark.parametrize(
    "typed",
    [
        lambda c: c,
        lambda c: c.lower().replace("-", ""),
        lambda c: f"  {c.replace('-', ' ')} ",
        _crockford_confusables,
    ],
    ids=["as-shown", "lowercase-no-dashes", "spaces", "crockford-confusables"],
)
def test_activation_code_forgives_how_it_is_typed(
    client: TestClient, world: World, typed: Callable[[str], str]
) -> None:
    pair = _pair(_activate(client, typed(world.activation_code)))
    assert _me(client, pair["access_token"]).json()["id"] == str(world.participant.id)


def test_reused_activation_code_is_refused(client: TestClient, world: World) -> None:
    first = _pair(_activate(client, world.activation_code))
    _refused(_activate(client, world.activation_code))
    _refused(_activate(client, world.activation_code.lower().replace("-", "")))
    # The first phone is not affected by someone retrying the code.
    assert _me(client, first["access_token"]).status_code == 200


@pytest.mark.parametrize("code", ["ABCD-EFGH-JK", "0000-0000-00", "not a code at all"])
def test_unknown_activation_code_is_refused(client: TestClient, world: World, code: str) -> None:
    _refused(_activate(client, code))


@pytest.mark.parametrize(
    ("after", "works"),
    [(timedelta(days=6, hours=23), True), (timedelta(days=7, minutes=1), False)],
    ids=["day-6", "day-7-plus-a-minute"],
)
def test_activation_code_expires_after_seven_days(
    client: TestClient, world: World, after: timedelta, works: bool
) -> None:
    with time_machine.travel(datetime.now(UTC) + after):
        response = _activate(client, world.activation_code)
        if works:
            assert _me(client, _pair(response)["access_token"]).status_code == 200
        else:
            _refused(response)


def test_reissued_code_replaces_the_unused_one(client: TestClient, world: World) -> None:
    response = client.post(
        f"/portal/v1/participants/{world.participant.id}/activation-code",
        headers=bearer(world.investigator_token),
    )
    assert response.status_code == 201, response.text
    new_code = response.json()["activation_code"]
    assert new_code != world.activation_code
    _refused(_activate(client, world.activation_code))
    _pair(_activate(client, new_code))


def _fam(access_token: str) -> str:
    return str(jwt.get_unverified_claims(access_token)["fam"])


def test_refresh_rotates_and_reuse_revokes_the_whole_family(
    client: TestClient, world: World
) -> None:
    first = _pair(_activate(client, world.activation_code))
    second = _pair(_refresh(client, first["refresh_token"]))
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert _fam(second["access_token"]) == _fam(first["access_token"])
    assert _me(client, second["access_token"]).status_code == 200
    third = _pair(_refresh(client, second["refresh_token"]))
    assert _me(client, third["access_token"]).status_code == 200

    # The spent token again: refused, and it means the token leaked.
    _refused(_refresh(client, first["refresh_token"]))
    # Every link of the family is dead, the newest included...
    _refused(_refresh(client, third["refresh_token"]))
    _refused(_refresh(client, second["refresh_token"]))
    # ...and so is every access token carrying the family, though none has expired yet.
    for pair in (first, second, third):
        assert_unauthorized(_me(client, pair["access_token"]))


def test_reuse_revokes_only_the_family_it_belongs_to(client: TestClient, world: World) -> None:
    """A second phone (a reissued code) has its own family and keeps working."""
    phone_a = _pair(_activate(client, world.activation_code))
    code_b = client.post(
        f"/portal/v1/participants/{world.participant.id}/activation-code",
        headers=bearer(world.investigator_token),
    ).json()["activation_code"]
    phone_b = _pair(_activate(client, code_b))
    assert _fam(phone_a["access_token"]) != _fam(phone_b["access_token"])

    _pair(_refresh(client, phone_a["refresh_token"]))
    _refused(_refresh(client, phone_a["refresh_token"]))  # reuse in family A
    assert_unauthorized(_me(client, phone_a["access_token"]))
    assert _me(client, phone_b["access_token"]).status_code == 200
    _pair(_refresh(client, phone_b["refresh_token"]))


@pytest.mark.parametrize("token", ["x" * 16, "y" * 43, "ünïcødé-refresh-token-value"])
def test_unknown_refresh_token_is_refused(client: TestClient, token: str) -> None:
    _refused(_refresh(client, token))


def test_refresh_after_withdrawal_is_refused(client: TestClient, world: World) -> None:
    pair = _pair(_activate(client, world.activation_code))
    response = client.post(
        f"/portal/v1/participants/{world.participant.id}/withdraw",
        headers=bearer(world.investigator_token),
        json={"reason": "Withdrew consent at visit 4"},
    )
    assert response.status_code == 200, response.text
    _refused(_refresh(client, pair["refresh_token"]))
    me = _me(client, pair["access_token"])
    assert me.status_code == 403, me.text
    assert me.json()["code"] == "participant_withdrawn"


def test_refresh_token_expires(client: TestClient, world: World) -> None:
    pair = _pair(_activate(client, world.activation_code))
    ttl = get_settings().refresh_token_ttl_seconds
    with time_machine.travel(datetime.now(UTC) + timedelta(seconds=ttl + 60)):
        _refused(_refresh(client, pair["refresh_token"]))


# --- Races: two requests with the same one-time credential ----------------------------------


def _spend_concurrently(
    monkeypatch: pytest.MonkeyPatch, connection: Connection, statement: Any
) -> None:
    """Run ``statement`` (another request winning the race) between our read and our write.

    ``activation`` reads the code or token, then takes ``utcnow()``, then writes; the first
    ``utcnow()`` call is the moment a concurrent request could commit.
    """
    real = activation.utcnow
    fired: list[bool] = []

    def racing_utcnow() -> datetime:
        if not fired:
            fired.append(True)
            connection.execute(statement)
        return real()

    monkeypatch.setattr(activation, "utcnow", racing_utcnow)


def test_activation_code_used_concurrently_gives_one_session(
    client: TestClient,
    world: World,
    session: Session,
    connection: Connection,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    code = session.exec(
        select(ActivationCode).where(ActivationCode.participant_id == world.participant.id)
    ).one()
    _spend_concurrently(
        monkeypatch,
        connection,
        update(ActivationCode)
        .where(ActivationCode.id == code.id)  # type: ignore[arg-type]
        .values(used_at=datetime.now(UTC)),
    )
    _refused(_activate(client, world.activation_code))


def test_refresh_token_rotated_concurrently_revokes_the_family(
    client: TestClient,
    world: World,
    connection: Connection,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pair = _pair(_activate(client, world.activation_code))
    token_hash = hashlib.sha256(pair["refresh_token"].encode()).hexdigest()
    _spend_concurrently(
        monkeypatch,
        connection,
        update(RefreshToken)
        .where(RefreshToken.token_hash == token_hash)  # type: ignore[arg-type]
        .values(spent_at=datetime.now(UTC)),
    )
    _refused(_refresh(client, pair["refresh_token"]))
    assert_unauthorized(_me(client, pair["access_token"]))


# --- Brute force ----------------------------------------------------------------------------


def _assert_rate_limited(response: Any) -> None:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    assert response.json()["code"] == "rate_limited"
    retry_after = int(response.headers["retry-after"])
    assert 1 <= retry_after <= get_settings().activation_rate_window_seconds


def test_activation_attempts_are_rate_limited(client: TestClient, world: World) -> None:
    limit = get_settings().activation_rate_limit
    for i in range(limit):
        _refused(_activate(client, f"WRNG-CODE-{i:02d}"))
    _assert_rate_limited(_activate(client, "WRNG-CODE-XX"))
    # The right code does not get through the lock either (no oracle while limited).
    _assert_rate_limited(_activate(client, world.activation_code))
    # Another client is counted separately.
    with TestClient(client.app, client=("203.0.113.9", 40000)) as other:
        _pair(_activate(other, world.activation_code))


def test_refresh_attempts_are_rate_limited(client: TestClient) -> None:
    limit = get_settings().activation_rate_limit
    for i in range(limit):
        _refused(_refresh(client, f"guessed-refresh-token-{i:04d}"))
    _assert_rate_limited(_refresh(client, "guessed-refresh-token-last"))
