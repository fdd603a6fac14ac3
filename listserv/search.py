"""Full-text search over the archive: the text each accepted post is found by, and the ranked,
paged results with their snippets.

Each accepted post has one ``search_text`` row (subject, the author's own words, author name and
address), written by ``index_post`` in the transaction that releases the post (or imports it).
The index over those rows is the backend's own (migration 0010):
- SQLite: an FTS5 table with ``search_text`` as its external content, kept current by triggers;
  ranked by ``bm25``, excerpts by ``snippet``.
- PostgreSQL: a ``tsvector`` column with a GIN index, filled behind the posts
  (``search_behind``; a row not yet indexed is matched through ``search_tsv``, the function that
  fills it, migration 0024); ``websearch_to_tsquery``, ranked by ``ts_rank_cd``, and
  ``ts_headline`` only for the rows of the page asked for.
Both index accent-folded text (``accents``: PostgreSQL's ``search_tsv`` folds it all,
migrations 0018, 0022 and 0024; SQLite's tokenizer folds the diacritics and its triggers the
other letters, 0022) and the query is folded the same way, so both backends find "café" for
"cafe", "Tromsø" for "Tromso", "straße" for "strasse" and the other way round.

Invariants:
- Only accepted posts are found, and only on the lists the caller names (the caller decides
  which archives the viewer may see).
- A post is found from the commit that releases it, on PostgreSQL before it is indexed too,
  with the rank and snippet it has once indexed.
- What people type never reaches SQL as syntax (``search_query``), so no query is an error.
- Snippets come back as (text, matched) segments, never as markup: the page escapes the text
  and marks the matched words itself.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Row, bindparam, insert, text
from sqlmodel import Session, col, select

from listserv import accents, quotes, search_query, write_behind
from listserv.bodytext import first_text
from listserv.models import MailingList, SearchText
from listserv.post_row import AnyPost

MAX_BODY = 100_000  # characters of a post's text indexed (a tsvector holds at most 1 MB)
PER_PAGE = 20
MAX_PAGE = 50  # ranked results past 1,000 help nobody and cost every row before them
PG_CONFIG = "english"  # the text search configuration; the migrations' search_tsv uses the same

# Snippet markers: control characters, which ``document`` removes from indexed text, so a
# marker in a snippet is always the index's and never the author's.
_START, _STOP = "\x02", "\x03"
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


@dataclass(frozen=True)
class Document:
    subject: str
    body: str
    author: str


def document(subject: str, from_name: str, from_address: str, raw: bytes,
             body: str | None = None) -> Document:
    """The text a post is found by: its subject, the author's own words (quotes, signatures
    and footers left out; the forwarded text of a bare forward), and who wrote it. ``body``:
    ``first_text(raw)``, when the caller has it already."""
    if body is None:
        body = first_text(raw)
    own = quotes.own_words(body) or quotes.trim(body)
    author = f"{from_name} <{from_address}>" if from_name and from_address else \
        from_name or from_address
    return Document(_CONTROL.sub(" ", subject), _CONTROL.sub(" ", own[:MAX_BODY]),
                    _CONTROL.sub(" ", author))


def index_post(session: Session, msg: AnyPost, *, new: bool = False,
               body: str | None = None) -> None:
    """Make an accepted post findable (or refresh its text). In the caller's transaction.

    ``new``: the post has never been indexed (it is being released or imported now), so its
    row is not looked for first, and is written at once with a core INSERT (no ORM object:
    building one cost more than the statement, issue 12). ``body``: its text, if already read."""
    assert msg.id is not None and msg.list_id is not None
    doc = document(msg.subject, msg.from_name, msg.from_address, msg.raw, body)
    if new:
        write_behind.defer(session, _INSERT_TEXT, {"message_pk": msg.id, "list_id": msg.list_id,
                                       "subject": doc.subject, "body": doc.body,
                                       "author": doc.author})
        return
    row = session.get(SearchText, msg.id)
    if row is None:
        row = SearchText(message_pk=msg.id, list_id=msg.list_id)
    row.subject, row.body, row.author = doc.subject, doc.body, doc.author
    session.add(row)
    session.flush()


_INSERT_TEXT = insert(SearchText.__table__).inline()  # type: ignore[attr-defined]  # no RETURNING


def searchable_lists(session: Session, names: Sequence[str] = (),
                     may_read: Callable[[MailingList], bool] | None = None) -> list[MailingList]:
    """The lists whose archives the viewer may search (``names``: only those of them).

    ``may_read`` is the archive visibility decision for this viewer (None: every archive is
    public, as before lists had an archive setting); ``search`` is then given these lists' ids.
    """
    stmt = select(MailingList).order_by(col(MailingList.name))
    if names:
        stmt = stmt.where(col(MailingList.name).in_(list(names)))
    return [ml for ml in session.exec(stmt) if may_read is None or may_read(ml)]


@dataclass(frozen=True)
class Hit:
    message_pk: int
    list_id: int
    thread_id: int | None
    subject: str
    from_name: str  # the display name, else the address's local part (never the address)
    date: datetime | None
    snippet: tuple[tuple[str, bool], ...]  # (text, is a matched word)


@dataclass(frozen=True)
class Results:
    query: search_query.Query
    page: int
    hits: tuple[Hit, ...] = ()
    has_next: bool = False


def segments(marked: str) -> tuple[tuple[str, bool], ...]:
    """A snippet with ``_START``/``_STOP`` markers as (text, matched) segments."""
    out: list[tuple[str, bool]] = []
    for i, part in enumerate(re.split(f"[{_START}{_STOP}]", marked)):
        if part:
            out.append((part, i % 2 == 1))
    return tuple(out)


def search(session: Session, typed: str, list_ids: Sequence[int], *, page: int = 1,
           per_page: int = PER_PAGE) -> Results:
    """Accepted posts of ``list_ids`` matching ``typed``, best first, one page of them."""
    query = search_query.parse(typed)
    page = min(max(page, 1), MAX_PAGE)
    if query.empty or not list_ids:
        return Results(query, page)
    params = {"ids": list(list_ids), "n": per_page + 1, "skip": (page - 1) * per_page}
    pg = session.get_bind().dialect.name == "postgresql"
    if pg:
        # The index holds folded text (migrations 0018, 0022): the query is folded the same way.
        stmt, params["q"] = _PG_SEARCH, accents.fold(search_query.websearch(query))
        params["fold_from"], params["fold_to"] = accents.FROM, accents.TO
    else:
        # FTS5's tokenizer folds diacritics on both sides; the triggers fold the letters that
        # do not decompose into the index (0022), so the query folds them too.
        stmt, params["q"] = _SQLITE_SEARCH, accents.fold(search_query.fts5(query))
    rows = session.execute(stmt, params).all()

    def snippet(r: Row[Any]) -> str:
        if not pg:
            return str(r.snippet or "")
        # ts_headline marked the folded text: show the author's own letters again.
        return accents.restore(r.snippet or "", r.body or r.subject, _START + _STOP,
                               _PG_DELIMITER)

    hits = tuple(Hit(message_pk=r.id, list_id=r.list_id, thread_id=r.thread_id,
                     subject=r.subject,
                     from_name=r.from_name or r.from_address.partition("@")[0],
                     date=_aware(r.date),
                     snippet=segments(snippet(r)))
                 for r in rows[:per_page])
    return Results(query, page, hits, has_next=len(rows) > per_page and page < MAX_PAGE)


def _aware(value: datetime | str | None) -> datetime | None:
    if isinstance(value, str):  # SQLite through text(): the stored ISO string
        value = datetime.fromisoformat(value)
    if value is not None and value.utcoffset() is None:
        value = value.replace(tzinfo=UTC)
    return value


_SQLITE_SEARCH = text("""
SELECT m.id, m.list_id, m.thread_id, m.subject, m.from_name, m.from_address, m.date,
       snippet(search_fts, -1, char(2), char(3), '…', 24) AS snippet
FROM search_fts JOIN message m ON m.id = search_fts.rowid
WHERE search_fts MATCH :q AND m.status = 'accepted' AND m.list_id IN :ids
ORDER BY bm25(search_fts, 5.0, 1.0, 2.0), m.id DESC
LIMIT :n OFFSET :skip""").bindparams(bindparam("ids", expanding=True))

# A row not yet indexed (``search_behind``) is matched and ranked through the function its
# tsv will be filled from (migration 0024): found from its post's commit, ranked the same.
_PG_TSV = "search_tsv(st.subject, st.author, st.body)"
# The page's rows are chosen first; ts_headline, the costly part, runs only for them, over the
# same folded text the index holds (``accents``), so folded query words are marked.
_PG_DELIMITER = " … "
_PG_HEADLINE_TEXT = accents.sql_replace(
    "translate(CASE WHEN r.body <> '' THEN r.body ELSE r.subject END, :fold_from, :fold_to)",
    accents.MULTI)
_PG_SEARCH = text(f"""
SELECT r.id, r.list_id, r.thread_id, r.subject, r.from_name, r.from_address, r.date, r.body,
       ts_headline('{PG_CONFIG}',
                   {_PG_HEADLINE_TEXT}, r.q,
                   'StartSel={_START}, StopSel={_STOP}, MaxWords=35, MinWords=12, '
                   'MaxFragments=2, FragmentDelimiter="{_PG_DELIMITER}"') AS snippet
FROM (
  SELECT m.id, m.list_id, m.thread_id, m.subject, m.from_name, m.from_address, m.date,
         st.body, q.q,
         ts_rank_cd(coalesce(st.tsv, {_PG_TSV}), q.q) AS rank
  FROM search_text st JOIN message m ON m.id = st.message_pk,
       websearch_to_tsquery('{PG_CONFIG}', :q) AS q(q)
  WHERE (st.tsv @@ q.q OR (st.tsv IS NULL AND {_PG_TSV} @@ q.q))
    AND m.status = 'accepted' AND st.list_id IN :ids
  ORDER BY rank DESC, m.id DESC
  LIMIT :n OFFSET :skip
) r
ORDER BY r.rank DESC, r.id DESC""").bindparams(
    bindparam("ids", expanding=True))
