"""Rendering pages: one Jinja2 environment with autoescaping, and the kind error page.

Invariants:
- Autoescaping is always on: text from mail and from requests is escaped unless a template
  marks a value safe, and only sanitised HTML (nh3) may be.
- Every page extends ``base.html`` (skip link, header with the site name, one ``main``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from listserv.web.context import ctx
from listserv.web.session import is_moderator

TEMPLATES = Path(__file__).resolve().parent / "templates"
STATIC = Path(__file__).resolve().parent / "static"

env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True,
                  undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def render(request: Request, template: str, status_code: int = 200, **values: Any) -> HTMLResponse:
    """``template`` filled with ``values`` plus ``site`` (the mail domain) and ``request``."""
    site = ctx(request).cfg.server.domain
    html = env.get_template(template).render(request=request, site=site,
                                             nav_moderate=is_moderator(request), **values)
    return HTMLResponse(html, status_code=status_code)


def message_page(request: Request, title: str, message: str, *, status_code: int = 200,
                 next_steps: str = "") -> HTMLResponse:
    """A plain page saying what happened and, when something went wrong, what to do."""
    return render(request, "message.html", status_code, title=title, message=message,
                  next_steps=next_steps)


def sentence(text: str) -> str:
    """An outcome message ("ann@example.org is now a member…") as a sentence: a capital first
    letter unless it starts with an address, and a full stop."""
    first = text.split(" ", 1)[0]
    text = text if "@" in first else text[:1].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."
