"""Checklist A9: dangerous JWT calls, found by reading the source of ``app/``.

All JWT code lives in ``app/auth/tokens.py`` (so the library can be swapped, and so this check
has one place to look). Each checker is also run on a bad sample, to prove it can fail.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[2] / "app"
JWT_MODULE = APP / "auth" / "tokens.py"
JOSE_MODULES = ("jose", "jwt", "jwcrypto", "authlib", "joserfc")
_UNVERIFIED = re.compile(r"""verify_signature["']\s*[:=]\s*False""")


def _sources() -> dict[Path, str]:
    files = {p: p.read_text() for p in sorted(APP.rglob("*.py"))}
    assert JWT_MODULE in files, "the scan did not find the tokens module"
    assert len(files) > 10, "the scan found (almost) no application source"
    return files


def _decode_calls(tree: ast.AST) -> list[ast.Call]:
    """Calls of ``<something>.decode(...)`` on a name bound to a JWT library, or ``decode(...)``
    imported from one."""
    jwt_names = {"jwt", "jws", "jwe"}
    decode_names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in JOSE_MODULES:
            for alias in node.names:
                if alias.name in ("decode", "verify"):
                    decode_names.add(alias.asname or alias.name)
                else:
                    jwt_names.add(alias.asname or alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in JOSE_MODULES:
                    jwt_names.add((alias.asname or alias.name).split(".")[0])
    calls = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if (
            isinstance(func, ast.Attribute)
            and func.attr in ("decode", "verify")
            and isinstance(func.value, ast.Name)
            and func.value.id in jwt_names
        ) or (isinstance(func, ast.Name) and func.id in decode_names):
            calls.append(node)
    return calls


def _imports_jwt_library(tree: ast.AST) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(
            a.name.split(".")[0] in JOSE_MODULES for a in node.names
        ):
            return True
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in JOSE_MODULES:
            return True
    return False


def _violations(path: Path, source: str) -> list[str]:
    found = []
    tree = ast.parse(source)
    if path != JWT_MODULE:
        if "jwt.decode(" in source:
            found.append(f"{path}: jwt.decode( outside {JWT_MODULE.name}")
        if _imports_jwt_library(tree):
            found.append(f"{path}: imports a JWT library outside {JWT_MODULE.name}")
    for call in _decode_calls(tree):
        keywords = {k.arg for k in call.keywords}
        if "algorithms" not in keywords:
            found.append(f"{path}:{call.lineno}: decode/verify without algorithms=")
    if _UNVERIFIED.search(source):
        found.append(f"{path}: verify_signature False")
    return found


def test_jwt_decode_only_in_the_tokens_module() -> None:
    offenders = [p for p, src in _sources().items() if "jwt.decode(" in src]
    assert offenders == [JWT_MODULE]


def test_no_dangerous_jwt_calls_in_the_application() -> None:
    problems = [v for path, src in _sources().items() for v in _violations(path, src)]
    assert problems == []


def test_tokens_module_decodes_with_a_pinned_algorithm() -> None:
    calls = _decode_calls(ast.parse(JWT_MODULE.read_text()))
    assert calls, "no jwt.decode call found in the tokens module"
    for call in calls:
        algorithms = next(k.value for k in call.keywords if k.arg == "algorithms")
        # One algorithm, taken from the selected key, never from the token header.
        assert isinstance(algorithms, ast.List)
        assert len(algorithms.elts) == 1
        assert ast.unparse(algorithms.elts[0]) == "key.algorithm"


BAD_SAMPLES = {
    "decode-outside": "from jose import jwt\nclaims = jwt.decode(t, k, algorithms=['HS256'])\n",
    "no-algorithms": "from jose import jwt\nclaims = jwt.decode(t, k)\n",
    "aliased-import": "from jose import jwt as j\nclaims = j.decode(t, k)\n",
    "bare-decode": "from jose.jwt import decode\nclaims = decode(t, k)\n",
    "unverified": "opts = {'verify_signature': False}\n",
    "unverified-dq": 'opts = {"verify_signature": False}\n',
    "import-only": "import jose.jws\n",
}


@pytest.mark.parametrize("name", sorted(BAD_SAMPLES))
def test_the_checks_catch_bad_samples(name: str) -> None:
    outside = APP / "somewhere" / "else.py"
    assert _violations(outside, BAD_SAMPLES[name]), name


def test_the_checks_catch_a_missing_algorithms_in_the_tokens_module() -> None:
    source = "from jose import jwt\nclaims = jwt.decode(t, k, options={})\n"
    assert _violations(JWT_MODULE, source)


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


def test_python_jose_is_at_least_3_4_0() -> None:
    """CVE-2024-33663 (algorithm confusion) and CVE-2024-33664 (JWE bomb) are fixed in 3.4.0."""
    assert _version(importlib.metadata.version("python-jose")) >= (3, 4, 0)
    assert _version("3.3.0") < (3, 4, 0) <= _version("3.4.0")
