"""The re-enable link in a "your delivery is disabled" notice (``listserv.bounces``).

Invariants:
- GET changes nothing (mail scanners follow links): it shows the state and one POST button.
- POST calls ``bounces.enable``, the function the mail door's "enable" command calls.
- The token is the member's signed link for the "reenable" purpose only.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from listserv import bounces, subscriptions
from listserv.web import tokens
from listserv.web.context import Ctx
from listserv.web.pages import message_page, render, sentence

log = logging.getLogger("commonroom.web")
router = APIRouter()
PURPOSE = "reenable"


def _bad(request: Request) -> HTMLResponse:
    return message_page(request, "This link cannot be used", "This link is not valid for this "
                        "list. It may have been copied incompletely.", status_code=404,
                        next_steps="Send a message with the word 'enable' to the list's "
                                   "-request address instead.")


@router.get("/lists/{list_name}/reenable/{token}", response_class=HTMLResponse)
def reenable_page(request: Request, list_name: str, token: str, context: Ctx) -> HTMLResponse:
    with context.store.read_session() as s:
        link = tokens.read(s, context.secret, list_name, token, PURPOSE)
        if link is None:
            return _bad(request)
        sub = subscriptions.find_subscription(s, link.list_id, link.email)
        disabled = sub is not None and sub.delivery_disabled_at is not None
    return render(request, "reenable.html", title=f"Mail from {link.list_name}",
                  list_name=link.list_name, email=link.email, disabled=disabled)


@router.post("/lists/{list_name}/reenable/{token}", response_class=HTMLResponse)
def reenable(request: Request, list_name: str, token: str, context: Ctx) -> HTMLResponse:
    with context.store.session() as s:
        link = tokens.read(s, context.secret, list_name, token, PURPOSE)
        if link is None:
            return _bad(request)
        outcome = bounces.enable(s, tokens.the_list(s, link), link.email, actor=link.email,
                                 via="web")
    log.info("web re-enable: %s", outcome.message,
             extra={"list": link.list_name, "member": link.email})
    return message_page(request, f"Mail from {link.list_name}", sentence(outcome.message),
                        status_code=200 if outcome.ok else 400)
