"""Registers the work that rides along with clinical writes, for every entry point.

The safety rules (app/safety/engine.py: a follow-up of every diary, clinic and dosing write) and
the webhook outbox (app/webhooks/outbox.py: the fan-out of every new alert) sit above the
writers in the import order, so they register themselves on import. ``install`` imports them;
the app factory, the CLI and the worker call it, so a write through any of them - the API, the
demo loader, a sweep - runs the rules and fills the outbox. ``app.core.followups`` refuses to
run a write without them.
"""

from __future__ import annotations


def install() -> None:
    from app.safety import engine  # noqa: F401
    from app.webhooks import outbox  # noqa: F401
