"""Checklist A2 and A6: key confusion, foreign keys, identity-provider keys, kid and rotation."""

from __future__ import annotations

import json
import socket
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi.testclient import TestClient
from jose import jwk, jwt

from app.auth.tokens import APP_AUDIENCE, PORTAL_AUDIENCE, TOKEN_TYPE, KeyRing
from app.core.config import Settings
from tests.auth.conftest import ClientFactory, World
from tests.auth.helpers import (
    APP_ME,
    ENDPOINTS,
    PORTAL_STUDIES,
    assert_unauthorized,
    claims,
    header,
    hs256_raw,
    kid,
    secret,
    signed,
)
from tests.factories import bearer

IDP_ISSUER = "https://login.site-x.example/realms/mgdiary"
IDP_KID = "site-x-2026"


def _private_pem(key: Any) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _public_encodings(public_key: Any) -> dict[str, bytes]:
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    return {
        "pem-spki": public_key.public_bytes(serialization.Encoding.PEM, spki),
        "pem-spki-no-newline": public_key.public_bytes(serialization.Encoding.PEM, spki).strip(),
        "pem-pkcs1": public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.PKCS1
        ),
        "der-spki": public_key.public_bytes(serialization.Encoding.DER, spki),
        "der-pkcs1": public_key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.PKCS1
        ),
        "openssh": public_key.public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        ),
    }


@pytest.fixture(scope="module")
def idp_key() -> rsa.RSAPrivateKey:
    """The site identity provider's key pair (we hold only the public half in settings)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def stranger_rsa() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def stranger_ec() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def key_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("idp-keys")


@pytest.fixture(scope="module")
def jwks_settings(key_dir: Path, idp_key: rsa.RSAPrivateKey) -> Settings:
    public_pem = idp_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    entry = jwk.construct(public_pem, "RS256").to_dict()
    entry.update({"kid": IDP_KID, "use": "sig"})
    path = key_dir / "jwks.json"
    path.write_text(json.dumps({"keys": [entry]}))
    return Settings(idp_issuer=IDP_ISSUER, idp_keys_file=path)


@pytest.fixture(scope="module")
def pem_settings(key_dir: Path, idp_key: rsa.RSAPrivateKey) -> Settings:
    path = key_dir / "idp.pem"
    path.write_bytes(
        idp_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return Settings(idp_issuer=IDP_ISSUER, idp_keys_file=path)


def _idp_token(key: Any, payload: dict[str, Any], *, algorithm: str = "RS256", **head: Any) -> str:
    headers = {"typ": TOKEN_TYPE, **head}
    return jwt.encode(payload, _private_pem(key), algorithm=algorithm, headers=headers)


def _idp_claims(subject: str, audience: str = PORTAL_AUDIENCE, **overrides: Any) -> dict:
    return claims(subject, audience, iss=IDP_ISSUER, **overrides)


# --- A2: HS256 with a public key as the HMAC secret -----------------------------------------

ENCODINGS = ["der-pkcs1", "der-spki", "openssh", "pem-pkcs1", "pem-spki", "pem-spki-no-newline"]


def _kid_variants() -> dict[str, dict[str, str]]:
    return {"our-kid": {"kid": kid()}, "idp-kid": {"kid": IDP_KID}, "no-kid": {}}


@pytest.mark.parametrize("kind", sorted(ENDPOINTS))
def test_hs256_signed_with_our_public_key_is_refused(
    client_for: ClientFactory,
    world: World,
    subjects: dict[str, str],
    idp_key: rsa.RSAPrivateKey,
    jwks_settings: Settings,
    subtests: pytest.Subtests,
    kind: str,
) -> None:
    """The classic confusion: the verifier holds an RSA public key; sign HMAC with it."""
    idp_client = client_for(jwks_settings)
    path, audience = ENDPOINTS[kind]
    encodings = _public_encodings(idp_key.public_key())
    for issuer in (IDP_ISSUER, Settings().jwt_issuer):
        payload = claims(subjects[kind], audience, iss=issuer)
        for encoding in ENCODINGS:
            for kid_name, kid_header in _kid_variants().items():
                with subtests.test(issuer=issuer, encoding=encoding, kid=kid_name):
                    head = {"alg": "HS256", "typ": TOKEN_TYPE, **kid_header}
                    token = hs256_raw(head, payload, encodings[encoding])
                    assert_unauthorized(idp_client.get(path, headers=bearer(token)))
    # Control: the portal claims signed by the IdP itself are accepted.
    good = _idp_token(idp_key, _idp_claims(world.investigator_subject), kid=IDP_KID)
    assert idp_client.get(PORTAL_STUDIES, headers=bearer(good)).status_code == 200


def test_hs256_without_kid_against_a_pem_idp_key_is_refused(
    client_for: ClientFactory,
    world: World,
    idp_key: rsa.RSAPrivateKey,
    pem_settings: Settings,
    subtests: pytest.Subtests,
) -> None:
    """With a PEM key file, unkeyed tokens go to that key, which is pinned to RS256."""
    idp_client = client_for(pem_settings)
    payload = _idp_claims(world.investigator_subject)
    encodings = _public_encodings(idp_key.public_key())
    for encoding in ENCODINGS:
        with subtests.test(encoding=encoding):
            token = hs256_raw({"alg": "HS256", "typ": TOKEN_TYPE}, payload, encodings[encoding])
            assert_unauthorized(idp_client.get(PORTAL_STUDIES, headers=bearer(token)))


def test_hs256_with_a_strangers_public_key_is_refused(
    client: TestClient,
    subjects: dict[str, str],
    stranger_rsa: rsa.RSAPrivateKey,
    subtests: pytest.Subtests,
) -> None:
    """Without any IdP configured, too (only our HS256 secret is held)."""
    encodings = _public_encodings(stranger_rsa.public_key())
    for kind, (path, audience) in ENDPOINTS.items():
        for encoding in ENCODINGS:
            for kid_name, kid_header in _kid_variants().items():
                with subtests.test(kind=kind, encoding=encoding, kid=kid_name):
                    head = {"alg": "HS256", "typ": TOKEN_TYPE, **kid_header}
                    token = hs256_raw(head, claims(subjects[kind], audience), encodings[encoding])
                    assert_unauthorized(client.get(path, headers=bearer(token)))


# --- A2: asymmetric tokens from keys we do not trust ----------------------------------------


@pytest.mark.parametrize("algorithm", ["RS256", "ES256"])
def test_token_signed_by_an_unknown_key_is_refused(
    client_for: ClientFactory,
    subjects: dict[str, str],
    stranger_rsa: rsa.RSAPrivateKey,
    stranger_ec: ec.EllipticCurvePrivateKey,
    jwks_settings: Settings,
    subtests: pytest.Subtests,
    algorithm: str,
) -> None:
    idp_client = client_for(jwks_settings)
    key = stranger_rsa if algorithm == "RS256" else stranger_ec
    kids = {**_kid_variants(), "made-up": {"kid": "k1"}}
    for kind, (path, audience) in ENDPOINTS.items():
        for issuer in (IDP_ISSUER, Settings().jwt_issuer):
            payload = claims(subjects[kind], audience, iss=issuer)
            for kid_name, kid_header in kids.items():
                with subtests.test(kind=kind, issuer=issuer, kid=kid_name):
                    token = _idp_token(key, payload, algorithm=algorithm, **kid_header)
                    assert_unauthorized(idp_client.get(path, headers=bearer(token)))


# --- IdP keys: accepted for staff, and only for staff ---------------------------------------


def test_idp_token_is_accepted_for_a_provisioned_staff_user(
    client_for: ClientFactory, world: World, idp_key: rsa.RSAPrivateKey, jwks_settings: Settings
) -> None:
    idp_client = client_for(jwks_settings)
    token = _idp_token(idp_key, _idp_claims(world.investigator_subject), kid=IDP_KID)
    response = idp_client.get(PORTAL_STUDIES, headers=bearer(token))
    assert response.status_code == 200, response.text
    assert [s["id"] for s in response.json()["items"]] == [str(world.study.id)]
    # Our own HS256 tokens keep working beside the IdP's.
    assert (
        idp_client.get(PORTAL_STUDIES, headers=bearer(world.investigator_token)).status_code == 200
    )


def test_idp_pem_key_file_accepts_unkeyed_idp_tokens(
    client_for: ClientFactory, world: World, idp_key: rsa.RSAPrivateKey, pem_settings: Settings
) -> None:
    """A single PEM key needs no kid (regression: its internal id failed the kid syntax check)."""
    idp_client = client_for(pem_settings)
    token = _idp_token(idp_key, _idp_claims(world.investigator_subject))
    response = idp_client.get(PORTAL_STUDIES, headers=bearer(token))
    assert response.status_code == 200, response.text
    # ...but a header cannot name that internal id.
    named = _idp_token(idp_key, _idp_claims(world.investigator_subject), kid="pem:idp")
    assert_unauthorized(idp_client.get(PORTAL_STUDIES, headers=bearer(named)))


def test_idp_token_for_an_unprovisioned_subject_is_refused(
    client_for: ClientFactory, world: World, idp_key: rsa.RSAPrivateKey, jwks_settings: Settings
) -> None:
    idp_client = client_for(jwks_settings)
    token = _idp_token(idp_key, _idp_claims("someone-else-at-the-site"), kid=IDP_KID)
    assert_unauthorized(idp_client.get(PORTAL_STUDIES, headers=bearer(token)))


def test_idp_key_cannot_sign_participant_tokens(
    client_for: ClientFactory, world: World, idp_key: rsa.RSAPrivateKey, jwks_settings: Settings
) -> None:
    """A site's IdP signs staff tokens; it must not be able to impersonate a participant."""
    idp_client = client_for(jwks_settings)
    payload = _idp_claims(str(world.participant.id), APP_AUDIENCE, role="participant")
    token = _idp_token(idp_key, payload, kid=IDP_KID)
    assert_unauthorized(idp_client.get(APP_ME, headers=bearer(token)))


@pytest.mark.parametrize("issuer", ["mgdiary", "https://other-idp.example", None])
def test_idp_key_is_bound_to_the_idp_issuer(
    client_for: ClientFactory,
    world: World,
    idp_key: rsa.RSAPrivateKey,
    jwks_settings: Settings,
    issuer: str | None,
) -> None:
    idp_client = client_for(jwks_settings)
    payload = _idp_claims(world.investigator_subject)
    if issuer is None:
        del payload["iss"]
    else:
        payload["iss"] = issuer
    token = _idp_token(idp_key, payload, kid=IDP_KID)
    assert_unauthorized(idp_client.get(PORTAL_STUDIES, headers=bearer(token)))


def test_our_secret_cannot_sign_as_the_idp(client: TestClient, world: World) -> None:
    """Our HS256 key is bound to our issuer: claiming the IdP's issuer with it fails."""
    payload = claims(world.investigator_subject, PORTAL_AUDIENCE, iss=IDP_ISSUER)
    assert_unauthorized(client.get(PORTAL_STUDIES, headers=bearer(signed(payload))))


def test_keyring_refuses_unusable_identity_provider_files(
    tmp_path: Path, idp_key: rsa.RSAPrivateKey
) -> None:
    """Start-up fails loudly on a private key, a symmetric JWKS key or a key without kid."""
    private = tmp_path / "private.pem"
    private.write_text(_private_pem(idp_key))
    public_entry = jwk.construct(
        idp_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        "RS256",
    ).to_dict()
    no_kid = tmp_path / "no-kid.json"
    no_kid.write_text(json.dumps({"keys": [public_entry]}))
    symmetric = tmp_path / "oct.json"
    symmetric.write_text(
        json.dumps({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "k", "alg": "HS256"}]})
    )
    for path in (private, no_kid, symmetric):
        with pytest.raises(ValueError, match=r"."):
            KeyRing.from_settings(Settings(idp_issuer=IDP_ISSUER, idp_keys_file=path))


# --- A6: kid handling, remote key references, rotation --------------------------------------


BAD_KIDS = [
    "unknown-kid",
    "../../etc/passwd",
    "/dev/null",
    "mgdiary-hs256-1/../mgdiary-hs256-1",
    "MGDIARY-HS256-1",
    "mgdiary-hs256-1\x00",
    "mgdiary-hs256-1 ",
    "",
    "x" * 200,
    None,
    7,
    ["mgdiary-hs256-1"],
]


@pytest.mark.parametrize("kind", sorted(ENDPOINTS))
def test_bad_kid_is_refused(
    client: TestClient, subjects: dict[str, str], subtests: pytest.Subtests, kind: str
) -> None:
    """Signed with our real secret: only the kid is wrong (or missing)."""
    payload = claims(subjects[kind], ENDPOINTS[kind][1])
    for token_kid in BAD_KIDS:
        with subtests.test(kid=token_kid):
            head = header(kid=token_kid)
            if token_kid is None:
                del head["kid"]
            token = hs256_raw(head, payload, secret())
            assert_unauthorized(client.get(ENDPOINTS[kind][0], headers=bearer(token)))


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record (and block) any attempt to open an outbound connection."""
    attempts: list[str] = []

    def refuse(*args: object, **kwargs: object) -> object:
        attempts.append(repr(args[:1]))
        raise OSError("outbound network use in a token test")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    return attempts


REMOTE_KEY_HEADERS = {
    "jku": {"jku": "https://127.0.0.1:9/jwks.json"},
    "x5u": {"x5u": "https://127.0.0.1:9/cert.pem"},
    "jwk": {"jwk": {"kty": "oct", "k": "c2VjcmV0"}},
    "x5c": {"x5c": ["MIIBszCCAVmgAwIBAgIU"]},
    "jku-without-kid": {"jku": "https://attacker.example/jwks.json", "kid": None},
}


@pytest.mark.parametrize("kind", sorted(ENDPOINTS))
def test_remote_key_references_are_refused_without_fetching(
    client: TestClient,
    subjects: dict[str, str],
    no_network: list[str],
    subtests: pytest.Subtests,
    kind: str,
) -> None:
    """Even a token correctly signed with our secret is refused when it points at a key."""
    payload = claims(subjects[kind], ENDPOINTS[kind][1])
    for name, extra in REMOTE_KEY_HEADERS.items():
        with subtests.test(header=name):
            head = header(**extra)
            if head.get("kid") is None:
                head.pop("kid")
            token = hs256_raw(head, payload, secret())
            assert_unauthorized(client.get(ENDPOINTS[kind][0], headers=bearer(token)))
            assert no_network == []


def test_jwk_header_carrying_the_attackers_own_key_is_refused(
    client: TestClient, world: World, stranger_rsa: rsa.RSAPrivateKey, no_network: list[str]
) -> None:
    """An RS256 token with its verification key embedded in the header (CVE-2018-0114 style)."""
    public = jwk.construct(
        stranger_rsa.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        "RS256",
    ).to_dict()
    token = _idp_token(
        stranger_rsa, claims(str(world.participant.id), APP_AUDIENCE), jwk=public, kid=kid()
    )
    assert_unauthorized(client.get(APP_ME, headers=bearer(token)))
    assert no_network == []


OLD_SECRET = "the-previous-mgdiary-secret-0123456789abcdef"
NEW_SECRET = "a-brand-new-mgdiary-secret-0123456789abcdef"


def test_rotation_overlap_and_removal(client_for: ClientFactory, world: World) -> None:
    old_token = signed(
        claims(str(world.participant.id), APP_AUDIENCE), key=OLD_SECRET, kid="old-kid"
    )

    during = client_for(Settings(jwt_previous_secrets=[f"old-kid:{OLD_SECRET}"]))
    assert during.get(APP_ME, headers=bearer(old_token)).status_code == 200
    current = signed(claims(str(world.participant.id), APP_AUDIENCE))
    assert during.get(APP_ME, headers=bearer(current)).status_code == 200
    # The old secret is bound to its own kid, the current secret to the current kid.
    swapped = signed(claims(str(world.participant.id), APP_AUDIENCE), key=OLD_SECRET)
    assert_unauthorized(during.get(APP_ME, headers=bearer(swapped)))
    forged = signed(claims(str(world.participant.id), APP_AUDIENCE), kid="old-kid")
    assert_unauthorized(during.get(APP_ME, headers=bearer(forged)))

    after = client_for(Settings())
    assert_unauthorized(after.get(APP_ME, headers=bearer(old_token)))
    assert after.get(APP_ME, headers=bearer(current)).status_code == 200


def test_rotation_to_a_new_current_key(client_for: ClientFactory, world: World) -> None:
    """After promoting a new secret, tokens from the old one verify under its old kid."""
    previous = f"{kid()}:{secret()}"
    rotated = client_for(
        Settings(
            jwt_secret=NEW_SECRET,
            jwt_kid="mgdiary-hs256-2",
            jwt_previous_secrets=[previous],
        )
    )
    assert rotated.get(PORTAL_STUDIES, headers=bearer(world.investigator_token)).status_code == 200
    dropped = client_for(
        Settings(
            jwt_secret="a-brand-new-mgdiary-secret-0123456789abcdef", jwt_kid="mgdiary-hs256-2"
        )
    )
    assert_unauthorized(dropped.get(PORTAL_STUDIES, headers=bearer(world.investigator_token)))


@pytest.mark.parametrize("bad_kid", ["old/kid", "../old", "old kid"])
def test_unusable_previous_kid_fails_at_start_up(bad_kid: str) -> None:
    """A kid no header could ever name would silently refuse every old token: fail early."""
    settings = Settings(jwt_previous_secrets=[f"{bad_kid}:{OLD_SECRET}"])
    with pytest.raises(ValueError, match="key id"):
        KeyRing.from_settings(settings)
