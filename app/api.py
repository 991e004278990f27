"""Mounts every domain router: ``/app/v1`` behind participant auth, ``/portal/v1`` behind staff
auth, and the explicit public list (health, token exchange)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from app.alerts import router as alerts_router
from app.audit import router as audit_router
from app.auth.deps import get_current_staff, get_participant_principal
from app.core import health
from app.core.responses import AUTHENTICATED, errors
from app.core.routing import StrictRoute
from app.diary import router as diary_router
from app.medications import router as medications_router
from app.participants import router as participants_router
from app.participants.deps import get_current_participant
from app.safety import ae_router
from app.safety import router as safety_router
from app.scores import router as scores_router
from app.studies import router as studies_router
from app.visits import router as visits_router
from app.webhooks import router as webhooks_router

APP_PREFIX = "/app/v1"
PORTAL_PREFIX = "/portal/v1"
AUTH_PREFIX = "/auth/v1"

#: Routes that answer without a bearer token. A test walks every route against this list.
PUBLIC_PATHS = frozenset(
    {
        "/healthz",
        "/readyz",
        f"{AUTH_PREFIX}/activate",
        f"{AUTH_PREFIX}/refresh",
        "/calendar/v1/{feed_token}.ics",
    }
)
#: Operator routes outside the API prefixes, behind a token of their own (not a user's).
OPERATOR_PATHS = frozenset({"/metrics"})


def build_router() -> APIRouter:
    root = APIRouter(route_class=StrictRoute)
    root.include_router(health.router)
    root.include_router(participants_router.auth_router, prefix=AUTH_PREFIX)
    root.include_router(visits_router.public_router)
    root.include_router(webhooks_router.metrics_router)

    app_api = APIRouter(
        prefix=APP_PREFIX,
        route_class=StrictRoute,
        dependencies=[Depends(get_participant_principal)],
        responses=AUTHENTICATED,
    )
    # The diary write routes check the participant inside their own unit of work
    # (app/core/uow.py: one transaction, no thread hops); every other app route gets the
    # participant checked against the database before it runs.
    app_api.include_router(diary_router.app_write_router)
    checked = APIRouter(route_class=StrictRoute, dependencies=[Depends(get_current_participant)])
    checked.include_router(participants_router.app_router)
    checked.include_router(diary_router.app_router)
    checked.include_router(medications_router.app_router)
    checked.include_router(scores_router.app_router)
    checked.include_router(visits_router.app_router)
    checked.include_router(safety_router.app_router)
    app_api.include_router(checked)
    root.include_router(app_api)

    portal_api = APIRouter(
        prefix=PORTAL_PREFIX,
        route_class=StrictRoute,
        dependencies=[Depends(get_current_staff)],
        responses={**AUTHENTICATED, **errors(400)},
    )
    portal_api.include_router(studies_router.portal_router)
    portal_api.include_router(participants_router.portal_router)
    portal_api.include_router(diary_router.portal_router)
    portal_api.include_router(medications_router.portal_router)
    portal_api.include_router(scores_router.portal_router)
    portal_api.include_router(safety_router.portal_router)
    portal_api.include_router(ae_router.portal_router)
    portal_api.include_router(visits_router.portal_router)
    portal_api.include_router(audit_router.portal_router)
    portal_api.include_router(alerts_router.portal_router)
    portal_api.include_router(webhooks_router.portal_router)
    root.include_router(portal_api)
    return root
