"""Checklist A1, A3, A4, A5: unsigned tokens, time claims, audience and issuer, malformed input.

Every refusal is a 401 problem+json with a Bearer challenge, never a 500. Each group starts with
a control: the same construction with correct values is accepted, so a refusal below is caused by
the one thing the test changes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import time_machine
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.auth.tokens import APP_AUDIENCE, PORTAL_AUDIENCE, issue_token
from app.core.config import get_settings
from tests.auth.conftest import World
from tests.auth.helpers import (
    APP_ME,
    DROP,
    ENDPOINTS,
    PORTAL_STUDIES,
    assert_unauthorized,
    b64url,
    claims,
    header,
    hs256_raw,
    secret,
    segment,
    signed,
)
from tests.factories import bearer, participant_token, ring

KINDS = sorted(ENDPOINTS)
FROZEN = datetime(2026, 11, 21, 9, 0, 0, tzinfo=UTC)
NOW = int(FROZEN.timestamp())


def _call(client: TestClient, kind: str, token: str) -> object:
    path, _ = ENDPOINTS[kind]
    return client.get(path, headers=bearer(token))


def _ok(response: object, kind: str, world: World) -> None:
    assert response.status_code == 200, response.text  # type: ignore[attr-defined]
    body = response.json()  # type: ignore[attr-defined]
    if kind == "app":
        assert body["id"] == str(world.participant.id)
    else:
        assert [s["id"] for s in body["items"]] == [str(world.study.id)]


@pytest.mark.parametrize("kind", KINDS)
def test_control_hand_built_token_is_accepted(
    client: TestClient, world: World, subjects: dict[str, str], kind: str
) -> None:
    """The hand-built construction itself is sound: correctly signed, it is accepted."""
    payload = claims(subjects[kind], ENDPOINTS[kind][1])
    _ok(_call(client, kind, hs256_raw(header(), payload, secret())), kind, world)
    _ok(_call(client, kind, signed(payload)), kind, world)


# --- A1: alg none and unsigned tokens -------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_alg_none_is_refused(
    client: TestClient, subjects: dict[str, str], subtests: pytest.Subtests, kind: str
) -> None:
    payload = segment(claims(subjects[kind], ENDPOINTS[kind][1]))
    for alg in ["none", "None", "NONE", "nOnE", "", None]:
        with subtests.test(alg=alg):
            head = header(alg=DROP if alg is None else alg)
            assert_unauthorized(_call(client, kind, f"{segment(head)}.{payload}."))


@pytest.mark.parametrize("kind", KINDS)
def test_valid_token_with_signature_stripped_is_refused(
    client: TestClient, subjects: dict[str, str], kind: str
) -> None:
    token = signed(claims(subjects[kind], ENDPOINTS[kind][1]))
    head, payload, _ = token.split(".")
    assert_unauthorized(_call(client, kind, f"{head}.{payload}."))
    assert_unauthorized(_call(client, kind, f"{head}.{payload}"))


@pytest.mark.parametrize("kind", KINDS)
def test_alg_none_header_with_a_real_signature_is_refused(
    client: TestClient, subjects: dict[str, str], kind: str
) -> None:
    """Swap a good token's header for ``alg: none`` and keep its signature."""
    token = signed(claims(subjects[kind], ENDPOINTS[kind][1]))
    _, payload, signature = token.split(".")
    assert_unauthorized(_call(client, kind, f"{segment(header(alg='none'))}.{payload}.{signature}"))


# --- A3: time claims ------------------------------------------------------------------------


@pytest.fixture
def frozen() -> Iterator[time_machine.Traveller]:
    with time_machine.travel(FROZEN, tick=False) as traveller:
        yield traveller


TIME_CASES = {
    # name: (claim overrides relative to NOW, accepted?)
    "exp-past": ({"exp": NOW - 3600}, False),
    "exp-missing": ({"exp": DROP}, False),
    "exp-inside-leeway": ({"exp": NOW - 29}, True),
    "exp-outside-leeway": ({"exp": NOW - 31}, False),
    "nbf-far-future": ({"nbf": NOW + 3600, "exp": NOW + 7200}, False),
    "nbf-inside-leeway": ({"nbf": NOW + 29}, True),
    "nbf-outside-leeway": ({"nbf": NOW + 31}, False),
    "iat-far-future": ({"iat": NOW + 365 * 86400, "exp": NOW + 366 * 86400}, False),
    "iat-inside-leeway": ({"iat": NOW + 29}, True),
    "iat-outside-leeway": ({"iat": NOW + 31}, False),
    "iat-missing": ({"iat": DROP}, False),
    "exp-string": ({"exp": str(NOW + 600)}, False),
    "exp-bool": ({"exp": True}, False),
    "exp-infinite": ({"exp": math.inf}, False),
    "exp-nan": ({"exp": math.nan}, False),
    "iat-infinite": ({"iat": -math.inf}, False),
}


@pytest.mark.parametrize("kind", KINDS)
def test_time_claims(
    client: TestClient,
    world: World,
    subjects: dict[str, str],
    frozen: time_machine.Traveller,
    subtests: pytest.Subtests,
    kind: str,
) -> None:
    for case, (overrides, accepted) in TIME_CASES.items():
        with subtests.test(case=case):
            payload = claims(subjects[kind], ENDPOINTS[kind][1], now=NOW, **overrides)
            response = _call(client, kind, signed(payload))
            if accepted:
                _ok(response, kind, world)
            else:
                assert_unauthorized(response)


def test_access_token_stops_working_when_its_ttl_runs_out(client: TestClient, world: World) -> None:
    """Our own issuer: a 15-minute app token works at minute 14 and not at minute 16."""
    token = participant_token(world.participant, ttl=900)
    with time_machine.travel(datetime.now(UTC), tick=False) as traveller:
        traveller.shift(14 * 60)
        assert client.get(APP_ME, headers=bearer(token)).status_code == 200
        traveller.shift(2 * 60)
        assert_unauthorized(client.get(APP_ME, headers=bearer(token)))


def test_token_issued_by_a_signer_with_a_fast_clock_is_refused(
    client: TestClient, world: World
) -> None:
    """``issue_token(now=...)``: a token stamped an hour ahead fails; stamped now it works."""
    fresh = issue_token(
        ring(), subject=world.investigator_subject, audience=PORTAL_AUDIENCE, ttl_seconds=7200
    )
    assert client.get(PORTAL_STUDIES, headers=bearer(fresh)).status_code == 200
    ahead = issue_token(
        ring(),
        subject=world.investigator_subject,
        audience=PORTAL_AUDIENCE,
        ttl_seconds=7200,
        now=time.time() + 3600,
    )
    assert_unauthorized(client.get(PORTAL_STUDIES, headers=bearer(ahead)))


# --- A4: audience, issuer and type ----------------------------------------------------------


def test_portal_token_on_the_app_api_is_refused(client: TestClient, world: World) -> None:
    assert client.get(PORTAL_STUDIES, headers=bearer(world.investigator_token)).status_code == 200
    assert_unauthorized(client.get(APP_ME, headers=bearer(world.investigator_token)))


def test_app_token_on_the_portal_api_is_refused(client: TestClient, world: World) -> None:
    token = participant_token(world.participant)
    assert client.get(APP_ME, headers=bearer(token)).status_code == 200
    assert_unauthorized(client.get(PORTAL_STUDIES, headers=bearer(token)))


def test_app_token_for_a_staff_subject_is_refused_on_the_portal(
    client: TestClient, world: World
) -> None:
    """A participant-audience token naming the investigator's subject is still not a staff token."""
    payload = claims(world.investigator_subject, APP_AUDIENCE)
    assert_unauthorized(client.get(PORTAL_STUDIES, headers=bearer(signed(payload))))


AUD_ISS_CASES = {
    "aud-missing": {"aud": DROP},
    "aud-other-service": {"aud": "some-other-api"},
    "aud-both-audiences": {"aud": [APP_AUDIENCE, PORTAL_AUDIENCE]},
    "aud-empty-list": {"aud": []},
    "aud-number": {"aud": 1},
    "iss-wrong": {"iss": "https://attacker.example"},
    "iss-missing": {"iss": DROP},
    "iss-empty": {"iss": ""},
    "sub-missing": {"sub": DROP},
    "sub-empty": {"sub": ""},
    "sub-number": {"sub": 12345},
}


@pytest.mark.parametrize("kind", KINDS)
def test_audience_issuer_and_subject_claims(
    client: TestClient, subjects: dict[str, str], subtests: pytest.Subtests, kind: str
) -> None:
    for case, overrides in AUD_ISS_CASES.items():
        with subtests.test(case=case):
            payload = claims(subjects[kind], ENDPOINTS[kind][1], **overrides)
            assert_unauthorized(_call(client, kind, signed(payload)))


@pytest.mark.parametrize("kind", KINDS)
def test_token_type_must_be_at_jwt(
    client: TestClient, subjects: dict[str, str], subtests: pytest.Subtests, kind: str
) -> None:
    payload = claims(subjects[kind], ENDPOINTS[kind][1])
    for typ in [None, "JWT", "jwt", "at+jwt ", "application/jwt", "at+jwt+x", "", 1]:
        with subtests.test(typ=typ):
            head = header(typ=DROP if typ is None else typ)
            assert_unauthorized(_call(client, kind, hs256_raw(head, payload, secret())))


def test_token_type_spellings_rfc_9068_allows(
    client: TestClient, world: World, subjects: dict[str, str], subtests: pytest.Subtests
) -> None:
    payload = claims(subjects["app"], APP_AUDIENCE)
    for typ in ["at+jwt", "AT+JWT", "application/at+jwt"]:
        with subtests.test(typ=typ):
            _ok(_call(client, "app", hs256_raw(header(typ=typ), payload, secret())), "app", world)


def test_app_token_without_the_participant_role_is_refused(
    client: TestClient, world: World, subtests: pytest.Subtests
) -> None:
    for role in [DROP, "investigator", "admin", "Participant", "", None, ["participant"]]:
        with subtests.test(role=role):
            payload = claims(str(world.participant.id), APP_AUDIENCE, role=role)
            assert_unauthorized(client.get(APP_ME, headers=bearer(signed(payload))))


def test_app_token_subject_must_be_a_known_participant(
    client: TestClient, world: World, subtests: pytest.Subtests
) -> None:
    for subject in ["not-a-uuid", "00000000-0000-0000-0000-000000000000", "{participant}x"]:
        with subtests.test(subject=subject):
            payload = claims(subject.format(participant=world.participant.id), APP_AUDIENCE)
            assert_unauthorized(client.get(APP_ME, headers=bearer(signed(payload))))


def test_portal_token_for_an_unprovisioned_subject_is_refused(
    client: TestClient, world: World
) -> None:
    payload = claims("nobody-we-know", PORTAL_AUDIENCE)
    assert_unauthorized(client.get(PORTAL_STUDIES, headers=bearer(signed(payload))))


# --- A5: malformed and oversized ------------------------------------------------------------


INVALID_UTF8_HEADER = b'{"alg":"HS256","typ":"at+jwt","kid":"\xff"}'


def _malformed(subject: str, audience: str) -> dict[str, str]:
    good = signed(claims(subject, audience))
    head, payload, sig = good.split(".")
    return {
        "empty-ish": ".",
        "one-segment": head,
        "two-segments": f"{head}.{payload}",
        "four-segments": f"{good}.{sig}",
        "truncated-signature": good[:-6],
        "truncated-payload": f"{head}.{payload[:-5]}.{sig}",
        "dots-only": "..",
        "bad-base64-header": f"!!!*.{payload}.{sig}",
        "bad-base64-payload": f"{head}.%%%%.{sig}",
        "bad-base64-signature": f"{head}.{payload}.@@@@",
        "base64-padding": f"{head}==.{payload}.{sig}",
        "header-not-json": f"{b64url('not json')}.{payload}.{sig}",
        "header-json-array": f"{b64url('[]')}.{payload}.{sig}",
        "header-invalid-utf8": f"{b64url(INVALID_UTF8_HEADER)}.{payload}.{sig}",
        "header-json-null": f"{b64url('null')}.{payload}.{sig}",
        "payload-json-array": hs256_raw(header(), ["sub", subject], secret()),
        "payload-json-string": hs256_raw(header(), "claims", secret()),
        "payload-json-number": hs256_raw(header(), 42, secret()),
        "payload-not-json": (
            f"{segment(header())}.{b64url('not json')}."
            + hs256_raw(header(), {}, secret()).split(".")[2]
        ),
        "kid-object": hs256_raw(header(kid={"a": 1}), claims(subject, audience), secret()),
        "kid-list": hs256_raw(header(kid=["x"]), claims(subject, audience), secret()),
        "alg-number": hs256_raw(header(alg=256), claims(subject, audience), secret()),
        "huge-payload": hs256_raw(header(), {"pad": "x" * 9000}, secret()),
        "whitespace-inside": f"{head} .{payload}.{sig}",
    }


@pytest.mark.parametrize("kind", KINDS)
def test_malformed_tokens_are_refused(
    client: TestClient, subjects: dict[str, str], subtests: pytest.Subtests, kind: str
) -> None:
    for name, token in _malformed(subjects[kind], ENDPOINTS[kind][1]).items():
        with subtests.test(case=name):
            assert_unauthorized(_call(client, kind, token))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("size", [10 * 1024, 100 * 1024])
def test_oversized_authorization_header(
    client: TestClient, subjects: dict[str, str], kind: str, size: int
) -> None:
    """A token padded to 10 KB / 100 KB: refused (401, or 431/400 from the server), never 500."""
    good = signed(claims(subjects[kind], ENDPOINTS[kind][1]))
    padded = good + "A" * (size - len(good))
    response = client.get(ENDPOINTS[kind][0], headers=bearer(padded))
    if response.status_code == 401:
        assert_unauthorized(response)
    else:
        assert response.status_code in (400, 431), response.status_code


@pytest.mark.parametrize("kind", KINDS)
def test_non_ascii_tokens_are_refused(
    client: TestClient, subjects: dict[str, str], subtests: pytest.Subtests, kind: str
) -> None:
    path, audience = ENDPOINTS[kind]
    good = signed(claims(subjects[kind], audience))
    for token in [
        "tökén.ä.ö",
        "eyJ\u00e9.eyJ.sig",
        "\u2603.\u2603.\u2603",
        good[:-2] + "\u00ff\u00ff",
        good.replace(".", "\u2024", 1),
    ]:
        with subtests.test(token=token):
            # Raw bytes: HTTP carries them, even if a well-behaved client would not send them.
            response = client.get(path, headers={"Authorization": f"Bearer {token}".encode()})
            assert_unauthorized(response)


@pytest.mark.parametrize("kind", KINDS)
def test_missing_or_non_bearer_credentials(
    client: TestClient, subtests: pytest.Subtests, kind: str
) -> None:
    for value in [None, "", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Token a.b.c", "bearer"]:
        with subtests.test(value=value):
            headers = {} if value is None else {"Authorization": value}
            assert_unauthorized(client.get(ENDPOINTS[kind][0], headers=headers))


def test_lowercase_bearer_scheme_is_accepted(client: TestClient, world: World) -> None:
    """RFC 9110: the scheme is case-insensitive (control for the refusals above)."""
    token = participant_token(world.participant)
    response = client.get(APP_ME, headers={"Authorization": f"bearer {token}"})
    assert response.status_code == 200, response.text


_HEADER_SAFE = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, blacklist_categories=("Cc",)),
    max_size=300,
)


@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    token=st.one_of(
        _HEADER_SAFE,
        st.builds(lambda a, b, c: f"{a}.{b}.{c}", _HEADER_SAFE, _HEADER_SAFE, _HEADER_SAFE),
        st.builds(
            lambda h, p: f"{b64url(h)}.{b64url(p)}.{b64url(p)}",
            st.text(max_size=80),
            st.text(max_size=80),
        ),
    ),
    kind=st.sampled_from(KINDS),
)
def test_arbitrary_tokens_never_cause_a_server_error(
    client: TestClient, token: str, kind: str
) -> None:
    path, _ = ENDPOINTS[kind]
    response = client.get(path, headers={"Authorization": f"Bearer {token}".encode("latin-1")})
    assert_unauthorized(response)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=5,
)
_CLAIM_NAMES = ["sub", "aud", "iss", "exp", "nbf", "iat", "role", "fam", "jti", "typ"]
_TIME_CLAIMS = ["exp", "nbf", "iat"]
_NUMBERS = st.floats() | st.integers() | st.sampled_from([1e308, -1e308, 2**63, 2**64 + 1])
_HEADER_NAMES = ["alg", "typ", "kid", "crit", "cty", "b64", "zip"]


_FUZZ = settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def _never_a_server_error(response: Any, *context: object) -> None:
    assert response.status_code in (200, 401, 403), (response.status_code, *context)
    if response.status_code == 401:
        assert_unauthorized(response)


@_FUZZ
@given(
    changes=st.one_of(
        st.dictionaries(st.sampled_from(_CLAIM_NAMES), _JSON, min_size=1, max_size=2),
        # The NumericDate claims get numbers of every kind (huge, negative, inf, nan).
        st.dictionaries(st.sampled_from(_TIME_CLAIMS), _NUMBERS, min_size=1, max_size=2),
    ),
    kind=st.sampled_from(KINDS),
)
def test_correctly_signed_tokens_with_arbitrary_claims_never_cause_a_server_error(
    client: TestClient, subjects: dict[str, str], changes: dict[str, object], kind: str
) -> None:
    """Signed with our real secret, so the claim checks run on whatever the values are."""
    path, audience = ENDPOINTS[kind]
    payload = {**claims(subjects[kind], audience), **changes}
    response = client.get(path, headers=bearer(hs256_raw(header(), payload, secret())))
    _never_a_server_error(response, payload)


@_FUZZ
@given(
    head=st.dictionaries(st.sampled_from(_HEADER_NAMES), _JSON, min_size=1, max_size=2),
    kind=st.sampled_from(KINDS),
)
def test_correctly_signed_tokens_with_arbitrary_headers_never_cause_a_server_error(
    client: TestClient, subjects: dict[str, str], head: dict[str, object], kind: str
) -> None:
    path, audience = ENDPOINTS[kind]
    token = hs256_raw(header(**head), claims(subjects[kind], audience), secret())
    _never_a_server_error(client.get(path, headers=bearer(token)), head)


def test_suite_signs_with_the_secret_the_app_uses(client: TestClient) -> None:
    """Guard for the suite itself: tokens signed here with get_settings() are the app's own."""
    assert client.app.state.settings.jwt_secret == get_settings().jwt_secret  # type: ignore[attr-defined]
    assert client.app.state.settings.jwt_kid == get_settings().jwt_kid  # type: ignore[attr-defined]


# --- verified tokens are remembered, never beyond what a full verification accepts -----------


def test_a_remembered_token_is_checked_for_expiry_and_not_before_on_every_use(
    frozen: time_machine.Traveller,
) -> None:
    """verify_token remembers a token that passed; the next use skips the signature work but
    still refuses it once ``exp`` (plus the leeway) has passed, as python-jose would."""
    from app.auth.tokens import TokenError, verify_token

    keys = ring()
    token = signed(claims("participant-1", APP_AUDIENCE, now=NOW, nbf=NOW + 20, exp=NOW + 600))
    assert verify_token(keys, token, audience=APP_AUDIENCE)["sub"] == "participant-1"
    assert len(keys.verified) == 1
    returned = verify_token(keys, token, audience=APP_AUDIENCE)
    returned["sub"] = "someone else"  # a copy: the remembered claims stay as verified
    assert verify_token(keys, token, audience=APP_AUDIENCE)["sub"] == "participant-1"
    frozen.shift(600 + 30)  # exp + leeway: still accepted, as python-jose accepts it
    assert verify_token(keys, token, audience=APP_AUDIENCE)["sub"] == "participant-1"
    frozen.shift(1)
    with pytest.raises(TokenError):
        verify_token(keys, token, audience=APP_AUDIENCE)
    assert keys.verified == {}
    with pytest.raises(TokenError):  # and it stays refused
        verify_token(keys, token, audience=APP_AUDIENCE)

    # nbf: a token not yet valid is never remembered; at nbf - leeway it passes.
    early = signed(claims("participant-2", APP_AUDIENCE, now=NOW, nbf=NOW + 3600, exp=NOW + 9000))
    with pytest.raises(TokenError):
        verify_token(keys, early, audience=APP_AUDIENCE)
    assert len(keys.verified) == 0


def test_a_remembered_token_does_not_pass_for_another_audience_or_a_changed_signature(
    frozen: time_machine.Traveller,
) -> None:
    from app.auth.tokens import TokenError, verify_token

    keys = ring()
    token = signed(claims("participant-1", APP_AUDIENCE, now=NOW))
    verify_token(keys, token, audience=APP_AUDIENCE)
    with pytest.raises(TokenError):
        verify_token(keys, token, audience=PORTAL_AUDIENCE)
    head, payload, signature = token.split(".")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    with pytest.raises(TokenError):
        verify_token(keys, f"{head}.{payload}.{flipped}", audience=APP_AUDIENCE)
    # A remembered token is bound to the leeway it passed with, too.
    late = signed(claims("participant-3", APP_AUDIENCE, now=NOW - 620))  # exp 20 s ago
    verify_token(keys, late, audience=APP_AUDIENCE, leeway=30)
    with pytest.raises(TokenError):
        verify_token(keys, late, audience=APP_AUDIENCE, leeway=10)


def test_the_memory_of_verified_tokens_is_bounded(
    frozen: time_machine.Traveller, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.auth import tokens

    monkeypatch.setattr(tokens, "VERIFIED_TOKENS_MAX", 3)
    keys = ring()
    for n in range(7):
        tokens.verify_token(
            keys, signed(claims(f"p-{n}", APP_AUDIENCE, now=NOW)), audience=APP_AUDIENCE
        )
        assert len(keys.verified) <= 3
