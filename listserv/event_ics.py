"""iCalendar (RFC 5545) for events: one event for an announcement, or a list's feed.

Invariants:
- Built with the ``icalendar`` library (folding, escaping, CRLF line ends are its job).
- Each event keeps its ``UID`` for life and raises ``SEQUENCE`` when changed, so calendar
  programs update the entry they already have instead of adding a second one.
- Times carry the organisers' zone (``TZID`` with a matching ``VTIMEZONE``), so "9.30 in Ripley"
  stays 9.30 local time whatever the reader's zone.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from listserv.models import Event, EventState

if TYPE_CHECKING:
    import icalendar

PRODID = "-//Commonroom//Events//EN"


def _vevent(event: Event, *, url: str, stamp: datetime) -> icalendar.Event:
    import icalendar

    zone = ZoneInfo(event.timezone)
    ve = icalendar.Event()
    ve.add("uid", event.uid)
    ve.add("dtstamp", stamp)
    ve.add("dtstart", event.starts_at.astimezone(zone))
    ve.add("dtend", event.ends_at.astimezone(zone))
    ve.add("summary", event.title)
    ve.add("sequence", event.sequence)
    if event.location:
        ve.add("location", event.location)
    if event.description or event.booking_url:
        text = event.description
        if event.booking_url:
            text = f"{text}\n\nBook a place: {event.booking_url}".strip()
        ve.add("description", text)
    if url:
        ve.add("url", url)
    cancelled = event.state == EventState.CANCELLED.value
    ve.add("status", "CANCELLED" if cancelled else "CONFIRMED")
    return ve


def calendar(events: Sequence[Event], *, name: str, urls: dict[int, str], stamp: datetime,
             method: str = "PUBLISH") -> bytes:
    """A VCALENDAR holding ``events`` (``urls``: event id -> its page, may be missing)."""
    # Imported here: ~3 MB that an idle server, and most lists (no events), never need.
    import icalendar

    cal = icalendar.Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("method", method)
    cal.add("x-wr-calname", name)
    for event in events:
        cal.add_component(_vevent(event, url=urls.get(event.id or 0, ""), stamp=stamp))
    cal.add_missing_timezones()
    return bytes(cal.to_ical())
