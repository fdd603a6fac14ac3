"""Digest benchmark: one week's digest of a busy list, built once and personalised per member.

    cd /work/main && PYTHONPATH=. .venv/bin/python bench/digest.py
    PYTHONPATH=. .venv/bin/python bench/digest.py --members 10000 --posts 5000 --format mime

Set-up (not timed, in a child process so it does not count in the memory figures): a fresh store
(SQLite in a temp dir, or a throw-away database on the PostgreSQL server given by ``--db``), one
list, N digest members (spread over the plain, MIME and HTML digests with ``--format mixed``),
~300 authors (some vendor staff) and P accepted posts of ~2-3 KB in a fixed week spread over T
threads, all bulk-inserted with SQLAlchemy core executemany.

Measured, in this process:

- build: ``digests.build.collect`` and ``digests.render.render`` once per format in use, i.e.
  building the digest once;
- send_period: ``digests.send.send_period`` for that week (records the period, builds and renders
  the digest again, stores it and queues one outbox row per member with INSERT ... SELECT, in one
  transaction);
- personalise: ``DigestRenderer(copy_id, recipient)`` for every outbox row of the period, read
  from the database in keyset batches of 2,000 rows, as the outbox worker does per member at
  send time (bytes counted, not kept).

queue_seconds = send_period + personalise. Peak RSS is this process's ``ru_maxrss``.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import random
import textwrap
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, formataddr
from typing import Any

from bench.common import (
    CHUNK,
    DOMAIN,
    LIST,
    POST_ADDRESS,
    current_rss_mb,
    fresh_database,
    machine,
    member_email,
    peak_rss_mb,
    quiet_logging,
)

FORMATS = ("plain", "mime", "html")
AUTHORS = 300
WEEK_END = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)  # a Monday, 08:00 (the default schedule)
WEEK_START = WEEK_END - timedelta(days=7)
WEB = "https://lists.example.org"
MESSAGE_CHUNK = 1000  # posts per executemany (~2.5 MB of raw bytes)
BATCH = 2000  # outbox rows per read while personalising

_CTX = mp.get_context("spawn")


def member_format(i: int, fmt: str) -> str:
    return FORMATS[i % 3] if fmt == "mixed" else fmt


def formats_in_use(members: int, fmt: str) -> list[str]:
    return [f for f in FORMATS if any(member_format(i, fmt) == f for i in range(1, min(members, 3) + 1))]


# --- set-up (child process) ----------------------------------------------------------------

_FIRST = ("Alex", "Bethan", "Chidi", "Dorota", "Eamon", "Fatima", "Gareth", "Hannah", "Ifan", "Jo",
          "Kwame", "Lucía", "Mairéad", "Niamh", "Owen", "Priya", "Rhys", "Siân", "Tomasz", "Zoë")
_LAST = ("Ahmed", "Brown", "Campbell", "Davies", "Evans", "Fraser", "Gallagher", "Hughes", "Iqbal",
         "Jones", "Kowalski", "Lloyd", "Murphy", "Nowak", "O'Brien", "Patel", "Roberts", "Smith")
_COUNCILS = ("Aberdeen City Council", "Bristol City Council", "Cardiff Council", "Derry City Council",
             "Leeds City Council", "Norfolk County Council", "Powys County Council", "Wigan Council")
_VENDORS = ("Acme Cloud Ltd", "Civica Systems", "Granicus UK", "OpenGov Partners")
_TOPICS = ("Moving staff e-learning to a cloud tool", "Open data portal: which platform?",
           "Accessibility audits of council websites", "Replacing the planning system",
           "Microsoft 365 licensing after April", "Chatbots on the contact centre",
           "Cyber essentials plus: lessons learnt", "Booking system for leisure centres",
           "GIS data sharing with the fire service", "Digital inclusion: device lending")
_SENTENCES = (
    "We moved our staff e-learning to a cloud tool last spring and the digital team wrote up what "
    "worked, what did not, and what we would do again.",
    "The short version: start with the people who already run training, not the procurement rules.",
    "We piloted with one service first, which saved us from two mistakes we would have made "
    "everywhere at once.",
    "Has anyone had the same experience with the supplier's support desk after go-live?",
    "Our information governance team asked for a data protection impact assessment before anything "
    "else, and I think they were right to.",
    "The framework agreement covers it, but only if you call off before the end of the financial year.",
    "I would be happy to share our specification if it helps; it is on the knowledge hub already.",
    "Costs came in about a fifth under the estimate, mostly because we dropped the bespoke reporting.",
    "Members were sceptical at first, but the demo at the scrutiny committee turned it round.",
    "We publish the guidance openly so that other councils can reuse it under the open government licence.",
    "The accessibility statement needed rewriting, and the audit found forty issues on the forms alone.",
    "Please do not reply to the list with your phone number; send it to me directly instead.",
)


def _paragraph(rng: random.Random, sentences: int) -> str:
    return " ".join(rng.choice(_SENTENCES) for _ in range(sentences))


def _own_words(rng: random.Random, size: int) -> str:
    paragraphs: list[str] = []
    while sum(len(p) for p in paragraphs) < size:
        paragraphs.append(textwrap.fill(_paragraph(rng, rng.randint(2, 4)), width=72))
    return "\n\n".join(paragraphs)


def _author(j: int) -> dict[str, Any]:
    vendor = j % 8 == 7
    org = _VENDORS[j % len(_VENDORS)] if vendor else _COUNCILS[j % len(_COUNCILS)]
    name = f"{_FIRST[j % len(_FIRST)]} {_LAST[(j * 7) % len(_LAST)]}"
    domain = "".join(c for c in org.lower().split()[0] if c.isalnum()) + ".example"
    return {"name": name, "org": org, "vendor": vendor, "email": f"author{j:03d}@{domain}",
            "phone": f"01632 960{j:03d}"}


def _raw_post(author: dict[str, Any], subject: str, message_id: str, date: datetime, own: str,
              parent: tuple[str, str, str, datetime] | None, references: list[str]) -> bytes:
    """A plain-text post: headers, own words, a quoted part (replies) and a signature."""
    head = [f"From: {formataddr((author['name'], author['email']))}", f"To: {POST_ADDRESS}",
            f"Subject: {subject}", f"Date: {format_datetime(date)}", f"Message-ID: <{message_id}>",
            "MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8",
            "Content-Transfer-Encoding: 8bit"]
    body = [f"Hi all,\n\n{own}\n"]
    if parent is not None:
        parent_id, parent_name, parent_text, parent_date = parent
        head += [f"In-Reply-To: <{parent_id}>",
                 "References: " + " ".join(f"<{r}>" for r in [*references[-4:], parent_id])]
        quoted = "\n".join(f"> {line}" if line else ">" for line in parent_text.splitlines()[:14])
        body.append(f"On {format_datetime(parent_date)}, {parent_name} wrote:\n{quoted}\n")
    body.append(f"-- \n{author['name']}\nDigital lead, {author['org']}\n{author['phone']}\n")
    text = "\r\n".join(head) + "\r\n\r\n" + "\n".join(body).replace("\n", "\r\n")
    return text.encode("utf-8")


def setup(url: str, members: int, posts: int, threads: int, fmt: str) -> float:
    """Build the store in a child process; returns seconds."""
    started = time.perf_counter()
    proc = _CTX.Process(target=_setup_main, args=(url, members, posts, threads, fmt), name="bench-setup")
    proc.start()
    proc.join()
    if proc.exitcode != 0:
        raise SystemExit(f"set-up failed (exit code {proc.exitcode})")
    return time.perf_counter() - started


def _setup_main(url: str, members: int, posts: int, threads: int, fmt: str) -> None:
    quiet_logging()
    from sqlalchemy import Table, insert, text

    from listserv.models import (
        Address,
        DeliveryMode,
        MailingList,
        Message,
        MessageStatus,
        Person,
        PersonKind,
        Role,
        Subscription,
        Thread,
    )
    from listserv.store import Store
    from listserv.threads import subject_key

    person: Table = Person.__table__  # type: ignore[attr-defined]
    address: Table = Address.__table__  # type: ignore[attr-defined]
    subscription: Table = Subscription.__table__  # type: ignore[attr-defined]
    message: Table = Message.__table__  # type: ignore[attr-defined]
    thread: Table = Thread.__table__  # type: ignore[attr-defined]

    rng = random.Random(20261123)
    store = Store(url)
    store.upgrade()
    with store.session() as s:
        ml = MailingList(name=LIST, description="Local government digital", max_posts_per_hour=0,
                         created_at=WEEK_START - timedelta(days=400))
        s.add(ml)
        s.flush()
        list_id = ml.id

    # Digest members: joined over the past year, about 1 % of them during the week.
    def joined(i: int) -> datetime:
        if i % 100 == 0:
            return WEEK_START + timedelta(minutes=i % (7 * 24 * 60))
        return WEEK_START - timedelta(days=1 + i % 365)

    for start in range(1, members + 1, CHUNK):
        ids = range(start, min(start + CHUNK, members + 1))
        with store.engine.begin() as conn:
            conn.execute(insert(person), [
                {"id": i, "display_name": f"Member {i}", "organisation": _COUNCILS[i % len(_COUNCILS)],
                 "kind": PersonKind.MEMBER.value, "created_at": joined(i)} for i in ids])
            conn.execute(insert(address), [
                {"id": i, "email": member_email(i), "person_id": i, "verified_at": joined(i)}
                for i in ids])
            conn.execute(insert(subscription), [
                {"id": i, "list_id": list_id, "address_id": i, "role": Role.MEMBER.value,
                 "delivery_mode": member_format(i, fmt), "moderation": "", "created_at": joined(i)}
                for i in ids])

    # Authors: "each post" members (so they are not digest members), every eighth a vendor.
    authors = [_author(j) for j in range(AUTHORS)]
    base = members + 1
    long_ago = WEEK_START - timedelta(days=500)
    with store.engine.begin() as conn:
        conn.execute(insert(person), [
            {"id": base + j, "display_name": a["name"], "organisation": a["org"],
             "kind": (PersonKind.VENDOR if a["vendor"] else PersonKind.MEMBER).value,
             "created_at": long_ago} for j, a in enumerate(authors)])
        conn.execute(insert(address), [
            {"id": base + j, "email": a["email"], "person_id": base + j, "verified_at": long_ago}
            for j, a in enumerate(authors)])
        conn.execute(insert(subscription), [
            {"id": base + j, "list_id": list_id, "address_id": base + j, "role": Role.MEMBER.value,
             "delivery_mode": DeliveryMode.EACH.value, "moderation": "", "official": a["vendor"],
             "created_at": long_ago} for j, a in enumerate(authors)])

    # Posts: thread k opens at the post k * P / T of the week; every twentieth thread began the
    # week before (its opening post is older than the period). Other posts reply to a recently
    # active thread; a few authors write most of the posts.
    weights = [1 / (j + 1) ** 0.8 for j in range(AUTHORS)]
    opens = {k * posts // threads: k for k in range(threads)}
    opened: list[int] = []
    subjects = [f"{_TOPICS[k % len(_TOPICS)]} ({k + 1})" for k in range(threads)]
    last: dict[int, tuple[str, str, str, datetime]] = {}  # thread -> its latest post
    refs: dict[int, list[str]] = {}
    stats: dict[int, list[Any]] = {}  # thread -> [first, last, count]
    rows: list[dict[str, Any]] = []
    step = (WEEK_END - WEEK_START) / posts

    def add(k: int, when: datetime, reply: bool) -> None:
        a = authors[rng.choices(range(AUTHORS), weights)[0]]
        pk = len(rows) + 1
        mid = f"bench-{pk}.{k}@{a['email'].split('@')[1]}"
        subject = ("Re: " if reply else "") + subjects[k]
        own = _own_words(rng, rng.randint(900, 1700))
        parent = last.get(k) if reply else None
        raw = _raw_post(a, subject, mid, when - timedelta(seconds=rng.randint(5, 300)), own, parent,
                        refs.get(k, []))
        rows.append({"id": pk, "list_id": list_id, "thread_id": k + 1, "message_id": mid,
                     "envelope_from": a["email"], "envelope_to": POST_ADDRESS,
                     "from_address": a["email"], "from_name": a["name"], "subject": subject,
                     "date": when - timedelta(seconds=30), "received_at": when,
                     "accepted_at": when, "size": len(raw),
                     "dmarc_policy": "", "policy": "", "status": MessageStatus.ACCEPTED.value,
                     "reason": "", "raw": raw})
        last[k] = (mid, a["name"], own, when)
        refs.setdefault(k, []).append(mid)
        st = stats.setdefault(k, [when, when, 0])
        st[0], st[1], st[2] = min(st[0], when), max(st[1], when), st[2] + 1

    for k in range(threads):
        if k % 20 == 19:
            add(k, WEEK_START - timedelta(days=1 + k % 5, hours=k % 24), reply=False)
    for i in range(posts):
        when = WEEK_START + step * (i + 0.5)
        if i in opens:
            k = opens[i]
            opened.append(k)
            add(k, when, reply=k in last)
        else:
            back = min(int(rng.expovariate(1 / 15)), len(opened) - 1)
            add(opened[len(opened) - 1 - back], when, reply=True)
    with store.engine.begin() as conn:  # threads first: the posts refer to them
        conn.execute(insert(thread), [
            {"id": k + 1, "list_id": list_id, "subject": subjects[k],
             "subject_key": subject_key(subjects[k], LIST)[:255], "first_post_at": st[0],
             "last_post_at": st[1], "post_count": st[2]} for k, st in sorted(stats.items())])
    for start in range(0, len(rows), MESSAGE_CHUNK):
        with store.engine.begin() as conn:
            conn.execute(insert(message), rows[start:start + MESSAGE_CHUNK])
    if store.is_postgres:  # explicit ids leave the sequences behind
        with store.engine.begin() as conn:
            for table in ("person", "address", "subscription", "thread", "message"):
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                  f"(SELECT coalesce(max(id), 1) FROM {table}))"))
    store.dispose()


# --- the measurement (this process) --------------------------------------------------------


def measure(url: str, members: int, posts: int, fmt: str) -> dict[str, Any]:
    from sqlalchemy import func, select

    from digests import build, render
    from digests.send import DigestRenderer, send_period
    from listserv.config import Config, DatabaseConfig, ServerConfig
    from listserv.lists import find
    from listserv.models import DigestCopy, DigestPeriod, Message, Outbox
    from listserv.store import Store

    cfg = Config(server=ServerConfig(domain=DOMAIN, web_base_url=WEB), database=DatabaseConfig(url=url))
    store = Store(url)
    store.secret()  # made once, outside the measurement
    with store.engine.connect() as conn:
        stored = conn.execute(select(func.count(), func.avg(Message.size))).one()  # type: ignore[arg-type]
    out: dict[str, Any] = {"stored_posts": int(stored[0]), "avg_post_bytes": float(stored[1] or 0),
                           "rss_before": current_rss_mb()}

    # (1) Build the digest once: collect, then render once per format in use.
    used = formats_in_use(members, fmt)
    started = time.perf_counter()
    with store.session() as s:
        ml = find(s, LIST)
        assert ml is not None
        digest = build.collect(s, ml, cfg, WEEK_START, WEEK_END, volume=1, number=1)
    collected = time.perf_counter()
    sizes: dict[str, int] = {}
    for f in used:
        rendered = render.render(digest, f)
        sizes[f] = sum(len(i) if isinstance(i, bytes) else sum(map(len, i.chunks)) for i in rendered.items)
        del rendered
    rendered_at = time.perf_counter()
    out.update(collect_seconds=collected - started, render_seconds=rendered_at - collected,
               build_seconds=rendered_at - started, digest_threads=len(digest.threads),
               digest_posts=digest.post_count, rendered_bytes=sizes,
               rss_after_build=current_rss_mb(), peak_after_build=peak_rss_mb())
    del digest

    # (2) Queue: send_period (record, build, render, INSERT ... SELECT), then personalise every copy.
    started = time.perf_counter()
    outcome = send_period(store, cfg, LIST, end=WEEK_END, trigger="bench")
    sent = time.perf_counter()
    if not outcome.recorded or outcome.period_id is None:
        raise SystemExit(f"send_period queued nothing: {outcome.message}")
    out.update(send_seconds=sent - started, queued=outcome.queued, outcome=outcome.message,
               rss_after_send=current_rss_mb(), peak_after_send=peak_rss_mb())

    with store.engine.connect() as conn:
        copies = dict(conn.execute(select(DigestCopy.id, DigestCopy.fmt).where(  # type: ignore[call-overload]
            DigestCopy.period_id == outcome.period_id)).all())
        period_posts = conn.execute(select(DigestPeriod.posts).where(  # type: ignore[call-overload]
            DigestPeriod.id == outcome.period_id)).scalar_one()
    renderer = DigestRenderer(store, cfg)
    count = dict.fromkeys(copies.values(), 0)
    nbytes = dict.fromkeys(copies.values(), 0)
    largest = 0
    started = time.perf_counter()
    # Keyset batches, each read in its own short transaction: the store begins every SQLite
    # transaction IMMEDIATE (the write lock), so one long streaming read would lock out the
    # renderer's own session ("database is locked"). Memory is one batch, as with yield_per.
    after = 0
    while True:
        with store.engine.connect() as conn:
            batch = conn.execute(
                select(Outbox.id, Outbox.digest_id, Outbox.recipient)  # type: ignore[call-overload]
                .where(Outbox.digest_id.in_(list(copies)), Outbox.id > after)  # type: ignore[union-attr]
                .order_by(Outbox.id).limit(BATCH)).all()
        if not batch:
            break
        after = batch[-1][0]
        for _id, copy_id, recipient in batch:
            n = len(renderer(copy_id, recipient))
            f = copies[copy_id]
            count[f] += 1
            nbytes[f] += n
            largest = max(largest, n)
        del batch
    personalised = time.perf_counter()
    total = sum(count.values())
    out.update(personalise_seconds=personalised - started, copies=total, copy_count=count,
               copy_bytes=nbytes, largest_copy=largest, period_posts=int(period_posts),
               rss_after_personalise=current_rss_mb())
    out["queue_seconds"] = out["send_seconds"] + out["personalise_seconds"]
    store.dispose()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--members", type=int, default=10_000, help="digest members")
    parser.add_argument("--posts", type=int, default=5_000, help="accepted posts in the week")
    parser.add_argument("--threads", type=int, default=400, help="threads the posts are spread over")
    parser.add_argument("--format", choices=[*FORMATS, "mixed"], default="mixed",
                        help="the members' digest format; mixed: a third each")
    parser.add_argument("--db", default="sqlite",
                        help="'sqlite' (a temp file) or a postgresql:// URL of a server on "
                             "which a throw-away database is created")
    args = parser.parse_args()
    if args.members < 1 or args.posts < 1 or not 1 <= args.threads <= args.posts:
        parser.error("need members >= 1, posts >= 1 and 1 <= threads <= posts")
    quiet_logging()
    members, posts = args.members, args.posts
    print(f"digest of {posts:,} posts in {args.threads} threads to {members:,} digest members "
          f"(format {args.format}), db={'sqlite' if args.db == 'sqlite' else 'postgresql'}; {machine()}")
    with fresh_database(args.db) as url:
        seconds = setup(url, members, posts, args.threads, args.format)
        print(f"  set-up (schema, list, {members:,} members, {AUTHORS} authors, posts and threads, "
              f"bulk insert): {seconds:.1f} s")
        r = measure(url, members, posts, args.format)
    mb = 1024 * 1024
    print(f"  store: {r['stored_posts']:,} posts of {r['avg_post_bytes']:,.0f} bytes on average "
          f"({posts:,} in the week)")
    print(f"  memory: RSS {r['rss_before']:.0f} MB before the measurement")
    rendered = ", ".join(f"{f} {n / mb:.1f} MB" for f, n in r["rendered_bytes"].items())
    print(f"  build (once): {r['build_seconds']:.2f} s = collect {r['collect_seconds']:.2f} s "
          f"({r['digest_threads']} threads, {r['digest_posts']:,} posts) + render "
          f"{r['render_seconds']:.2f} s ({rendered})"
          f"; RSS {r['rss_after_build']:.0f} MB, peak {r['peak_after_build']:.0f} MB")
    print(f"  send_period (record + build + render + INSERT ... SELECT): {r['send_seconds']:.2f} s, "
          f"{r['queued']:,} copies queued for {r['period_posts']:,} posts; RSS "
          f"{r['rss_after_send']:.0f} MB, peak {r['peak_after_send']:.0f} MB")
    copies = max(r["copies"], 1)
    print(f"  personalise (DigestRenderer for every outbox row, read in batches): "
          f"{r['personalise_seconds']:.2f} s for {r['copies']:,} copies, "
          f"{r['personalise_seconds'] / copies * 1e6:,.0f} µs per copy, "
          f"{sum(r['copy_bytes'].values()) / mb:,.0f} MB in all; RSS {r['rss_after_personalise']:.0f} MB")
    for f in FORMATS:
        if r["copy_count"].get(f):
            print(f"    {f}: {r['copy_count'][f]:,} copies of {r['copy_bytes'][f] / r['copy_count'][f]:,.0f} "
                  f"bytes on average")
    print(f"  queue_seconds = send_period + personalise = {r['queue_seconds']:.2f} s")
    peak = peak_rss_mb()
    print(f"  memory: peak RSS {peak:.0f} MB (before the measurement {r['rss_before']:.0f} MB)")
    print(f"digest members={members} posts={posts} build_seconds={r['build_seconds']:.2f} "
          f"queue_seconds={r['queue_seconds']:.2f} peak_rss_mb={peak:.0f}")


if __name__ == "__main__":
    main()
