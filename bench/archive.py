"""Archive benchmark: page latency over HTTP with 100,000 archived posts in 10,000 threads.

    PYTHONPATH=. .venv/bin/python bench/archive.py [--posts 100000] [--threads 10000]
        [--requests 200] [--db sqlite|postgresql://…]

Set-up (not timed, in a child process): a fresh store migrated with Alembic, one list, 500
authors, and the posts bulk-inserted with SQLAlchemy core as an import would leave them:
accepted, threaded (each thread's replies answer an earlier post of it, so the tree has depth),
with the thread summaries (post count, span, opening post, participants) that
``thread_summary`` keeps, over two years of dates.

Then ``commonroom serve`` runs in its own process (SMTP, delivery, scheduler and web, as in
production) on free loopback ports, and this process times requests with one keep-alive HTTP
client, one at a time, after 20 warm-up requests of each kind:

- list: the list's thread list, ``/lists/LIST/`` and older pages by following the ``?before=``
  links (the first 200 pages, cycling);
- thread: ``/lists/LIST/threads/ID`` for random threads (10 posts each, rendered from raw mail);
- search: ``/lists/LIST/search?q=`` two words of middling frequency (the posts' words follow a
  Zipf distribution over 3,000 pseudo-words), when the search page exists, else ``nan``.

Last line: ``archive posts=N list_p95_ms=L thread_p95_ms=T search_p95_ms=S``.
"""

from __future__ import annotations

import argparse
import itertools
import multiprocessing as mp
import random
import re
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

from bench.common import DOMAIN, LIST, fresh_database, machine, quiet_logging, start_serve

AUTHORS = 500
_CTX = mp.get_context("spawn")
WORDS = ("council", "procurement", "moodle", "training", "cloud", "guidance", "pilot", "service",
         "budget", "accessibility", "forms", "website", "data", "open", "standards", "teams")


def _vocabulary(size: int = 3000) -> tuple[list[str], list[float]]:
    """Pseudo-words with Zipf frequencies (the n-th most common 1/n as often as the first), so
    a search for a mid-frequency word matches a realistic share of the posts, not all of them."""
    rng = random.Random(3)
    syllables = ["ka", "lo", "mi", "ne", "su", "ta", "ro", "vi", "de", "po", "ga", "sh", "en",
                 "ar", "il", "ou"]
    words = list(WORDS)
    seen = set(words)
    while len(words) < size:
        w = "".join(rng.choice(syllables) for _ in range(rng.randint(2, 4)))
        if w not in seen:
            seen.add(w)
            words.append(w)
    return words, list(itertools.accumulate(1 / (rank + 1) for rank in range(size)))


VOCABULARY, CUMULATIVE = _vocabulary()  # cumulative weights: choices() need not sum each time
QUERY_WORDS = VOCABULARY[50:500]  # what people look for: neither "the" nor a typo


def _body(rng: random.Random, quote: str | None) -> str:
    lines = [" ".join(rng.choices(VOCABULARY, cum_weights=CUMULATIVE, k=12)).capitalize() + "."
             for _ in range(8)]
    lines.insert(4, "See https://www.example.gov.uk/guidance/" + rng.choice(WORDS) + " for more.")
    text = "\n".join(lines) + "\n"
    if quote:
        text += "\nOn Mon, 3 Jan 2022, Someone wrote:\n" + "".join(
            f"> {line}\n" for line in quote.splitlines()[:4])
    return text


def _populate(url: str, posts: int, threads: int) -> None:
    quiet_logging()
    from sqlalchemy import Table, insert, text

    from listserv.models import (
        Address,
        MailingList,
        Message,
        MessageStatus,
        Person,
        PersonKind,
        Role,
        Subscription,
        Thread,
        utcnow,
    )
    from listserv.store import Store

    tables: dict[str, Table] = {m.__tablename__: m.__table__  # type: ignore[attr-defined]
                                for m in (Person, Address, Subscription, Thread, Message)}
    store = Store(url)
    store.upgrade()
    now = utcnow()
    with store.session() as s:
        ml = MailingList(name=LIST, description="Benchmark list: councils swapping what works",
                         max_posts_per_hour=0)
        s.add(ml)
        s.flush()
        list_id = ml.id
    with store.engine.begin() as conn:
        conn.execute(insert(tables["person"]), [
            {"id": i, "display_name": f"Author {i}", "organisation": f"Vendor {i % 7}" if i % 10 == 0
             else "Some Council", "kind": PersonKind.VENDOR.value if i % 10 == 0
             else PersonKind.MEMBER.value, "created_at": now} for i in range(1, AUTHORS + 1)])
        conn.execute(insert(tables["address"]), [
            {"id": i, "email": f"author{i}@council.example", "person_id": i, "verified_at": now}
            for i in range(1, AUTHORS + 1)])
        conn.execute(insert(tables["subscription"]), [
            {"id": i, "list_id": list_id, "address_id": i, "role": Role.MEMBER.value,
             "delivery_mode": "each", "moderation": "", "official": False, "created_at": now}
            for i in range(1, AUTHORS + 1)])
    rng = random.Random(7)
    per_thread = posts // threads
    start = now - timedelta(days=730)
    span = timedelta(days=730) / threads
    pk = 0
    import json

    for first in range(1, threads + 1, 500):
        thread_rows: list[dict[str, Any]] = []
        message_rows: list[dict[str, Any]] = []
        for tid in range(first, min(first + 500, threads + 1)):
            opened = start + span * (tid - 1)
            subject = " ".join(rng.choice(WORDS) for _ in range(4)).capitalize()
            ids: list[str] = []
            bodies: list[str] = []
            names: list[str] = []
            seen: set[int] = set()
            last = opened
            for k in range(per_thread):
                pk += 1
                author = rng.randint(1, AUTHORS)
                seen.add(author)
                if f"Author {author}" not in names and len(names) < 5:
                    names.append(f"Author {author}")
                date = opened + timedelta(hours=k * rng.randint(1, 12))
                last = max(last, date)
                parent = rng.randrange(len(ids)) if ids else None
                mid = f"bench-{pk}@{DOMAIN}"
                headers = [f"From: Author {author} <author{author}@council.example>",
                           f"To: {LIST}@{DOMAIN}",
                           f"Subject: {'Re: ' if parent is not None else ''}{subject}",
                           f"Date: {date.strftime('%a, %d %b %Y %H:%M:%S +0000')}",
                           f"Message-ID: <{mid}>", "MIME-Version: 1.0",
                           "Content-Type: text/plain; charset=utf-8"]
                if parent is not None:
                    headers += [f"In-Reply-To: <{ids[parent]}>",
                                f"References: <{ids[0]}> <{ids[parent]}>"]
                body = _body(rng, bodies[parent] if parent is not None else None)
                raw = ("\r\n".join(headers) + "\r\n\r\n" + body.replace("\n", "\r\n")).encode()
                ids.append(mid)
                bodies.append(body)
                message_rows.append({
                    "id": pk, "list_id": list_id, "thread_id": tid, "message_id": mid,
                    "envelope_from": f"author{author}@council.example",
                    "envelope_to": f"{LIST}@{DOMAIN}",
                    "from_address": f"author{author}@council.example",
                    "from_name": f"Author {author}",
                    "subject": f"{'Re: ' if parent is not None else ''}{subject}", "date": date,
                    "received_at": date, "accepted_at": date, "size": len(raw),
                    "dmarc_policy": "", "policy": "", "public_texts": None,
                    "status": MessageStatus.ACCEPTED.value, "reason": "", "raw": raw})
            thread_rows.append({
                "id": tid, "list_id": list_id, "subject": subject, "subject_key": subject.lower(),
                "first_post_at": opened, "last_post_at": last, "post_count": per_thread,
                "opening_pk": pk - per_thread + 1, "participants": json.dumps(names),
                "participant_count": len(seen)})
        with store.engine.begin() as conn:
            conn.execute(insert(tables["thread"]), thread_rows)
            conn.execute(insert(tables["message"]), message_rows)
            _index_for_search(conn, message_rows)
    if store.is_postgres:
        with store.engine.begin() as conn:
            for table in ("person", "address", "subscription", "thread", "message"):
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                  f"(SELECT coalesce(max(id), 1) FROM {table}))"))
            conn.execute(text("ANALYZE"))
    else:
        with store.engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    store.dispose()


def _index_for_search(conn: Any, rows: list[dict[str, Any]]) -> None:
    """The search rows release (or an import) writes for each post, where search exists."""
    try:
        from listserv import search
    except ImportError:
        return  # a branch without search: nothing to index
    from sqlalchemy import insert
    from sqlmodel import SQLModel

    table = SQLModel.metadata.tables["search_text"]
    docs = [(r, search.document(r["subject"], r["from_name"], r["from_address"], r["raw"]))
            for r in rows]
    conn.execute(insert(table), [{"message_pk": r["id"], "list_id": r["list_id"],
                                  "subject": d.subject, "body": d.body, "author": d.author}
                                 for r, d in docs])


def _time(client: httpx.Client, paths: list[str]) -> list[float]:
    out = []
    for path in paths:
        started = time.perf_counter()
        r = client.get(path)
        elapsed = (time.perf_counter() - started) * 1000
        if r.status_code != 200:
            raise RuntimeError(f"{path}: HTTP {r.status_code}")
        out.append(elapsed)
    return out


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[-1] if len(values) > 1 \
        else values[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--posts", type=int, default=100_000)
    parser.add_argument("--threads", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--db", default="sqlite", help="sqlite, or a PostgreSQL server URL")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    with fresh_database(args.db) as url, tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        proc = _CTX.Process(target=_populate, args=(url, args.posts, args.threads))
        proc.start()
        proc.join()
        if proc.exitcode != 0:
            raise SystemExit("set-up failed")
        print(f"set-up: {args.posts} posts in {args.threads} threads in "
              f"{time.perf_counter() - started:.1f} s")
        server, base, _ = start_serve(url, Path(tmp))
        try:
            with httpx.Client(base_url=base, timeout=30) as client:
                pages = [f"/lists/{LIST}/"]
                while len(pages) < args.requests:
                    found = re.search(r'<a rel="next" href="([^"]+)"', client.get(pages[-1]).text)
                    if found is None:
                        break
                    pages.append(found.group(1).replace("&amp;", "&"))
                rng = random.Random(11)
                threads = [f"/lists/{LIST}/threads/{rng.randint(1, args.threads)}"
                           for _ in range(args.requests)]
                _time(client, pages[:20] + threads[:20])  # warm-up
                list_ms = _time(client, [pages[i % len(pages)] for i in range(args.requests)])
                thread_ms = _time(client, threads)
                search_ms: list[float] = []
                if client.get(f"/lists/{LIST}/search?q=council").status_code == 200:
                    queries = [f"/lists/{LIST}/search?q={rng.choice(QUERY_WORDS)}"
                               f"+{rng.choice(QUERY_WORDS)}" for _ in range(args.requests)]
                    _time(client, queries[:20])
                    search_ms = _time(client, queries)
        finally:
            server.terminate()
            server.wait(30)
    for label, values in (("list", list_ms), ("thread", thread_ms), ("search", search_ms)):
        if values:
            print(f"{label}: p50={statistics.median(values):.1f} ms p95={p95(values):.1f} ms "
                  f"max={max(values):.1f} ms over {len(values)} requests")
        else:
            print(f"{label}: no search page on this branch")
    search = f"{p95(search_ms):.1f}" if search_ms else "nan"
    print(f"archive posts={args.posts} list_p95_ms={p95(list_ms):.1f} "
          f"thread_p95_ms={p95(thread_ms):.1f} search_p95_ms={search}")


if __name__ == "__main__":
    main()
