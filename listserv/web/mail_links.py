"""The links mail already carries: confirm a request, leave a list, change delivery.

Invariants:
- A GET never changes anything (mail scanners and link previews follow links): it shows what
  will happen and one POST button.
- Each POST calls the function the mail door calls (``subscriptions.confirm``, ``leave``,
  ``set_delivery``) and wakes the outbox after the transaction committed.
- RFC 8058: a POST to the unsubscribe link (body ``List-Unsubscribe=One-Click``, no cookies)
  unsubscribes at once and answers 200; the signed link is the proof, so nothing else is asked.
- A bad, used or expired token gets a kind page (404 or 410) that says what to do instead.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse

from listserv import lists, subscriptions
from listserv.addresses import Kind, list_address
from listserv.models import DeliveryMode, MailingList
from listserv.web import tokens
from listserv.web.context import Ctx, WebContext
from listserv.web.pages import message_page, render, sentence

log = logging.getLogger("commonroom.web")
router = APIRouter()

MODES: tuple[tuple[DeliveryMode, str], ...] = (
    (DeliveryMode.EACH, "Each post as it is sent"),
    (DeliveryMode.PLAIN, "A weekly digest, plain text"),
    (DeliveryMode.MIME, "A weekly digest, each post attached (MIME)"),
    (DeliveryMode.HTML, "A weekly digest, formatted (HTML)"),
    (DeliveryMode.NOMAIL, "No mail for now (you stay a member and can read the archive)"),
)


def _mail_address(context: WebContext, list_name: str, kind: Kind) -> str:
    return list_address(list_name, context.cfg.server.domain, kind)


def _bad_confirm(request: Request, problem: str) -> HTMLResponse:
    unknown = "not known" in problem
    return message_page(request, "This link cannot be used", sentence(problem),
                        status_code=404 if unknown else 410,
                        next_steps="To join a list, use the form on its page or send any mail "
                                   "to LIST-join at this site's mail domain; a new confirmation "
                                   "will be sent to you.")


@router.get("/confirm/{token}", response_class=HTMLResponse)
def confirm_page(request: Request, token: str, context: Ctx) -> HTMLResponse:
    with context.store.read_session() as s:
        pending, problem = subscriptions.find_pending(s, token)
        if pending is None or problem is not None:
            return _bad_confirm(request, problem or "")
        ml = s.get(MailingList, pending.list_id)
        assert ml is not None
        what = subscriptions.describe_action(pending.action, ml.name, pending)
        return render(request, "confirm.html", title=f"Confirm: {what}", email=pending.email,
                      what=what, list_name=ml.name)


@router.post("/confirm/{token}", response_class=HTMLResponse)
def confirm(request: Request, token: str, context: Ctx) -> HTMLResponse:
    with context.store.session() as s:
        outcome = subscriptions.confirm(s, context.cfg, token, via="web")
    log.info("web confirm: %s", outcome.message, extra={"ok": outcome.ok})
    if not outcome.ok:
        return _bad_confirm(request, outcome.message)
    context.wake_outbox()
    return message_page(request, "Done", sentence(outcome.message))


def _bad_member_link(request: Request, context: Ctx, list_name: str, what: str) -> HTMLResponse:
    name = list_name.lower()
    by_mail = "" if lists.name_problem(name) else \
        f", or send any mail to {_mail_address(context, name, Kind.LEAVE)} to leave the list"
    return message_page(
        request, "This link cannot be used", f"This {what} link is not valid for this list. It "
        "may have been copied incompletely.", status_code=404,
        next_steps=f"Use the link from a recent message of the list{by_mail}.")


@router.get("/lists/{list_name}/unsubscribe/{token}", response_class=HTMLResponse)
def unsubscribe_page(request: Request, list_name: str, token: str, context: Ctx) -> HTMLResponse:
    with context.store.read_session() as s:
        link = tokens.read(s, context.secret, list_name, token, "unsub")
        if link is None:
            return _bad_member_link(request, context, list_name, "unsubscribe")
        member = subscriptions.is_member(s, link.list_id, link.email)
    return render(request, "unsubscribe.html", title=f"Leave {link.list_name}",
                  list_name=link.list_name, email=link.email, member=member)


@router.post("/lists/{list_name}/unsubscribe/{token}", response_class=HTMLResponse)
def unsubscribe(request: Request, list_name: str, token: str, context: Ctx) -> HTMLResponse:
    """Our button and RFC 8058 one-click alike: the body needs no reading."""
    with context.store.session() as s:
        link = tokens.read(s, context.secret, list_name, token, "unsub")
        if link is None:
            return _bad_member_link(request, context, list_name, "unsubscribe")
        outcome = subscriptions.leave(s, context.cfg, tokens.the_list(s, link), link.email,
                                      via="web")
    log.info("web unsubscribe: %s", outcome.message,
             extra={"list": link.list_name, "member": link.email})
    context.wake_outbox()
    return message_page(request, f"You have left {link.list_name}",
                        sentence(outcome.message) + " No more mail from the list will be sent to "
                        "this address.",
                        next_steps=f"Changed your mind? Send any mail to "
                                   f"{_mail_address(context, link.list_name, Kind.JOIN)}.")


def _delivery_page(request: Request, context: Ctx, link: tokens.MemberLink, token: str,
                   mode: str | None, notice: str = "", status_code: int = 200) -> HTMLResponse:
    return render(request, "delivery.html", status_code, title=f"Your mail from {link.list_name}",
                  list_name=link.list_name, email=link.email, modes=MODES, current=mode,
                  notice=notice, action=f"/lists/{link.list_name}/delivery/{token}")


def _current_mode(context: Ctx, link: tokens.MemberLink) -> str | None:
    """The member's delivery mode, or None when they are not a member."""
    with context.store.read_session() as s:
        if not subscriptions.is_member(s, link.list_id, link.email):
            return None
        sub = subscriptions.find_subscription(s, link.list_id, link.email)
        assert sub is not None
        return sub.delivery_mode


@router.get("/lists/{list_name}/delivery/{token}", response_class=HTMLResponse)
def delivery_page(request: Request, list_name: str, token: str, context: Ctx) -> HTMLResponse:
    with context.store.read_session() as s:
        link = tokens.read(s, context.secret, list_name, token, "delivery")
    if link is None:
        return _bad_member_link(request, context, list_name, "delivery settings")
    return _delivery_page(request, context, link, token, _current_mode(context, link))


@router.post("/lists/{list_name}/delivery/{token}", response_class=HTMLResponse)
def delivery(request: Request, list_name: str, token: str, context: Ctx,
             mode: Annotated[str, Form()] = "", leave: Annotated[str, Form()] = "") -> HTMLResponse:
    with context.store.session() as s:
        link = tokens.read(s, context.secret, list_name, token, "delivery")
        if link is None:
            return _bad_member_link(request, context, list_name, "delivery settings")
        ml = tokens.the_list(s, link)
        if leave:
            outcome = subscriptions.leave(s, context.cfg, ml, link.email, via="web")
        elif mode in {m.value for m in DeliveryMode}:
            outcome = subscriptions.set_delivery(s, ml, link.email, DeliveryMode(mode), via="web")
        else:
            outcome = subscriptions.Outcome(False, "choose one of the ways to get mail")
    log.info("web delivery: %s", outcome.message, extra={"list": link.list_name,
                                                        "member": link.email})
    if leave:
        context.wake_outbox()
        return message_page(request, f"You have left {link.list_name}",
                            sentence(outcome.message))
    return _delivery_page(request, context, link, token, _current_mode(context, link),
                          notice=sentence(outcome.message),
                          status_code=200 if outcome.ok else 400)
