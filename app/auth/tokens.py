"""Every use of the JWT library lives here, so it can be swapped in one place.

python-jose is permissive by default (any algorithm, ``exp`` and ``aud`` optional) and its
algorithm-confusion fix is incomplete for DER public keys used as HMAC secrets. So this module:

- pins exactly one algorithm per configured key; the header's ``alg`` must equal it;
- selects keys by ``kid`` from the configured set only, and never fetches anything a header
  points at (``jku``, ``x5u``, ``jwk``, ``x5c`` are refused outright);
- requires ``exp``, ``iat``, ``iss``, ``aud``, ``sub`` and ``typ: at+jwt``, leeway at most 30 s.
"""

from __future__ import annotations

import json
import math
import re
import secrets
import time
from calendar import timegm
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jose import jwk, jwt
from jose.exceptions import JOSEError

from app.core.config import Settings

APP_AUDIENCE = "mgdiary-app"
PORTAL_AUDIENCE = "mgdiary-portal"
TOKEN_TYPE = "at+jwt"
MAX_TOKEN_LENGTH = 8192
_KID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
_FORBIDDEN_HEADERS = frozenset({"jku", "x5u", "jwk", "x5c", "x5t", "crit", "zip", "enc"})
_ASYMMETRIC_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "ES256", "ES384"})
_IDP_AUDIENCES = frozenset({PORTAL_AUDIENCE})
_TIME_CLAIMS = ("exp", "iat", "nbf")


class TokenError(Exception):
    """A token that must be refused; the message is safe to show to the caller."""


@dataclass(frozen=True)
class VerificationKey:
    kid: str
    algorithm: str
    key: Any
    issuer: str
    #: The audiences this key may sign for. A site's identity provider signs staff (portal)
    #: tokens only; participant tokens come from our own activation flow.
    audiences: frozenset[str] = frozenset({APP_AUDIENCE, PORTAL_AUDIENCE})


@dataclass
class KeyRing:
    """The keys we sign with and the keys we accept, each pinned to one algorithm."""

    signing: VerificationKey
    keys: dict[str, VerificationKey] = field(default_factory=dict)
    default_kid_for_unkeyed: str | None = None
    #: Tokens this ring verified, by (token, audience, leeway): see ``verify_token``.
    verified: dict[tuple[str, str, int], dict[str, Any]] = field(
        default_factory=dict, repr=False, compare=False
    )

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyRing:
        signing = VerificationKey(
            kid=settings.jwt_kid,
            algorithm="HS256",
            key=settings.jwt_secret,
            issuer=settings.jwt_issuer,
        )
        if not _KID.match(signing.kid):
            raise ValueError(f"MGDIARY_JWT_KID {signing.kid!r} is not a simple key id")
        ring = cls(signing=signing, keys={signing.kid: signing})
        for item in settings.jwt_previous_secrets:
            kid, _, secret = item.partition(":")
            if not _KID.match(kid):
                # A kid no token header can name would never verify anything: fail at start-up.
                raise ValueError(f"previous key id {kid!r} is not a simple key id")
            ring.add(
                VerificationKey(kid=kid, algorithm="HS256", key=secret, issuer=settings.jwt_issuer)
            )
        if settings.idp_keys_file is not None:
            if not settings.idp_issuer:
                raise ValueError("MGDIARY_IDP_ISSUER is required with MGDIARY_IDP_KEYS_FILE")
            for key in load_public_keys(settings.idp_keys_file, issuer=settings.idp_issuer):
                ring.add(key)
            pem_keys = [k for k in ring.keys.values() if k.kid.startswith("pem:")]
            if len(pem_keys) == 1:
                ring.default_kid_for_unkeyed = pem_keys[0].kid
        return ring

    def add(self, key: VerificationKey) -> None:
        if key.kid in self.keys:
            raise ValueError(f"duplicate key id {key.kid!r}")
        self.keys[key.kid] = key


def _algorithm_for(key_type: str, declared: str | None, curve: str | None = None) -> str:
    if declared:
        if declared not in _ASYMMETRIC_ALGORITHMS:
            raise ValueError(f"unsupported identity-provider algorithm {declared!r}")
        return declared
    if key_type == "RSA":
        return "RS256"
    if key_type == "EC":
        return {"P-256": "ES256", "P-384": "ES384"}.get(curve or "P-256", "ES256")
    raise ValueError(f"unsupported identity-provider key type {key_type!r}")


def load_public_keys(path: Path, *, issuer: str) -> list[VerificationKey]:
    """Public keys from a JWKS JSON file (each key with a ``kid``) or a single PEM file."""
    text = path.read_text()
    if text.lstrip().startswith("{"):
        document = json.loads(text)
        keys = []
        for entry in document.get("keys", []):
            if entry.get("use", "sig") != "sig":
                continue
            kid = entry.get("kid")
            if not isinstance(kid, str) or not _KID.match(kid):
                raise ValueError("every JWKS key needs a simple 'kid'")
            if "d" in entry:
                raise ValueError("the JWKS file holds a private key; give public keys only")
            algorithm = _algorithm_for(entry.get("kty", ""), entry.get("alg"), entry.get("crv"))
            jwk.construct(entry, algorithm)  # fail at start-up, not at the first request
            keys.append(
                VerificationKey(
                    kid=kid, algorithm=algorithm, key=entry, issuer=issuer, audiences=_IDP_AUDIENCES
                )
            )
        if not keys:
            raise ValueError(f"no signing keys in {path}")
        return keys
    if "PRIVATE KEY" in text:
        raise ValueError("the identity-provider key file holds a private key")
    for algorithm in ("RS256", "ES256"):
        try:
            jwk.construct(text, algorithm)
        except (JOSEError, ValueError, TypeError):
            continue
        return [
            VerificationKey(
                kid="pem:idp",
                algorithm=algorithm,
                key=text,
                issuer=issuer,
                audiences=_IDP_AUDIENCES,
            )
        ]
    raise ValueError(f"{path} is neither a JWKS file nor an RSA/EC public key in PEM")


def issue_token(
    ring: KeyRing,
    *,
    subject: str,
    audience: str,
    ttl_seconds: int,
    claims: dict[str, Any] | None = None,
    now: float | None = None,
) -> str:
    issued = int(now if now is not None else time.time())
    payload = {
        **(claims or {}),
        "sub": subject,
        "aud": audience,
        "iss": ring.signing.issuer,
        "iat": issued,
        "nbf": issued,
        "exp": issued + ttl_seconds,
        "jti": secrets.token_urlsafe(12),
    }
    return jwt.encode(
        payload,
        ring.signing.key,
        algorithm=ring.signing.algorithm,
        headers={"kid": ring.signing.kid, "typ": TOKEN_TYPE},
    )


def _select_key(ring: KeyRing, header: Any) -> VerificationKey:
    if not isinstance(header, dict):
        raise TokenError("malformed token header")
    if _FORBIDDEN_HEADERS & set(header):
        raise TokenError("token header carries a key reference that is not accepted")
    typ = header.get("typ")
    if not isinstance(typ, str) or typ.lower() not in (TOKEN_TYPE, f"application/{TOKEN_TYPE}"):
        raise TokenError("token type must be at+jwt")
    alg = header.get("alg")
    if not isinstance(alg, str):
        raise TokenError("token algorithm missing")
    kid = header.get("kid")
    if kid is None:
        # Only a single PEM identity-provider key may be used without a kid. Its internal id
        # ("pem:idp") is deliberately outside the kid syntax, so no header can name it.
        if ring.default_kid_for_unkeyed is None:
            raise TokenError("token key id missing")
        key = ring.keys[ring.default_kid_for_unkeyed]
    elif not isinstance(kid, str) or not _KID.match(kid) or kid not in ring.keys:
        raise TokenError("unknown token key id")
    else:
        key = ring.keys[kid]
    if alg != key.algorithm:
        raise TokenError("token algorithm does not match its key")
    return key


def _is_numeric_date(value: Any) -> bool:
    """RFC 7519 NumericDate: a finite JSON number (python-jose also accepts numeric strings)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return math.isfinite(value)


#: At most this many verified tokens are remembered per ring (then the memory starts again).
VERIFIED_TOKENS_MAX = 4096


def verify_token(ring: KeyRing, token: str, *, audience: str, leeway: int = 30) -> dict[str, Any]:
    """Verify signature and claims; return the claims or raise ``TokenError``.

    A phone sends the same access token with every request until it expires, and verifying it
    (python-jose: base64, JSON, HMAC and the claim checks) was 7 % of a diary entry's CPU. So a
    token that passed is remembered, by its exact text, the audience and the leeway it passed
    for: a changed signature, another audience or another leeway is verified afresh. On each
    use its time-bound claims are checked again exactly as python-jose checks them (``exp``
    against whole seconds minus the leeway, ``nbf`` plus it); ``iat`` was in the past and stays
    there. Refusals are never remembered. The ring's keys do not change after start-up (a key
    change is a restart with a new ring, and a new, empty memory)."""
    leeway = min(leeway, 30)
    memo = (token, audience, leeway)
    known = ring.verified.get(memo)
    if known is not None:
        now = timegm(datetime.now(UTC).utctimetuple())
        if int(known["exp"]) >= now - leeway and int(known.get("nbf", now)) <= now + leeway:
            return dict(known)
        ring.verified.pop(memo, None)  # expired now: verified (and refused) in full below
    claims = _verify(ring, token, audience=audience, leeway=leeway)
    if len(ring.verified) >= VERIFIED_TOKENS_MAX:
        ring.verified.clear()
    ring.verified[memo] = claims
    return dict(claims)


def _verify(ring: KeyRing, token: str, *, audience: str, leeway: int) -> dict[str, Any]:
    if not token or len(token) > MAX_TOKEN_LENGTH or token.count(".") != 2 or not token.isascii():
        raise TokenError("malformed token")
    try:
        header = jwt.get_unverified_header(token)
    except (JOSEError, ValueError, TypeError, UnicodeError) as exc:
        raise TokenError("malformed token") from exc
    key = _select_key(ring, header)
    if audience not in key.audiences:
        raise TokenError("token key may not sign for this audience")
    options = {
        "verify_signature": True,
        "verify_aud": True,
        "verify_iss": True,
        "verify_exp": True,
        "verify_nbf": True,
        "verify_iat": True,
        "require_exp": True,
        "require_iat": True,
        "require_aud": True,
        "require_iss": True,
        "require_sub": True,
        "leeway": min(leeway, 30),
    }
    try:
        claims = jwt.decode(
            token,
            key.key,
            algorithms=[key.algorithm],
            audience=audience,
            issuer=key.issuer,
            options=options,
        )
    except (JOSEError, ValueError, TypeError, KeyError, UnicodeError, ArithmeticError) as exc:
        # ArithmeticError: python-jose calls int() on exp/iat/nbf, and int(inf) overflows.
        raise TokenError("token signature or claims are not valid") from exc
    if not isinstance(claims, dict):
        raise TokenError("malformed token claims")
    for name in _TIME_CLAIMS:
        if name in claims and not _is_numeric_date(claims[name]):
            raise TokenError(f"token claim {name} must be a number")
    current = time.time()
    iat = claims.get("iat")
    if not isinstance(iat, int | float) or iat > current + min(leeway, 30):
        raise TokenError("token issued in the future")
    aud = claims.get("aud")
    if isinstance(aud, list) and len(aud) != 1:
        raise TokenError("token must name exactly one audience")
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub or len(sub) > 255:
        raise TokenError("token subject missing")
    return claims
