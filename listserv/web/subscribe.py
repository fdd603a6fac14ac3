"""Subscribing from the web: the form at ``/lists/LIST/subscribe``, and the snippet any site
can embed (a plain form posting to the same address).

Invariants:
- A POST only starts the double opt-in (``subscriptions.request``, the function the mail door
  calls): nothing changes until the confirmation is POSTed from our own page. So the form needs
  no session or CSRF token and works from any site.
- The answer never tells whether the address is a member already, banned, or over its limit:
  every accepted POST gets the same page.
- Abuse: a honeypot field (a filled one gets the same page and sends nothing), at most
  ``context.SUBSCRIBE_PER_IP`` posts per client IP per hour (in memory, see ratelimit.py), and at most
  ``subscriptions.MAX_PENDING_PER_DAY`` confirmation mails per address per day (in the store).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse
from markupsafe import escape

from listserv import lists, subscriptions
from listserv.addresses import Kind, list_address
from listserv.web.context import Ctx, WebContext
from listserv.web.pages import message_page, render

log = logging.getLogger("commonroom.web")
router = APIRouter()

HONEYPOT = "website"  # people leave it empty; form-filling robots fill it in


def subscribe_url(web_base_url: str, list_name: str) -> str:
    return f"{web_base_url.rstrip('/')}/lists/{list_name}/subscribe"


def subscribe_snippet(web_base_url: str, list_name: str) -> str:
    """The HTML form any site can paste to let its readers join ``list_name``: no script, no
    styles of ours (the honeypot is hidden inline), posting to our subscribe page."""
    action = escape(subscribe_url(web_base_url, list_name))
    name = escape(list_name)
    return (f'<form method="post" action="{action}" accept-charset="utf-8">\n'
            f'  <label>Your email address, to join {name}:\n'
            f'    <input type="email" name="email" required autocomplete="email"></label>\n'
            f'  <span style="position:absolute;left:-10000px" aria-hidden="true">\n'
            f'    <input type="text" name="{HONEYPOT}" tabindex="-1" autocomplete="off"></span>\n'
            f'  <button type="submit">Join {name}</button>\n'
            f'</form>\n')


@dataclass(frozen=True)
class ListRef:
    """What the form needs of a list, read in a session that has closed since."""

    name: str
    description: str


def _form(request: Request, context: WebContext, ml: ListRef, *, email: str = "",
          error: str = "", status_code: int = 200) -> HTMLResponse:
    return render(request, "subscribe.html", status_code, title=f"Join {ml.name}",
                  list_name=ml.name, description=ml.description, email=email, error=error,
                  honeypot=HONEYPOT,
                  join_address=list_address(ml.name, context.cfg.server.domain, Kind.JOIN),
                  snippet=subscribe_snippet(context.cfg.server.web_base_url, ml.name))


def _find(context: WebContext, list_name: str) -> ListRef | None:
    with context.store.read_session() as s:
        ml = lists.find(s, list_name)
        return ListRef(ml.name, ml.description) if ml else None


def _no_list(request: Request) -> HTMLResponse:
    return message_page(request, "No such list", "There is no list by that name here.",
                        status_code=404, next_steps="See all lists to find the one you want.")


@router.get("/lists/{list_name}/subscribe", response_class=HTMLResponse)
def subscribe_form(request: Request, list_name: str, context: Ctx) -> HTMLResponse:
    ml = _find(context, list_name)
    return _form(request, context, ml) if ml else _no_list(request)


@router.post("/lists/{list_name}/subscribe", response_class=HTMLResponse)
def subscribe(request: Request, list_name: str, context: Ctx,
              email: Annotated[str, Form()] = "", name: Annotated[str, Form()] = "",
              website: Annotated[str, Form()] = "") -> HTMLResponse:
    ml = _find(context, list_name)
    if ml is None:
        return _no_list(request)
    client = request.client.host if request.client else "unknown"
    if not context.subscribe_limiter.allow(client):
        log.warning("subscribe refused: too many requests from %s", client,
                    extra={"list": ml.name, "client": client})
        return message_page(request, "Too many requests",
                            "Too many subscribe requests came from your network just now.",
                            status_code=429, next_steps="Try again in an hour.")
    address = subscriptions.canonical(email)
    if address is None:
        return _form(request, context, ml, email=email, status_code=400,
                     error="That does not look like an email address; please check it.")
    if website:
        log.info("subscribe ignored: the honeypot was filled", extra={"list": ml.name,
                                                                      "client": client})
    else:
        with context.store.session() as s:
            found = lists.find(s, ml.name)
            assert found is not None
            outcome = subscriptions.request(s, context.cfg, found, address, "subscribe",
                                            display_name=name, via="web")
        log.info("web subscribe: %s", outcome.message,
                 extra={"list": ml.name, "member": address, "client": client})
        context.wake_outbox()
    return render(request, "subscribe_sent.html", title="Check your mailbox", list_name=ml.name,
                  email=address, max_per_day=subscriptions.MAX_PENDING_PER_DAY)
