"""The participant's visits as an iCalendar feed (RFC 5545) at a secret, revocable URL.

Calendar apps cannot send bearer tokens, so the URL carries the credential. The token is
``<participant id hex>.<generation>.<HMAC>`` with a key derived from the service secret: nothing
secret is stored, rotating bumps the generation (old URLs answer 404), and the feed holds only
visit names and dates - no clinical details.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import uuid

from icalendar import Calendar, Event
from sqlmodel import Session

from app.core.config import Settings
from app.core.errors import NotFound
from app.core.models import utcnow
from app.participants.models import Participant
from app.visits.models import CalendarFeed, Visit

PRODID = "-//mgdiary//visit schedule//EN"


def _key(settings: Settings) -> bytes:
    return hashlib.sha256(b"mgdiary-calendar-feed:" + settings.jwt_secret.encode()).digest()


def _mac(settings: Settings, participant_id: uuid.UUID, generation: int) -> str:
    digest = hmac.new(
        _key(settings), f"{participant_id.hex}.{generation}".encode(), hashlib.sha256
    ).digest()[:18]
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def feed_of(session: Session, participant: Participant) -> CalendarFeed:
    feed = session.get(CalendarFeed, participant.id)
    if feed is None:
        feed = CalendarFeed(participant_id=participant.id)
        session.add(feed)
        session.flush()
    return feed


def token_for(settings: Settings, feed: CalendarFeed) -> str:
    return (
        f"{feed.participant_id.hex}.{feed.generation}."
        f"{_mac(settings, feed.participant_id, feed.generation)}"
    )


def rotate(session: Session, participant: Participant) -> CalendarFeed:
    feed = feed_of(session, participant)
    feed.generation += 1
    feed.rotated_at = utcnow()
    session.add(feed)
    session.flush()
    return feed


def participant_for_token(session: Session, settings: Settings, token: str) -> Participant:
    """The participant a feed token belongs to; 404 for anything forged, rotated or withdrawn."""
    try:
        pid_hex, generation_text, mac = token.split(".")
        participant_id = uuid.UUID(hex=pid_hex)
        generation = int(generation_text)
    except ValueError as exc:
        raise NotFound("No such calendar") from exc
    if not hmac.compare_digest(mac, _mac(settings, participant_id, generation)):
        raise NotFound("No such calendar")
    feed = session.get(CalendarFeed, participant_id)
    participant = session.get(Participant, participant_id)
    if (
        feed is None
        or feed.generation != generation
        or participant is None
        or participant.status == "withdrawn"
    ):
        raise NotFound("No such calendar")
    return participant


def render(visits: list[Visit], *, generated: dt.datetime | None = None) -> bytes:
    """All-day events on the participant-local target dates; UID stable per visit, SEQUENCE
    bumped on every change, cancelled visits kept with STATUS:CANCELLED."""
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("x-wr-calname", "Study visits")
    stamp = generated or utcnow()
    for visit in visits:
        event = Event()
        event.add("uid", f"{visit.id}@mgdiary")
        event.add("sequence", visit.sequence)
        event.add("dtstamp", stamp)
        event.add("dtstart", visit.target_date)
        event.add("dtend", visit.target_date + dt.timedelta(days=1))
        event.add("summary", visit.label)
        event.add(
            "description",
            f"Window: {visit.window_start.isoformat()} to {visit.window_end.isoformat()}",
        )
        event.add("status", "CANCELLED" if visit.status == "cancelled" else "CONFIRMED")
        event.add("transp", "TRANSPARENT")
        cal.add_component(event)
    return bytes(cal.to_ical())
