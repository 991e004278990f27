"""Hand-built tokens and the assertions every refusal must pass.

Tokens are assembled byte by byte (not with the library under test) wherever the library would
refuse to build the attack: ``alg: none``, HMAC with a PEM public key, broken base64.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

from jose import jwt
from starlette.responses import Response

from app.auth.tokens import APP_AUDIENCE, PORTAL_AUDIENCE, TOKEN_TYPE
from app.core.config import get_settings

PROBLEM = "application/problem+json"
APP_ME = "/app/v1/me"
PORTAL_STUDIES = "/portal/v1/studies"
#: (path, audience) of one participant route and one staff route.
ENDPOINTS = {"app": (APP_ME, APP_AUDIENCE), "portal": (PORTAL_STUDIES, PORTAL_AUDIENCE)}
DROP: Any = object()


def secret() -> str:
    return get_settings().jwt_secret


def kid() -> str:
    return get_settings().jwt_kid


def b64url(data: bytes | str) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def segment(value: Any) -> str:
    return b64url(json.dumps(value, separators=(",", ":")))


def claims(subject: str, audience: str, *, now: float | None = None, **overrides: Any) -> dict:
    """Valid claims for ``audience``; an override set to ``DROP`` removes that claim."""
    issued = int(now if now is not None else time.time())
    base: dict[str, Any] = {
        "sub": subject,
        "aud": audience,
        "iss": get_settings().jwt_issuer,
        "iat": issued,
        "nbf": issued,
        "exp": issued + 600,
    }
    if audience == APP_AUDIENCE:
        base["role"] = "participant"
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not DROP}


def header(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"alg": "HS256", "typ": TOKEN_TYPE, "kid": kid()}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not DROP}


def hs256_raw(head: Any, payload: Any, key: bytes | str) -> str:
    """HS256 over whatever header and payload JSON we like, signed by hand with ``key``."""
    key_bytes = key.encode() if isinstance(key, str) else key
    signing_input = f"{segment(head)}.{segment(payload)}"
    mac = hmac.new(key_bytes, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(mac)}"


def signed(payload: dict[str, Any], *, key: str | None = None, **head: Any) -> str:
    """A token signed by the library with our secret (or ``key``) and the given header."""
    headers = header(**head)
    algorithm = headers.pop("alg")
    return jwt.encode(payload, key or secret(), algorithm=algorithm, headers=headers)


def assert_unauthorized(response: Response, *, www_authenticate: bool = True) -> dict[str, Any]:
    """401 problem+json with a Bearer challenge and no stack trace; returns the body."""
    assert response.status_code == 401, (response.status_code, response.text[:500])
    assert response.headers["content-type"].startswith(PROBLEM), response.headers
    body = response.json()
    assert {"type", "title", "status", "code"} <= set(body), body
    assert body["status"] == 401
    assert "Traceback" not in response.text
    if www_authenticate:
        assert response.headers.get("www-authenticate", "").startswith("Bearer"), response.headers
    return body
