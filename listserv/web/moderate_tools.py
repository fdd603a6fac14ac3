"""A list's events, competitions and scheduled posts on the web, for its moderators:
``/moderate/lists/LIST/`` lists what is coming (events, open competitions, scheduled posts)
with a form to create each, a button to cancel each and a form to change each scheduled
post; ``/moderate/lists/LIST/events/ID`` shows who is coming (attending, then waiting) and a
form to change the event. A thin door: fields are checked by ``listserv.mod_tools`` (the
services' own rules) and the services do the rest, as for the CLI and the mail door.

Invariants:
- Every request checks in the store that the signed-in viewer moderates or owns that list
  (others get 403, strangers 401), and that the item belongs to it (else 404).
- Every POST carries the session's CSRF token (``listserv.web.session``); without it nothing
  is done (403). GET pages change nothing.
- Post/Redirect/Get: a POST that worked answers 303 to the list's page with a fixed notice
  (``?done=CODE&id=N``, never text from the request); one that did not shows the page again
  with 400, each problem next to its field and the typed values kept.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session

from listserv import (
    competitions,
    discord_events,
    events,
    held_view,
    lists,
    mod_tools,
    scheduled_posts,
)
from listserv.event_mail import when_text
from listserv.mod_tools import Tool
from listserv.models import (
    Competition,
    EventState,
    MailingList,
    ScheduledPost,
    ScheduledState,
    utcnow,
)
from listserv.web.context import Ctx
from listserv.web.moderate import _not_yours, _sign_in_first
from listserv.web.pages import message_page, render
from listserv.web.session import csrf_ok, csrf_token, viewer

log = logging.getLogger("commonroom.web")
router = APIRouter()

DONE = {"event-added": "Event {id} is announced to the list.",
        "event-changed": "Event {id} is changed; those coming are told.",
        "event-changed-start-kept": "Event {id} is changed; those coming are told. Note: "
                                    f"{discord_events.START_KEPT}.",
        "event-cancelled": "Event {id} is cancelled; those coming or waiting are told.",
        "competition-started": "Competition {id} is announced to the list.",
        "competition-cancelled": "Competition {id} is cancelled.",
        "post-scheduled": "Scheduled post {id} is saved.",
        "post-changed": "Scheduled post {id} is changed.",
        "post-cancelled": "Scheduled post {id} is cancelled."}
ADDED = {Tool.EVENT: "event-added", Tool.COMPETITION: "competition-started",
         Tool.SCHEDULE: "post-scheduled"}


async def _form(request: Request) -> dict[str, str]:
    """The POSTed fields as text (read in the event loop; the route runs in a thread)."""
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str)}


Fields = Annotated[dict[str, str], Depends(_form)]


@dataclass(frozen=True)
class Who:
    email: str
    list_id: int
    list_name: str


def _guard(request: Request, context: Ctx, s: Session, list_name: str,
           form: Mapping[str, str] | None = None) -> Who | Response:
    """The moderator looking at ``list_name``, or the page refusing them."""
    email = viewer(request)
    if email is None:
        return _sign_in_first(request)
    if form is not None and not csrf_ok(request, form.get("csrf", "")):
        log.warning("tools form without a valid CSRF token", extra={"member": email})
        return message_page(request, "This form has expired", "Nothing was done: the form did "
                            "not come from your current session.", status_code=403,
                            next_steps="Open the page again and use its forms.")
    ml = lists.find(s, list_name)
    if ml is None or ml.id is None:
        return message_page(request, "Not found", f"There is no list called {list_name}.",
                            status_code=404)
    if not held_view.may_moderate(s, ml.id, email):
        return _not_yours(request, email)
    return Who(email, ml.id, ml.name)


def _the_list(s: Session, who: Who) -> MailingList:
    ml = s.get(MailingList, who.list_id)
    assert ml is not None
    return ml


def _done(who: Who, code: str, item_id: int | None) -> RedirectResponse:
    return RedirectResponse(f"/moderate/lists/{who.list_name}/?done={code}&id={item_id or 0}",
                            status_code=303)


def _tools_page(request: Request, s: Session, who: Who, *, status_code: int = 200,
                failed: Tool | None = None, values: Mapping[str, str] | None = None,
                errors: Mapping[str, str] | None = None,
                changing: int | None = None) -> HTMLResponse:
    """The list's page; ``failed`` names the create form and ``changing`` the scheduled post
    whose change form shows ``values`` and ``errors``."""
    ml = _the_list(s, who)
    now = utcnow()
    coming = [(e, when_text(e), events.count_attending(s, e.id or 0))
              for e in events.upcoming(s, who.list_id, now)]
    comps = [(c, mod_tools.local_text(c.closes_at, ml.timezone), len(
        competitions.entries(s, c.id or 0))) for c in competitions.open_ones(s, who.list_id)]
    posts = [(p, mod_tools.local_text(p.next_at, ml.timezone),
              values if p.id == changing and values is not None
              else mod_tools.post_values(p, ml.timezone))
             for p in scheduled_posts.upcoming(s, who.list_id)]
    done = request.query_params.get("done", "")
    item = request.query_params.get("id", "0")
    notice = DONE[done].format(id=int(item)) if done in DONE and item.isdigit() else ""
    return render(request, "moderate_tools.html", status_code,
                  title=f"Events, competitions and scheduled posts: {ml.name}",
                  list_name=ml.name, timezone=ml.timezone, email=who.email,
                  csrf=csrf_token(request), events=coming, competitions=comps, posts=posts,
                  notice=notice, failed=failed.value if failed else "",
                  values=values or {}, errors=errors or {}, changing=changing or 0)


@router.get("/moderate/lists/{list_name}/", response_class=HTMLResponse)
def tools_page(request: Request, list_name: str, context: Ctx) -> Response:
    with context.store.read_session() as s:
        who = _guard(request, context, s, list_name)
        if not isinstance(who, Who):
            return who
        return _tools_page(request, s, who)


def _create(request: Request, context: Ctx, list_name: str, tool: Tool,
            form: Mapping[str, str]) -> Response:
    with context.store.session() as s:
        who = _guard(request, context, s, list_name, form)
        if not isinstance(who, Who):
            return who
        ml = _the_list(s, who)
        now = utcnow()
        checked = mod_tools.check(s, ml, tool, form, moderator=who.email, now=now)
        if not checked.ok:
            return _tools_page(request, s, who, status_code=400, failed=tool, values=form,
                               errors=checked.errors)
        done = mod_tools.create(s, context.cfg, ml, tool, checked.values, moderator=who.email,
                                actor=f"web:{who.email}", now=now)
    log.info("web %s: %s", tool.value, done.message,
             extra={"list": who.list_name, "member": who.email})
    context.wake_outbox()
    return _done(who, ADDED[tool], done.item_id)


@router.post("/moderate/lists/{list_name}/events", response_class=HTMLResponse)
def add_event(request: Request, list_name: str, context: Ctx, form: Fields) -> Response:
    return _create(request, context, list_name, Tool.EVENT, form)


@router.post("/moderate/lists/{list_name}/competitions", response_class=HTMLResponse)
def start_competition(request: Request, list_name: str, context: Ctx, form: Fields) -> Response:
    return _create(request, context, list_name, Tool.COMPETITION, form)


@router.post("/moderate/lists/{list_name}/schedule", response_class=HTMLResponse)
def add_post(request: Request, list_name: str, context: Ctx, form: Fields) -> Response:
    return _create(request, context, list_name, Tool.SCHEDULE, form)


def _event_page(request: Request, s: Session, who: Who, event_id: int, *,
                status_code: int = 200, values: Mapping[str, str] | None = None,
                errors: Mapping[str, str] | None = None) -> HTMLResponse:
    event = events.find(s, event_id)
    if event is None or event.list_id != who.list_id:
        return message_page(request, "Not found", f"{who.list_name} has no event {event_id}.",
                            status_code=404)
    return render(request, "moderate_event.html", status_code, title=event.title,
                  event=event, when=when_text(event), list_name=who.list_name,
                  attendees=events.attendees(s, event_id), csrf=csrf_token(request),
                  open=event.state == EventState.SCHEDULED.value,
                  values=values or mod_tools.event_values(event), errors=errors or {})


@router.get("/moderate/lists/{list_name}/events/{event_id}", response_class=HTMLResponse)
def event_page(request: Request, list_name: str, event_id: int, context: Ctx) -> Response:
    with context.store.read_session() as s:
        who = _guard(request, context, s, list_name)
        if not isinstance(who, Who):
            return who
        return _event_page(request, s, who, event_id)


@router.post("/moderate/lists/{list_name}/events/{event_id}/change",
             response_class=HTMLResponse)
def change_event(request: Request, list_name: str, event_id: int, context: Ctx,
                 form: Fields) -> Response:
    with context.store.session() as s:
        who = _guard(request, context, s, list_name, form)
        if not isinstance(who, Who):
            return who
        event = events.find(s, event_id)
        if event is None or event.list_id != who.list_id \
                or event.state != EventState.SCHEDULED.value:
            return message_page(request, "Not found", f"{who.list_name} has no event "
                                f"{event_id} to change.", status_code=404)
        now = utcnow()
        checked = mod_tools.check(s, _the_list(s, who), Tool.EVENT, form, moderator=who.email,
                                  now=now)
        if not checked.ok:
            return _event_page(request, s, who, event_id, status_code=400, values=form,
                               errors=checked.errors)
        old_start = event.starts_at
        events.change(s, context.cfg, event, mod_tools.event_draft(checked.values),
                      actor=f"web:{who.email}", now=now)
        kept = discord_events.start_kept(event.discord_event_id, old_start, event.starts_at, now)
    context.wake_outbox()
    return _done(who, "event-changed-start-kept" if kept else "event-changed", event_id)


@router.post("/moderate/lists/{list_name}/schedule/{post_id}/change",
             response_class=HTMLResponse)
def change_post(request: Request, list_name: str, post_id: int, context: Ctx,
                form: Fields) -> Response:
    with context.store.session() as s:
        who = _guard(request, context, s, list_name, form)
        if not isinstance(who, Who):
            return who
        ml = _the_list(s, who)
        row = mod_tools.open_item(s, ml, Tool.SCHEDULE, post_id)
        if not isinstance(row, ScheduledPost):
            return message_page(request, "Not found", f"{who.list_name} has no scheduled post "
                                f"{post_id} to change.", status_code=404)
        now = utcnow()
        checked = mod_tools.check_change(s, ml, row, form, moderator=who.email, now=now)
        if not checked.ok:
            return _tools_page(request, s, who, status_code=400, changing=post_id,
                               values=form, errors=checked.errors)
        mod_tools.change(s, context.cfg, ml, row, checked.values, actor=f"web:{who.email}",
                         now=now)
    return _done(who, "post-changed", post_id)


def _gone(request: Request, who: Who, what: str) -> HTMLResponse:
    return message_page(request, "Nothing to cancel", f"{who.list_name} has no {what} that "
                        "can still be cancelled.", status_code=404,
                        next_steps=f"See /moderate/lists/{who.list_name}/")


@router.post("/moderate/lists/{list_name}/{kind}/{item_id}/cancel",
             response_class=HTMLResponse)
def cancel(request: Request, list_name: str, kind: str, item_id: int, context: Ctx,
           form: Fields) -> Response:
    if kind not in ("events", "competitions", "schedule"):
        return message_page(request, "Not found", "There is no page at this address.",
                            status_code=404)
    with context.store.session() as s:
        who = _guard(request, context, s, list_name, form)
        if not isinstance(who, Who):
            return who
        actor = f"web:{who.email}"
        if kind == "events":
            event = events.find(s, item_id)
            if event is None or event.list_id != who.list_id \
                    or event.state != EventState.SCHEDULED.value:
                return _gone(request, who, f"event {item_id}")
            events.cancel(s, context.cfg, event, actor=actor, now=utcnow())
            code = "event-cancelled"
        elif kind == "competitions":
            comp = s.get(Competition, item_id)
            if comp is None or comp.list_id != who.list_id or not competitions.cancel(
                    s, context.cfg, item_id, actor=actor):
                return _gone(request, who, f"open competition {item_id}")
            code = "competition-cancelled"
        else:
            row = s.get(ScheduledPost, item_id)
            if row is None or row.list_id != who.list_id \
                    or row.state != ScheduledState.ACTIVE.value:
                return _gone(request, who, f"scheduled post {item_id}")
            scheduled_posts.cancel(s, item_id, actor=actor)
            code = "post-cancelled"
    context.wake_outbox()
    return _done(who, code, item_id)
