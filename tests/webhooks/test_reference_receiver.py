"""The reference receiver published to sites (scripts/webhook_receiver.py; checklist D25): a
replay after six minutes is refused, a redelivery of the same webhook-id within the window is
acknowledged and processed once, a wrong signature is refused."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from app.webhooks import signing

ROOT = Path(__file__).resolve().parents[2]


def _module() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "webhook_receiver", ROOT / "scripts" / "webhook_receiver.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _signed(secret: str, msg_id: str, at: float) -> tuple[bytes, dict[str, str]]:
    body = '{"data":{"alert_id":"a1"},"timestamp":"2026-11-22T12:00:00Z","type":"visit.missed"}'
    return body.encode(), signing.headers([secret], msg_id, int(at), body)


def test_duplicates_are_acknowledged_and_processed_once() -> None:
    secret = signing.new_secret()
    processed: list[dict[str, Any]] = []
    receiver = _module().Receiver(secret, processed.append)
    body, headers = _signed(secret, "msg_1", time.time())
    assert receiver.handle(body, headers) == 204
    assert receiver.handle(body, headers) == 204
    assert [e["type"] for e in processed] == ["visit.missed"]


def test_a_stale_replay_and_a_wrong_secret_are_refused() -> None:
    secret = signing.new_secret()
    processed: list[dict[str, Any]] = []
    receiver = _module().Receiver(secret, processed.append)
    body, headers = _signed(secret, "msg_2", time.time() - 6 * 60)
    assert receiver.handle(body, headers) == 401
    body, headers = _signed(signing.new_secret(), "msg_3", time.time())
    assert receiver.handle(body, headers) == 401
    assert processed == []


def test_a_failed_processing_lets_the_retry_through() -> None:
    secret = signing.new_secret()
    calls: list[str] = []

    def flaky(event: dict[str, Any]) -> None:
        calls.append(event["type"])
        if len(calls) == 1:
            raise RuntimeError("safety database down")

    receiver = _module().Receiver(secret, flaky)
    body, headers = _signed(secret, "msg_4", time.time())
    assert receiver.handle(body, headers) == 503
    assert receiver.handle(body, headers) == 204
    assert calls == ["visit.missed", "visit.missed"]
