"""The held queue on the web: ``/moderate/`` lists the posts waiting on the lists the viewer
moderates, ``/moderate/held/ID`` shows one (headers, text, reason, rule, policy evidence) with
three POST forms: approve (optionally setting the sender's future posts), reject with a reason,
discard. A thin door over ``listserv.moderation`` and ``listserv.held_view``.

Invariants:
- Every request checks, in the store, that the signed-in viewer moderates or owns the held
  post's list (a member, a stranger or another list's moderator gets a kind 403); the check and
  the action share one transaction.
- Actions are ``moderation.act`` with actor ``web:ADDRESS``: audited, and once only (a second
  action, from any door, is told who handled it, with 409).
- Every POST carries the session's CSRF token (``listserv.web.session``); without it nothing
  is done (403). GET pages change nothing.
- Everything from mail is escaped by the templates; the text is shown as plain text in <pre>.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse
from starlette.exceptions import HTTPException

from listserv import held_view, moderation
from listserv.models import Action
from listserv.web.context import Ctx
from listserv.web.pages import message_page, render, sentence
from listserv.web.session import csrf_ok, csrf_token, viewer

log = logging.getLogger("commonroom.web")
router = APIRouter()

VERBS: dict[str, Action] = {"approve": Action.ACCEPT, "reject": Action.REJECT,
                            "discard": Action.DISCARD}
DONE = {Action.ACCEPT.value: "approved", Action.REJECT.value: "rejected",
        Action.DISCARD.value: "discarded"}
FUTURES = ("", "accept", "hold")
MAX_REASON = 500


def _sign_in_first(request: Request) -> HTMLResponse:
    return message_page(request, "Please sign in", "Moderators see the posts waiting for them "
                        "once they have signed in.", status_code=401,
                        next_steps="Sign in with a link sent to your address: /signin")


def _not_yours(request: Request, email: str) -> HTMLResponse:
    return message_page(request, "Not a moderator here",
                        f"{email} is not a moderator of this list, so its held posts are not "
                        "shown here.", status_code=403,
                        next_steps="If you should be, ask the list's owner to make you one.")


@router.get("/moderate/", response_class=HTMLResponse)
def queues(request: Request, context: Ctx) -> HTMLResponse:
    email = viewer(request)
    if email is None:
        return _sign_in_first(request)
    with context.store.read_session() as s:
        lists = held_view.moderated_lists(s, email)
        found = [(ml.name, moderation.pending(s, ml)) for ml in lists]
    if not lists:
        return message_page(request, "Not a moderator", f"{email} does not moderate any list.",
                            status_code=403, next_steps="Your lists are on /me.")
    return render(request, "moderate.html", title="Moderate", email=email, queues=found)


@router.get("/moderate/held/{held_id}", response_class=HTMLResponse)
def held_page(request: Request, held_id: int, context: Ctx) -> HTMLResponse:
    email = viewer(request)
    if email is None:
        return _sign_in_first(request)
    with context.store.read_session() as s:
        post = held_view.held_post(s, held_id)
        allowed = post is not None and held_view.may_moderate(s, post.list_id, email)
    if post is None:
        raise HTTPException(404)
    if not allowed:
        return _not_yours(request, email)
    return render(request, "held.html", title=f"Held post {held_id}", post=post,
                  csrf=csrf_token(request), verbs=DONE)


@router.post("/moderate/held/{held_id}/{verb}", response_class=HTMLResponse)
def act(request: Request, held_id: int, verb: str, context: Ctx,
        csrf: Annotated[str, Form()] = "", reason: Annotated[str, Form()] = "",
        future: Annotated[str, Form()] = "") -> HTMLResponse:
    action = VERBS.get(verb)
    if action is None:
        raise HTTPException(404)
    email = viewer(request)
    if email is None:
        return _sign_in_first(request)
    if not csrf_ok(request, csrf):
        log.warning("moderation form without a valid CSRF token", extra={"member": email,
                    "held": held_id})
        return message_page(request, "This form has expired",
                            "Nothing was done: the form did not come from your current "
                            "session.", status_code=403,
                            next_steps="Open the held post again and use its buttons.")
    if future not in FUTURES or (future and action is not Action.ACCEPT):
        return message_page(request, "Something is wrong with the form",
                            "Future posts can be set to accept or hold, when approving only.",
                            status_code=400)
    with context.store.session() as s:
        ml = held_view.held_list(s, held_id)
        if ml is None or ml.id is None:
            raise HTTPException(404)
        if not held_view.may_moderate(s, ml.id, email):
            return _not_yours(request, email)
        list_name = ml.name
        result = moderation.act(s, context.cfg, held_id, action, actor=f"web:{email}",
                                reason=reason.strip()[:MAX_REASON], future=future)
    log.info("held post %s: %s", held_id, result.message,
             extra={"list": list_name, "held": held_id, "member": email})
    if result.ok:
        context.wake_outbox()
    return render(request, "moderate_done.html", 200 if result.ok else 409,
                  title="Done" if result.ok else "Already handled",
                  message=sentence(result.message), list_name=list_name)
