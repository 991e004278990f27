"""Webhook endpoints for admins: registration (SSRF guard, secret shown once), rotation, ping,
the delivery log and redelivery; and the outbox rows written with the alert (issue 7 items 1,
3, 4; checklist D21, D24, E29)."""

from __future__ import annotations

import functools
import socket
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import pytest
import time_machine
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.alerts.models import Alert
from app.audit.models import AuditEvent
from app.core.config import get_settings
from app.webhooks import service as webhooks_service
from app.webhooks import ssrf
from app.webhooks.models import WebhookDelivery, WebhookEndpoint
from tests.factories import bearer, create_participant, create_study, participant_token, staff_token

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
PUBLIC_IP = "93.184.216.34"
URL = "https://receiver.example.org/hooks/mgdiary"


def _public(host: str, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
    if host in ("receiver.example.org", "other.example.org"):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (PUBLIC_IP, port))]
    if host == "internal.example.org":
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.7", port))]
    raise socket.gaierror(socket.EAI_NONAME, "not known")


@pytest.fixture(autouse=True)
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        webhooks_service.ssrf, "check_url", functools.partial(ssrf.check_url, resolve=_public)
    )


@pytest.fixture
def world(session: Session) -> Iterator[dict[str, Any]]:
    with time_machine.travel(NOW, tick=True):
        study, sites = create_study(session)
        participant, _ = create_participant(
            session, study=study, site=sites["X"], enrolled_on=date(2026, 11, 2)
        )
        yield {
            "study": study,
            "participant": participant,
            "admin": bearer(staff_token(session, role="admin", study=study)),
            "inv": bearer(staff_token(session, role="investigator", study=study)),
            "stranger": bearer(staff_token(session, role="admin", study=create_study(session)[0])),
            "app": bearer(participant_token(participant, ttl=3600)),
        }


def create(client: TestClient, world: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    body = {
        "study_id": str(world["study"].id),
        "url": URL,
        "event_types": ["safety.signal.raised", "safety.signal.escalated"],
        **overrides,
    }
    answer = client.post("/portal/v1/webhook-endpoints", json=body, headers=world["admin"])
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


def test_create_shows_the_secret_once_and_is_audited(
    client: TestClient, session: Session, world: dict[str, Any]
) -> None:
    created = create(client, world, description="Safety desk pager")
    assert created["secret"].startswith("whsec_")
    assert len(created["secret"]) > len("whsec_") + 32
    url = f"/portal/v1/webhook-endpoints/{created['id']}"
    shown = client.get(url, headers=world["admin"]).json()
    assert "secret" not in shown
    assert shown["enabled"] is True
    listed = client.get("/portal/v1/webhook-endpoints", headers=world["admin"]).json()["items"]
    assert [e["id"] for e in listed] == [created["id"]]
    assert all("secret" not in e for e in listed)
    actions = session.exec(
        select(AuditEvent.action).where(AuditEvent.entity_id == created["id"])
    ).all()
    assert list(actions) == ["webhook_endpoint.create"]


@pytest.mark.parametrize(
    ("url", "rule"),
    [
        ("http://receiver.example.org/hook", "url_scheme"),
        ("https://receiver.example.org:8443/hook", "url_port"),
        ("https://127.0.0.1/hook", "url_private_address"),
        ("https://internal.example.org/hook", "url_private_address"),
        ("https://good@receiver.example.org/hook", "url_userinfo"),
        ("https://2130706433/hook", "url_ip_literal_form"),
        ("https://nowhere.example.org/hook", "url_unresolvable"),
        ("file:///etc/passwd", "url_scheme"),
    ],
)
def test_unsafe_urls_are_422_naming_the_rule(
    client: TestClient, world: dict[str, Any], url: str, rule: str
) -> None:
    body = {"study_id": str(world["study"].id), "url": url, "event_types": ["visit.missed"]}
    answer = client.post("/portal/v1/webhook-endpoints", json=body, headers=world["admin"])
    assert answer.status_code == 422, answer.text
    [error] = answer.json()["errors"]
    assert error["loc"] == ["body", "url"]
    assert error["type"] == rule


def test_only_the_studys_admins_manage_endpoints(client: TestClient, world: dict[str, Any]) -> None:
    body = {"study_id": str(world["study"].id), "url": URL, "event_types": ["visit.missed"]}
    assert (
        client.post("/portal/v1/webhook-endpoints", json=body, headers=world["inv"]).status_code
        == 403
    )
    assert (
        client.post(
            "/portal/v1/webhook-endpoints", json=body, headers=world["stranger"]
        ).status_code
        == 404
    )
    created = create(client, world)
    url = f"/portal/v1/webhook-endpoints/{created['id']}"
    assert client.get(url, headers=world["stranger"]).status_code == 404
    assert client.get(url, headers=world["inv"]).status_code == 403
    unknown = client.post(
        "/portal/v1/webhook-endpoints",
        json={**body, "event_types": ["participant.gossip"]},
        headers=world["admin"],
    )
    assert unknown.status_code == 422


def test_rotation_keeps_the_old_secret_for_the_overlap(
    client: TestClient, session: Session, world: dict[str, Any]
) -> None:
    created = create(client, world)
    url = f"/portal/v1/webhook-endpoints/{created['id']}/rotate-secret"
    rotated = client.post(url, json={"overlap_seconds": 3600}, headers=world["admin"]).json()
    assert rotated["secret"] != created["secret"]
    stored = session.get(WebhookEndpoint, uuid.UUID(created["id"]))
    assert stored is not None
    session.refresh(stored)
    assert stored.previous_secret == created["secret"]
    assert stored.previous_secret_expires_at is not None
    assert (stored.previous_secret_expires_at - datetime.now(UTC)).total_seconds() > 3500


def test_disable_and_enable_with_a_reason(
    client: TestClient, session: Session, world: dict[str, Any]
) -> None:
    created = create(client, world)
    url = f"/portal/v1/webhook-endpoints/{created['id']}"
    off = client.patch(
        url, json={"enabled": False, "reason": "receiver moved"}, headers=world["admin"]
    )
    assert off.json()["disabled_reason"] == "admin"
    again = client.patch(url, json={"enabled": False, "reason": "again"}, headers=world["admin"])
    assert again.status_code == 409
    on = client.patch(
        url, json={"enabled": True, "reason": "receiver back"}, headers=world["admin"]
    )
    assert (on.json()["enabled"], on.json()["disabled_reason"]) == (True, None)
    missing = client.patch(url, json={"enabled": False}, headers=world["admin"])
    assert missing.status_code == 422


def test_a_fever_writes_one_outbox_row_per_matching_endpoint_with_the_alert(
    client: TestClient, session: Session, world: dict[str, Any]
) -> None:
    wanted = create(client, world)
    create(client, world, url="https://other.example.org/x", event_types=["visit.missed"])
    fever = {
        "id": str(uuid.uuid4()),
        "kind": "vitals",
        "recorded_at": "2026-11-22T08:00:00+01:00",
        "time_zone": "Europe/Berlin",
        "data": {"temperature_c": 38.7},
    }
    answer = client.post("/app/v1/diary/entries", json=fever, headers=world["app"])
    assert answer.status_code == 201, answer.text
    [alert] = session.exec(
        select(Alert).where(Alert.participant_id == world["participant"].id)
    ).all()
    rows = session.exec(select(WebhookDelivery).where(WebhookDelivery.alert_id == alert.id)).all()
    assert [(str(r.endpoint_id), r.event_type, r.status) for r in rows] == [
        (wanted["id"], "safety.signal.raised", "pending")
    ]
    assert f'"alert_id":"{alert.id}"' in rows[0].body
    assert "38.7" in rows[0].body


def test_ping_log_and_redeliver(
    client: TestClient, session: Session, world: dict[str, Any]
) -> None:
    created = create(client, world)
    base = f"/portal/v1/webhook-endpoints/{created['id']}"
    ping = client.post(f"{base}/ping", headers=world["admin"])
    assert ping.status_code == 202
    delivery_id = ping.json()["delivery_id"]
    assert ping.json()["webhook_id"] == f"msg_{uuid.UUID(delivery_id).hex}"
    log = client.get(f"{base}/deliveries", headers=world["admin"]).json()["items"]
    assert [(d["id"], d["event_type"], d["status"]) for d in log] == [
        (delivery_id, "webhook.ping", "pending")
    ]
    row = session.get(WebhookDelivery, uuid.UUID(delivery_id))
    assert row is not None
    row.status = "failed"
    session.add(row)
    session.flush()
    again = client.post(
        f"/portal/v1/webhook-deliveries/{delivery_id}/redeliver", headers=world["admin"]
    )
    assert again.status_code == 200
    assert again.json()["status"] == "pending"
    assert again.json()["webhook_id"] == ping.json()["webhook_id"]
    assert (
        client.post(
            f"/portal/v1/webhook-deliveries/{delivery_id}/redeliver", headers=world["inv"]
        ).status_code
        == 403
    )


def test_metrics_need_their_token(
    client: TestClient, world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert client.get("/metrics").status_code == 404
    settings = get_settings().model_copy(update={"metrics_token": "m" * 24})
    client.app.dependency_overrides[get_settings] = lambda: settings  # type: ignore[attr-defined]
    try:
        assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 404
        create(client, world)
        client.post(
            f"/portal/v1/webhook-endpoints/{create(client, world)['id']}/ping",
            headers=world["admin"],
        )
        answer = client.get("/metrics", headers={"Authorization": f"Bearer {'m' * 24}"})
        assert answer.status_code == 200
        text = answer.text
        assert 'mgdiary_webhook_deliveries{status="pending"} 1.0' in text
        assert "mgdiary_webhook_queue_depth 1.0" in text
        assert "mgdiary_webhook_oldest_pending_age_seconds" in text
    finally:
        client.app.dependency_overrides.pop(get_settings, None)  # type: ignore[attr-defined]
