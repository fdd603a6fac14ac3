"""Who is looking: the signed-in address from the session cookie, whether they moderate any
list (for the header's "Moderate" link), and the per-session CSRF token their POST forms carry.

Invariants:
- The session is ``listserv.signin``'s signed value in the ``COOKIE`` cookie; nothing else
  says who the viewer is. Both answers are computed at most once per request (request.state).
- CSRF: a cookie-authenticated POST (moderation) must carry ``csrf_token(request)`` in a hidden
  field. The token is an HMAC of the session value under the site secret, so it is bound to
  that session, needs no storage, and a page on another site can neither read nor forge it.
  A token is chosen over SameSite=Strict because the session cookie stays Lax on purpose: a
  moderator following a link from their mail client (a cross-site navigation) must arrive
  signed in; Lax still keeps the cookie off cross-site POSTs in current browsers, a second wall.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging

from fastapi import Request
from sqlalchemy.exc import SQLAlchemyError

from listserv import held_view, signin
from listserv.models import utcnow
from listserv.web.context import ctx

log = logging.getLogger("commonroom.web")
COOKIE = "commonroom_session"
CSRF_FIELD = "csrf"


def viewer(request: Request) -> str | None:
    """The signed-in member's address, or None."""
    if not hasattr(request.state, "viewer"):
        value = request.cookies.get(COOKIE)
        request.state.viewer = (signin.read_session(ctx(request).secret, value, utcnow())
                                if value else None)
    found = request.state.viewer
    assert found is None or isinstance(found, str)
    return found


def is_moderator(request: Request) -> bool:
    """True when the signed-in viewer moderates (or owns) at least one list."""
    if not hasattr(request.state, "moderates"):
        email = viewer(request)
        moderates = False
        if email is not None:
            try:
                with ctx(request).store.read_session() as s:
                    moderates = bool(held_view.moderated_lists(s, email))
            except SQLAlchemyError:  # only the header link depends on it: the page still shows
                log.warning("could not tell whether %s moderates", email, exc_info=True,
                            extra={"member": email})
        request.state.moderates = moderates
    return bool(request.state.moderates)


def csrf_token(request: Request) -> str:
    """The token this session's forms carry ("" when nobody is signed in)."""
    value = request.cookies.get(COOKIE, "")
    if not value or viewer(request) is None:
        return ""
    mac = hmac.new(ctx(request).secret, f"csrf:{value}".encode(), hashlib.sha256).digest()[:18]
    return base64.urlsafe_b64encode(mac).decode()


def csrf_ok(request: Request, sent: str) -> bool:
    wanted = csrf_token(request)
    return bool(wanted) and hmac.compare_digest(wanted.encode(), sent.encode())
