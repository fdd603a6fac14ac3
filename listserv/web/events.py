"""Event pages: a member's own attend link from the announcement, and a list's calendar feed.

Invariants:
- The attend link's token is signed for one list, one event and one address
  (``event_mail.attend_purpose``); the GET shows the event and one POST button and changes
  nothing (mail scanners follow links); the POST calls ``events.attend`` (or, with
  ``action=leave``, ``events.leave``) as the mail door does.
- The feed (``/lists/LIST/events.ics``) lists the list's events that have not ended, with no
  attendee in it; a members-only archive does not hide it, as the announcement already went
  to the list (organisers put nothing private in an event).
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from listserv import event_ics, events, links, lists
from listserv.event_mail import attend_purpose, when_text
from listserv.models import AttendeeState, utcnow
from listserv.web import tokens
from listserv.web.context import Ctx
from listserv.web.pages import message_page, render, sentence

log = logging.getLogger("commonroom.web")
router = APIRouter()


def _bad_link(request: Request) -> HTMLResponse:
    return message_page(
        request, "This link cannot be used", "This attend link is not valid for this event. "
        "It may have been copied incompletely.", status_code=404,
        next_steps="Use the link in the announcement the list sent you, or write "
                   "\"attend N\" (N: the event's number) to the list's request address.")


@router.get("/lists/{list_name}/events/{event_id}/attend/{token}", response_class=HTMLResponse)
def attend_page(request: Request, list_name: str, event_id: int, token: str,
                context: Ctx) -> HTMLResponse:
    now = utcnow()
    with context.store.read_session() as s:
        link = tokens.read(s, context.secret, list_name, token, attend_purpose(event_id))
        event = events.find(s, event_id)
        if link is None or event is None or event.list_id != link.list_id:
            return _bad_link(request)
        rows = {r.email: r.state for r in events.attendees(s, event_id)}
        taken = sum(1 for state in rows.values() if state == AttendeeState.ATTENDING.value)
        return render(request, "event_attend.html", title=event.title, event=event,
                      when=when_text(event), email=link.email, state=rows.get(link.email),
                      open=events.is_open(event, now), list_name=link.list_name,
                      full=event.capacity is not None and taken >= event.capacity)


@router.post("/lists/{list_name}/events/{event_id}/attend/{token}", response_class=HTMLResponse)
def attend(request: Request, list_name: str, event_id: int, token: str, context: Ctx,
           action: Annotated[str, Form()] = "attend") -> HTMLResponse:
    with context.store.session() as s:
        link = tokens.read(s, context.secret, list_name, token, attend_purpose(event_id))
        event = events.find(s, event_id)
        if link is None or event is None or event.list_id != link.list_id:
            return _bad_link(request)
        if action == "leave":
            left = events.leave(s, context.cfg, event, link.email, via="web", now=utcnow())
        else:
            result = events.attend(s, context.cfg, event, link.email, via="web", now=utcnow())
        title = event.title
    if action == "leave":  # the next on the waiting list may have been told by mail
        context.wake_outbox()
        log.info("web leave: %s", left,
                 extra={"list": link.list_name, "member": link.email, "event": event_id})
        return message_page(request, title, sentence(left))
    log.info("web attend: %s", result.message,
             extra={"list": link.list_name, "member": link.email, "event": event_id})
    heading = {events.Answer.ATTENDING: "You are coming",
               events.Answer.WAITING: "You are on the waiting list"}.get(result.answer, title)
    return message_page(request, heading, sentence(result.message),
                        status_code=200 if result.ok else 409)


@router.get("/lists/{list_name}/events.ics")
def feed(list_name: str, context: Ctx) -> Response:
    now = utcnow()
    with context.store.read_session() as s:
        ml = lists.find(s, list_name)
        if ml is None or ml.id is None:
            return Response(f"There is no list called {list_name}.\n", status_code=404,
                            media_type="text/plain")
        name = ml.name
        coming = events.upcoming(s, ml.id, now)
        base = context.cfg.server.web_base_url
        body = event_ics.calendar(coming, name=f"{ml.name} events", stamp=now,
                                  urls={e.id or 0: links.events_feed_url(base, ml.name)
                                        for e in coming})
    return Response(body, media_type="text/calendar; charset=utf-8",
                    headers={"Content-Disposition": f'inline; filename="{name}-events.ics"'})
