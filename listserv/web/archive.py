"""The archive pages: /lists/, a list's threads, a thread, a message, its attachments, the feed.

A thin door: ``listserv.archive`` answers the queries, ``archive_access`` decides who may read,
``mailparts`` and ``mailhtml`` turn stored raw mail into safe markup (at render time, so a better
sanitiser fixes old posts). Nothing here decides a rule.

Invariants:
- Every route under /lists/LIST/ checks ``archive_access`` first (``_readable``): pages, the
  feed and attachments alike. Lists that are not public are left off /lists/.
- Ids in paths are parsed here: anything that is not a post of this list, accepted, is a 404
  (held, rejected, discarded and shunted posts are indistinguishable from missing ones).
- Attachments are only ever downloads: Content-Disposition attachment with a safe name,
  nosniff, a content type from ``mailparts.SERVED_TYPES`` or application/octet-stream, and a
  sandboxing CSP of their own.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup
from sqlmodel import Session
from starlette.exceptions import HTTPException

from listserv import archive, archive_access, links, list_admin, lists, mailhtml, mailparts
from listserv.archive_access import Access
from listserv.models import MailingList, Message, utcnow
from listserv.web import feeds
from listserv.web.context import Ctx
from listserv.web.pages import message_page, render
from listserv.web.signin import viewer
from listserv.web.subscribe import subscribe_snippet

router = APIRouter()


class _Refused(Exception):
    def __init__(self, access: Access) -> None:
        self.access = access


@contextmanager
def _readable(context: Ctx, request: Request, name: str) -> Iterator[tuple[Session, MailingList]]:
    """A read session and the list ``name``, if the viewer may read its archive. Rows read in
    it stay readable after it ends (detached before the read session rolls back and would
    expire them), so pages render outside the session."""
    with context.store.read_session() as s:
        ml = lists.find(s, name) if lists.NAME.match(name) else None
        if ml is None:
            raise HTTPException(404)
        access = archive_access.access(s, ml, viewer(request))
        if access is not Access.ALLOWED:
            raise _Refused(access)
        try:
            yield s, ml
        finally:
            s.expunge_all()


def refusal(request: Request, name: str, access: Access) -> HTMLResponse:
    if access is Access.SIGN_IN:
        return message_page(
            request, "Please sign in", f"The archive of {name} is not public.", status_code=401,
            next_steps="Sign in (/signin) with the address you are subscribed with, or join the "
            f"list first: write to {name}-join@{request.app.state.ctx.cfg.server.domain}.")
    return message_page(request, "Not open to you",
                        f"The archive of {name} is not open to the address you signed in with.",
                        status_code=403, next_steps="Sign in with another address, or ask the "
                        "list's moderators.")


def _number(text: str) -> int:
    if not text.isdigit() or len(text) > 18:
        raise HTTPException(404)
    return int(text)


def _zone(ml: MailingList) -> ZoneInfo:
    try:
        return ZoneInfo(ml.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _when(at: datetime | None, zone: ZoneInfo) -> Markup:
    if at is None:
        return Markup("")
    local = at.astimezone(zone)
    return Markup('<time datetime="{}">{}</time>').format(
        at.isoformat(timespec="seconds"), local.strftime("%-d %b %Y %H:%M"))


def _chart(weekly: tuple[int, ...]) -> Markup:
    """Posts per week as a small SVG bar chart, drawn here (no script, no image request)."""
    width, height, bar = 120, 24, 8
    empty = ' class="empty"'
    bars = "".join(
        f'<rect x="{x}" y="{height - max(h, 1)}" width="{bar}" height="{max(h, 1)}"'
        f'{empty if h == 0 else ""}/>'
        for x, h in archive.chart_points(weekly, width, height))
    label = f"Posts per week, last {len(weekly)} weeks: " + ", ".join(str(v) for v in weekly)
    return Markup('<svg class="chart" role="img" aria-label="{}" viewBox="0 0 {} {}" width="{}" '
                  'height="{}"><title>{}</title>').format(label, width, height, width, height,
                                                          label) + Markup(bars + "</svg>")


@router.get("/lists/", response_class=HTMLResponse)
def lists_page(request: Request, context: Ctx) -> HTMLResponse:
    with context.store.read_session() as s:
        cards = archive.public_lists(s, utcnow())
    return render(request, "archive_lists.html", title="Lists",
                  cards=[(c, _chart(c.weekly)) for c in cards])


@router.get("/lists/{name}/", response_class=HTMLResponse)
def list_page(request: Request, context: Ctx, name: str, before: str | None = None) -> Response:
    try:
        with _readable(context, request, name) as (s, ml):
            assert ml.id is not None
            cursor = archive.Cursor.decode(before) if before else None
            page = archive.threads(s, ml.id, cursor)
            members = list_admin.member_count(s, ml.id)
    except _Refused as refused:
        return refusal(request, name, refused.access)
    zone = _zone(ml)
    rows = [(r, _when(r.last, zone)) for r in page.rows]
    return render(request, "archive_list.html", title=ml.name, ml=ml, rows=rows,
                  members=members, next=page.next.encode() if page.next else None,
                  first_page=cursor is None, domain=context.cfg.server.domain,
                  snippet=subscribe_snippet(context.cfg.server.web_base_url, ml.name))


def _rendered(ml: MailingList, msg: Message) -> tuple[Markup, list[mailparts.Attachment]]:
    """The post's body as safe markup (inline images pointing at our attachment URLs) and its
    attachments, from one parse of the stored raw mail."""
    assert msg.id is not None
    parts = mailparts.read(msg.raw)
    cids = {a.content_id: links.attachment_url("", ml.name, msg.id, a.number)
            for a in parts.attachments if a.content_id}
    return mailhtml.render_body(parts.body, cids.get), parts.attachments


def nesting(depths: list[int]) -> tuple[list[Markup], Markup]:
    """The tags before each post of a page (by tree depth) and after the last, nesting each
    answer in the <li> of the post it answers. A page that opens inside a subtree opens the
    levels above its first post as unnamed items, so its depths still read as a tree."""
    base = min(depths, default=0)
    before: list[Markup] = []
    prev = -1
    for depth in (d - base for d in depths):
        if prev < 0:
            before.append(Markup('<li class="continued"><ol class="replies">' * depth))
        elif depth > prev:
            before.append(Markup('<ol class="replies">'))
        else:
            before.append(Markup("</li>" + "</ol></li>" * (prev - depth)))
        prev = depth
    return before, Markup("</li>" + "</ol></li>" * prev if prev >= 0 else "")


def _page_link(name: str, tid: int, number: int) -> str:
    return f"/lists/{name}/threads/{tid}" + (f"?page={number}" if number > 1 else "")


@router.get("/lists/{name}/threads/{thread_id}", response_class=HTMLResponse)
def thread_page(request: Request, context: Ctx, name: str, thread_id: str, page: str = "1",
                post: str = "") -> Response:
    """A page of a thread (``?page=N``), or the page showing one of its posts (``?post=PK``,
    which message pages and search results link to, as only the tree knows where a post is)."""
    tid, number = _number(thread_id), _number(page)
    at = _number(post) if post else None
    try:
        with _readable(context, request, name) as (s, ml):
            assert ml.id is not None
            view = archive.thread(s, ml.id, tid, number, at)
    except _Refused as refused:
        return refusal(request, name, refused.access)
    if view is None:
        raise HTTPException(404)
    zone = _zone(ml)
    shown = view.page
    befores, closing = nesting([node.depth for node in shown.nodes])
    items = []
    for node, before in zip(shown.nodes, befores, strict=True):
        msg = view.messages[node.post.pk]
        body, atts = _rendered(ml, msg)
        parent_url = None
        if node.parent is not None:
            elsewhere = shown.parent_page.get(node.parent, shown.number) != shown.number
            parent_url = (_page_link(name, tid, shown.parent_page[node.parent]) if elsewhere
                          else "") + f"#m{node.parent}"
        items.append({"node": node, "msg": msg, "author": view.authors[node.post.pk],
                      "when": _when(msg.date or msg.received_at, zone), "body": body,
                      "attachments": atts, "before": before, "parent_url": parent_url,
                      "parent_author": view.authors[node.parent] if node.parent else None})
    return render(request, "archive_thread.html", title=view.thread.subject or "(no subject)",
                  ml=ml, thread=view.thread, items=items, closing=closing, page=shown,
                  here=_page_link(name, tid, shown.number),
                  prev=_page_link(name, tid, shown.number - 1) if shown.number > 1 else None,
                  next=_page_link(name, tid, shown.number + 1)
                  if shown.number < shown.count else None)


@router.get("/lists/{name}/messages/{pk}", response_class=HTMLResponse)
def message_view(request: Request, context: Ctx, name: str, pk: str) -> Response:
    number = _number(pk)
    try:
        with _readable(context, request, name) as (s, ml):
            assert ml.id is not None
            msg = archive.message(s, ml.id, number)
            if msg is None:
                raise HTTPException(404)
            parent = archive.parent_of(s, ml.id, msg)
            author = archive.authors(s, [msg])[number]
    except _Refused as refused:
        return refusal(request, name, refused.access)
    body, atts = _rendered(ml, msg)
    return render(request, "archive_message.html", title=msg.subject or "(no subject)", ml=ml,
                  msg=msg, author=author, parent=parent, body=body, attachments=atts,
                  when=_when(msg.date or msg.received_at, _zone(ml)))


# A download is never a document of our origin: no scripts, no plugins, no framing.
ATTACHMENT_CSP = "default-src 'none'; sandbox; frame-ancestors 'none'"


@router.get("/lists/{name}/messages/{pk}/attachments/{n}")
def attachment(request: Request, context: Ctx, name: str, pk: str, n: str) -> Response:
    number, index = _number(pk), _number(n)
    try:
        with _readable(context, request, name) as (s, ml):
            assert ml.id is not None
            msg = archive.message(s, ml.id, number)
            raw = msg.raw if msg is not None else b""
    except _Refused as refused:
        return refusal(request, name, refused.access)
    found = mailparts.attachment_bytes(raw, index) if raw else None
    if found is None:
        raise HTTPException(404)
    att, data = found
    headers = {"Content-Disposition": mailparts.content_disposition(att.filename),
               "X-Content-Type-Options": "nosniff", "Content-Security-Policy": ATTACHMENT_CSP,
               "Cache-Control": "private, max-age=3600"}
    return Response(data, media_type=mailparts.served_type(att, mailparts.part_charset(raw, index)),
                    headers=headers)


@router.get("/lists/{name}/feed.atom")
def feed(request: Request, context: Ctx, name: str) -> Response:
    try:
        with _readable(context, request, name) as (s, ml):
            assert ml.id is not None
            entries = archive.new_threads(s, ml.id)
            authors = archive.authors(s, [m for _, m in entries if m is not None])
    except _Refused as refused:
        return refusal(request, name, refused.access)
    body = feeds.atom(context.cfg.server.web_base_url, ml, entries, authors, utcnow())
    return Response(body, media_type="application/atom+xml; charset=utf-8")
