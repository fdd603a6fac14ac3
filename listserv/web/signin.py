"""Signing in by mail (no passwords): ``/signin`` asks for a link, ``/signin/TOKEN`` uses it,
``/me`` shows the member's lists, ``/signout`` ends the session. ``viewer(request)`` is the
signed-in address (or None) for any page that must know who is looking (members-only archives).

Invariants:
- The rules (one use, expiry, who gets a link) are listserv/signin.py's; this door only reads
  forms and sets or clears the cookie.
- GET /signin/TOKEN changes nothing (mail scanners follow links); its button POSTs.
- The session cookie is HttpOnly, SameSite=Lax, Path=/, and Secure when ``web_base_url`` is
  https; asking for a link always gets the same answer.
- /me changes nothing itself: it links to each list's signed delivery page (which offers
  each post, the digests, no mail, or leaving). The only cookie-authenticated POSTs are the
  moderation forms (web/moderate.py), and each carries the session's CSRF token.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from listserv import links, signin, subscriptions
from listserv.models import DeliveryMode, utcnow
from listserv.subscriptions import describe_delivery
from listserv.web.context import Ctx
from listserv.web.pages import message_page, render, sentence
from listserv.web.session import COOKIE, is_moderator, viewer

__all__ = ["COOKIE", "router", "viewer"]  # viewer: for pages that must know who is looking

log = logging.getLogger("commonroom.web")
router = APIRouter()


@router.get("/signin", response_class=HTMLResponse)
def signin_form(request: Request) -> HTMLResponse:
    return render(request, "signin.html", title="Sign in", email="", error="")


@router.post("/signin", response_class=HTMLResponse)
def ask_for_link(request: Request, context: Ctx,
                 email: Annotated[str, Form()] = "") -> HTMLResponse:
    client = request.client.host if request.client else "unknown"
    if not context.signin_limiter.allow(client):
        return message_page(request, "Too many requests",
                            "Too many sign-in requests came from your network just now.",
                            status_code=429, next_steps="Try again in an hour.")
    address = subscriptions.canonical(email)
    if address is None:
        return render(request, "signin.html", 400, title="Sign in", email=email,
                      error="That does not look like an email address; please check it.")
    with context.store.session() as s:
        sent = signin.request_link(s, context.cfg, address, context.cfg.server.web_base_url,
                                   utcnow(), context.secret)
    log.info("sign-in link %s", "sent" if sent else "not sent (unknown or over the limit)",
             extra={"member": address, "client": client})
    if sent:
        context.wake_outbox()
    return message_page(request, "Check your mailbox",
                        f"If {address} is a member of one of our lists, a sign-in link is on its "
                        "way there. It works once, for "
                        f"{int(signin.LINK_TTL.total_seconds() // 60)} minutes.",
                        next_steps="Nothing after a few minutes? Look in your spam folder.")


def _bad_link(request: Request, problem: str) -> HTMLResponse:
    return message_page(request, "This link cannot be used", sentence(problem), status_code=410,
                        next_steps="Ask for a new sign-in link on the sign-in page.")


@router.get("/signin/{token}", response_class=HTMLResponse)
def signin_page(request: Request, token: str, context: Ctx) -> HTMLResponse:
    claim = signin.read_link(context.secret, token, utcnow())
    if isinstance(claim, str):
        return _bad_link(request, claim)
    return render(request, "signin_confirm.html", title="Sign in", email=claim.email)


@router.post("/signin/{token}", response_model=None)
def use_link(request: Request, token: str, context: Ctx) -> Response:
    now = utcnow()
    claim = signin.read_link(context.secret, token, now)
    if isinstance(claim, str):
        return _bad_link(request, claim)
    with context.store.session() as s:
        problem = signin.use_link(s, claim)
    if problem:
        return _bad_link(request, problem)
    response = RedirectResponse("/me", status_code=303)
    response.set_cookie(COOKIE, signin.session_value(context.secret, claim.email, now),
                        max_age=int(signin.SESSION_TTL.total_seconds()), path="/",
                        httponly=True, samesite="lax",
                        secure=context.cfg.server.web_base_url.startswith("https://"))
    return response


@router.get("/me", response_class=HTMLResponse)
def my_lists(request: Request, context: Ctx) -> HTMLResponse:
    email = viewer(request)
    if email is None:
        return message_page(request, "Please sign in", "This page shows your lists once you "
                            "have signed in.", status_code=401,
                            next_steps="Sign in with a link sent to your address: /signin")
    with context.store.read_session() as s:
        rows = [(ml.name, ml.description, describe_delivery(DeliveryMode(sub.delivery_mode)),
                 links.delivery_url("", context.secret, ml.name, email))  # a path on this site
                for ml, sub in signin.member_lists(s, email)]
    return render(request, "me.html", title="Your lists", email=email, rows=rows,
                  moderates=is_moderator(request))


@router.post("/signout", response_class=HTMLResponse)
def signout(request: Request) -> HTMLResponse:
    response = message_page(request, "Signed out", "You have signed out.")
    response.delete_cookie(COOKIE, path="/")
    return response
