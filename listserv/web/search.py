"""Searching the archives: ``/search?q=…&list=…`` across lists and ``/lists/LIST/search?q=…``
for one list. A thin door over ``listserv.search``.

Invariants:
- Only lists ``search.searchable_lists`` returns are searched or named, and only accepted
  posts are found (the service's rules; none live here).
- Anything in the query string is answered with a page: an unreadable page number is page 1,
  an unknown list is a kind 404, a list not open to the viewer gets the archive pages' own
  answer (sign in: 401; not open to you: 403), a query that is only punctuation gets a
  hint, never a 500.
- Snippets reach the template as (text, matched) segments; the template escapes the text and
  wraps matched words in ``<mark>``, so no markup from mail or query ever reaches the page.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from sqlmodel import Session
from starlette.exceptions import HTTPException

from listserv import archive_access, links, search
from listserv import lists as lists_
from listserv.archive_access import Access
from listserv.web.archive import refusal
from listserv.web.context import Ctx
from listserv.web.pages import render
from listserv.web.signin import viewer

router = APIRouter()


def _page_number(text: str) -> int:
    return int(text) if text.isdigit() and len(text) < 6 else 1


def _why_not(session: Session, name: str, who: str | None) -> Access:
    """Why the viewer may not search list ``name``: the archive pages' answer (sign in, or not
    open to you), so a signed-out member is told to sign in; a list that is not there is a 404."""
    ml = lists_.find(session, name) if lists_.NAME.match(name) else None
    if ml is None:
        raise HTTPException(404)
    return archive_access.access(session, ml, who)


def _results_page(request: Request, context: Ctx, q: str, page: str, names: list[str],
                  action: str, scope: str) -> HTMLResponse:
    who = viewer(request)
    with context.store.read_session() as s:
        # The archive's own decision: public lists for anyone, members-only and private ones
        # for those who may read them (the same check as the archive pages').
        lists = search.searchable_lists(
            s, names, may_read=lambda ml: archive_access.access(s, ml, who) is Access.ALLOWED)
        if names and not lists:
            return refusal(request, names[0], _why_not(s, names[0], who))
        by_id = {ml.id: ml.name for ml in lists if ml.id is not None}
        results = search.search(s, q, list(by_id), page=_page_number(page)) if q.strip() \
            else None

    def page_url(number: int) -> str:
        params = {"q": q, "page": str(number)}
        if action == "/search" and names:
            params["list"] = names[0]
        return f"{action}?{urlencode(params)}"

    hits = [{"hit": h, "list_name": by_id[h.list_id],
             "url": f"{links.thread_url('', by_id[h.list_id], h.thread_id)}?post={h.message_pk}"
                    f"#m{h.message_pk}"
             if h.thread_id else links.message_url("", by_id[h.list_id], h.message_pk)}
            for h in (results.hits if results else ())]
    return render(request, "search.html", title=f"Search {scope}" if not q else f"{q} · search",
                  q=q, scope=scope, action=action, names=names, results=results, hits=hits,
                  first=(results.page - 1) * search.PER_PAGE + 1 if results else 0,
                  prev_url=page_url(results.page - 1) if results and results.page > 1 else "",
                  next_url=page_url(results.page + 1) if results and results.has_next else "")


@router.get("/search", response_class=HTMLResponse)
def search_all(request: Request, context: Ctx, q: str = "", page: str = "1",
               only: Annotated[str, Query(alias="list")] = "") -> HTMLResponse:
    """Every public archive, or the one ``?list=`` names."""
    return _results_page(request, context, q, page, [only] if only else [], "/search",
                         f"the {only} archive" if only else "all archives")


@router.get("/lists/{list_name}/search", response_class=HTMLResponse)
def search_list(request: Request, context: Ctx, list_name: str, q: str = "",
                page: str = "1") -> HTMLResponse:
    return _results_page(request, context, q, page, [list_name],
                         f"/lists/{list_name}/search", f"the {list_name} archive")
