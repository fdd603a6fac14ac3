"""Operations pages: ``/healthz`` for load balancers and monitoring, ``/metrics`` for
Prometheus (what it counts: metrics.py).

Invariants: ``/healthz`` answers 200 only when the store answers and every probe of the
process (SMTP listening, scheduler alive) reports no problem; otherwise 503 naming each part
that failed, in plain text a person or a monitor can read.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text

from listserv.web import metrics
from listserv.web.context import Ctx, WebContext

log = logging.getLogger("commonroom.web")
router = APIRouter()


def store_problem(context: WebContext) -> str | None:
    try:
        with context.store.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as e:  # any failure to reach the database is the answer, not a bug
        return f"cannot reach the database ({type(e).__name__})"
    return None


@router.get("/healthz", response_class=PlainTextResponse)
def healthz(context: Ctx) -> PlainTextResponse:
    checks = {"store": lambda: store_problem(context), **context.probes}
    lines, failed = [], False
    for part, probe in checks.items():
        problem = probe()
        failed = failed or problem is not None
        lines.append(f"{part}: {problem or 'ok'}")
    if failed:
        log.warning("health check failed: %s", "; ".join(lines))
    return PlainTextResponse("\n".join(lines) + "\n", status_code=503 if failed else 200,
                             headers={"Cache-Control": "no-store"})


@router.get("/metrics")
def prometheus(context: Ctx) -> Response:
    return Response(metrics.exposition(context), media_type=CONTENT_TYPE_LATEST,
                    headers={"Cache-Control": "no-store"})
