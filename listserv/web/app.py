"""The web application: ``create_app(ctx)`` puts the routers, templates, static files, error
pages and security headers together.

Invariants:
- Routes that touch the store are plain ``def`` functions, which FastAPI runs in its thread
  pool: a database call never blocks the event loop that SMTP and delivery share.
- No interactive API docs are served (they would need scripts from a CDN, which the
  Content-Security-Policy forbids); the JSON API, when it comes, brings its own.
- Errors are pages a person can act on, never a traceback: unknown paths get 404 with a way
  back, bad form input 400 saying what was wrong, and a bug 500 (logged with the path).
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from listserv.web import (
    archive,
    events,
    mail_links,
    moderate,
    moderate_tools,
    ops,
    reenable,
    search,
    signin,
    subscribe,
)
from listserv.web.context import WebContext
from listserv.web.pages import STATIC, message_page, render
from listserv.web.security import SecurityHeaders

log = logging.getLogger("commonroom.web")

ROUTERS = (ops.router, mail_links.router, subscribe.router, signin.router, search.router,
           events.router, moderate.router, moderate_tools.router, archive.router, reenable.router)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return message_page(request, "Not found", "There is no page at this address.",
                            status_code=404, next_steps="Check the link, or start from the lists.")
    if exc.status_code == 405:
        return message_page(request, "Not allowed", "This page cannot be used that way.",
                            status_code=405)
    return message_page(request, "Something went wrong", str(exc.detail),
                        status_code=exc.status_code)


async def _bad_input(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    fields = ", ".join(str(e.get("loc", ("?",))[-1]) for e in exc.errors())
    return message_page(request, "Something is missing", f"The form was not complete ({fields}).",
                        status_code=400, next_steps="Go back, fill it in and send it again.")


async def _bug(request: Request, exc: Exception) -> Response:
    log.error("page failed: %s %s", request.method, request.url.path, exc_info=exc,
              extra={"path": request.url.path})
    return message_page(request, "Something went wrong on our side",
                        "The page could not be made. It has been logged.", status_code=500,
                        next_steps="Try again in a minute; if it keeps happening, tell the "
                                   "list's moderators.")


def create_app(context: WebContext) -> FastAPI:
    app = FastAPI(title="Commonroom", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.ctx = context
    app.add_middleware(SecurityHeaders)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _bad_input)
    app.add_exception_handler(Exception, _bug)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for router in ROUTERS:
        app.include_router(router)

    @app.get("/", response_class=HTMLResponse)
    def home(request: Request) -> HTMLResponse:
        return render(request, "home.html")

    return app
