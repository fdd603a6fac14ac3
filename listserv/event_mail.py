"""The mail events send: the announcement (a list post) and the notices to those coming.

Invariants:
- The announcement is a complete post from the list's own address: a text part, a 7-bit part
  with the member's own attend link, and the event as an RFC 5545 ``.ics`` attachment. The
  link's token is a marker (``decorate.member_token_marker``) that delivery swaps for each
  member's signed token, so every copy carries its reader's link and the stored post none.
- The attend-link part is 7-bit US-ASCII on purpose: the swap is a byte replacement, which
  quoted-printable or base64 would break.
- Notices go from the request address, like every other notice (``listserv.notices``).
"""

from __future__ import annotations

from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from zoneinfo import ZoneInfo

from listserv import links, names, notices
from listserv.addresses import Kind
from listserv.decorate import ListInfo, member_token_marker
from listserv.event_ics import calendar
from listserv.models import Event

FROM_NAME_SUFFIX = "events"


def attend_purpose(event_id: int) -> str:
    """The signed-token purpose of one event's attend links: one event's link cannot serve
    another, nor unsubscribe anybody."""
    return f"attend-{event_id}"


def when_text(event: Event) -> str:
    """"Thursday 3 September 2026, 09:30 to 12:30 (Europe/London)"."""
    zone = ZoneInfo(event.timezone)
    start, end = event.starts_at.astimezone(zone), event.ends_at.astimezone(zone)
    day = f"{start:%A} {start.day} {start:%B %Y}"
    if end.date() == start.date():
        return f"{day}, {start:%H:%M} to {end:%H:%M} ({event.timezone})"
    return f"{day} {start:%H:%M} to {end:%A} {end.day} {end:%B %Y} {end:%H:%M} ({event.timezone})"


def details(event: Event, taken: int | None = None) -> str:
    lines = [event.title, "", f"When:  {when_text(event)}"]
    if event.location:
        lines.append(f"Where: {event.location}")
    if event.capacity is not None:
        left = "" if taken is None else f", {max(event.capacity - taken, 0)} left"
        lines.append(f"Places: {event.capacity}{left} (then a waiting list)")
    if event.booking_url:
        lines.append(f"Book a place: {event.booking_url}")
    if event.description:
        lines += ["", event.description.rstrip()]
    return "\n".join(lines) + "\n"


def ics(event: Event, info: ListInfo, *, now: datetime, method: str = "PUBLISH") -> bytes:
    return calendar([event], name=f"{info.name} events", method=method, stamp=now,
                    urls={event.id or 0: links.events_feed_url(info.web_base_url, info.name)})


def _attach_ics(msg: EmailMessage, event: Event, data: bytes, method: str) -> None:
    msg.add_attachment(data, maintype="text", subtype="calendar",
                       filename=f"event-{event.id}.ics", params={"method": method})


def announcement(info: ListInfo, event: Event, *, now: datetime) -> bytes:
    """The post announcing ``event`` to the list (stored, archived and sent like any post)."""
    assert event.id is not None
    msg = EmailMessage(policy=notices.WIRE)
    msg["From"] = names.mailbox(f"{info.name} {FROM_NAME_SUFFIX}", info.post_address)
    msg["To"] = info.post_address
    msg["Subject"] = f"Event: {event.title}"
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = make_msgid(domain=info.domain)
    msg.set_content(details(event) + "\nThe attached calendar file adds it to your calendar.\n")
    url = links.attend_url(info.web_base_url, info.name, event.id,
                           member_token_marker(attend_purpose(event.id)))
    msg.add_attachment(
        f"Coming? Say so with your own link (it is only for you):\n{url}\n\n"
        f"or write \"attend {event.id}\" to {info.address(Kind.REQUEST)}"
        f" (\"leave {event.id}\" if you can no longer come).\n",
        disposition="inline", cte="7bit")
    _attach_ics(msg, event, ics(event, info, now=now), "PUBLISH")
    return msg.as_bytes()


def moved_up(info: ListInfo, event: Event, to: str) -> bytes:
    body = (f"A place has come free and it is yours: you are now on the list for\n\n"
            f"{details(event)}\n"
            f"If you can no longer come, write \"leave {event.id}\" to "
            f"{info.address(Kind.REQUEST)} so the next person can have it.\n")
    return notices.notice(info, to, f"[{info.name}] You have a place: {event.title}",
                          body).as_bytes()


def reminder(info: ListInfo, event: Event, to: str) -> bytes:
    body = (f"A reminder: you said you are coming to\n\n{details(event)}\n"
            f"If you can no longer come, write \"leave {event.id}\" to "
            f"{info.address(Kind.REQUEST)}.\n")
    return notices.notice(info, to, f"[{info.name}] Tomorrow: {event.title}", body).as_bytes()


def changed(info: ListInfo, event: Event, to: str, what: str, *, now: datetime) -> bytes:
    body = (f"The organisers have changed an event you are on the list for ({what}).\n"
            f"It is now:\n\n{details(event)}\nThe attached calendar file updates your "
            "calendar.\n")
    msg = notices.notice(info, to, f"[{info.name}] Changed: {event.title}", body)
    _attach_ics(msg, event, ics(event, info, now=now, method="REQUEST"), "REQUEST")
    return msg.as_bytes()


def cancelled(info: ListInfo, event: Event, to: str, *, now: datetime) -> bytes:
    body = (f"The organisers have cancelled an event you were on the list for:\n\n"
            f"{details(event)}\nThe attached calendar file removes it from your calendar.\n")
    msg = notices.notice(info, to, f"[{info.name}] Cancelled: {event.title}", body)
    _attach_ics(msg, event, ics(event, info, now=now, method="CANCEL"), "CANCEL")
    return msg.as_bytes()
