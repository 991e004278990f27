"""Mounts every domain router: ``/app/v1`` behind participant auth, ``/portal/v1`` behind staff
auth, and the explicit public list (health, token exchange)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from app.alerts import router as alerts_router
from app.audit import router as audit_router
from app.auth.deps import get_current_staff, get_participant_principal
from app.core import health
from app.core.responses import AUTHENTICATED, errors
from app.core.routing import add_routes
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


def add_api_routes(target: APIRouter) -> None:
    """Every API route, added to ``target`` (the app's own router) directly: one flat table
    (app/core/routing.py ``add_routes``: nested ``include_router`` branches cost every request
    a walk of the tree)."""
    add_routes(target, health.router)
    add_routes(target, participants_router.auth_router, prefix=AUTH_PREFIX)
    add_routes(target, visits_router.public_router)
    add_routes(target, webhooks_router.metrics_router)

    app_auth = [Depends(get_participant_principal)]
    # The diary write routes check the participant inside their own unit of work
    # (app/core/uow.py: one transaction, no thread hops); every other app route gets the
    # participant checked against the database before it runs.
    add_routes(
        target,
        diary_router.app_write_router,
        prefix=APP_PREFIX,
        dependencies=app_auth,
        responses=AUTHENTICATED,
    )
    checked = [*app_auth, Depends(get_current_participant)]
    for router in (
        participants_router.app_router,
        diary_router.app_router,
        medications_router.app_router,
        scores_router.app_router,
        visits_router.app_router,
        safety_router.app_router,
    ):
        add_routes(target, router, prefix=APP_PREFIX, dependencies=checked, responses=AUTHENTICATED)

    portal_auth = [Depends(get_current_staff)]
    for router in (
        studies_router.portal_router,
        participants_router.portal_router,
        diary_router.portal_router,
        medications_router.portal_router,
        scores_router.portal_router,
        safety_router.portal_router,
        ae_router.portal_router,
        visits_router.portal_router,
        audit_router.portal_router,
        alerts_router.portal_router,
        webhooks_router.portal_router,
    ):
        add_routes(
            target,
            router,
            prefix=PORTAL_PREFIX,
            dependencies=portal_auth,
            responses={**AUTHENTICATED, **errors(400)},
        )
