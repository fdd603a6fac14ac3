"""What posting stores, pinned row by row (issue 12: a cheaper accepted post must store the same).

One fixed scenario, with the clock and every random source frozen: corpus mail posted to a list
that takes non-members' posts (members, vendor staff under the participation policy, a ban, a
rate limit, a competition thread, a Discord bridge) and to one that holds them, alone and in
groups of five savepoints in one transaction (as the group committer runs them); some held posts
approved or rejected by a moderator, and one mbox imported into the archive. Every table's rows
are then compared with ``tests/data/posting_rows.{sqlite,postgresql}.json``, which the code at
main acc4241 (before the accepted post was written with fewer statements) stored. The
PostgreSQL one was written again at branch i12-pg-ids-ahead (message and thread ids taken
ahead from their sequences in blocks, ``listserv/ids_ahead.py``): every row the same but for a
one-to-one renumbering of those ids, checked table by table (213 posts, 102 threads).

Regenerate only on purpose, from code known to be right: ``COMMONROOM_WRITE_POSTING_ROWS=1``.
"""

from __future__ import annotations

import gzip
import hashlib
import itertools
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select as core_select
from sqlmodel import Session, SQLModel

import listserv.models
from listserv import archive_import, bans, competitions, moderation, posting
from listserv.config import Config
from listserv.lists import find
from listserv.message import parse
from listserv.models import Action, DeliveryMode, Held, MailingList, Role
from listserv.store import Store
from listserv.subscriptions import add_member, find_subscription
from tests.harness import mail

DATA = Path(__file__).parent / "data"
START = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
CFG = replace(Config(), bridges={"open": "123456789012345678"})
OPEN, CLOSED = "open", "closed"
SOMEONE = "someone@example.net"  # the envelope sender of mail with no usable From


class _Clock(datetime):
    """``listserv.models.utcnow`` reads this: the time the scenario says it is."""

    current = START

    @classmethod
    def now(cls, tz: Any = None) -> datetime:  # type: ignore[override]
        return cls.current


@pytest.fixture
def frozen(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A fixed clock, and tokens, ids and boundaries counted instead of drawn."""
    counter = itertools.count(1)

    def token(n: int = 32) -> bytes:
        return hashlib.sha256(f"token {next(counter)}".encode()).digest()[:n]

    monkeypatch.setattr(listserv.models, "datetime", _Clock)
    monkeypatch.setattr(_Clock, "current", START)
    monkeypatch.setattr("secrets.token_bytes", token)
    monkeypatch.setattr("secrets.token_hex", lambda n=32: token(n).hex())
    monkeypatch.setattr("secrets.randbelow", lambda n: int.from_bytes(token(8)) % n)
    monkeypatch.setattr(uuid, "uuid4", lambda: uuid.UUID(bytes=token(16)))
    msgid = lambda domain=None, **_k: f"<frozen.{next(counter)}@{domain or 'frozen.invalid'}>"  # noqa: E731
    for module in ("listserv.notices", "listserv.competitions"):
        monkeypatch.setattr(f"{module}.make_msgid", msgid)
    yield


def tick(seconds: int = 1) -> None:
    _Clock.current = _Clock.current + timedelta(seconds=seconds)


# --- the mail --------------------------------------------------------------------------------

def _mbox_messages(path: Path, limit: int) -> list[bytes]:
    data = gzip.decompress(path.read_bytes())
    out: list[bytes] = []
    for chunk in data.split(b"\nFrom ")[1:limit + 1]:  # the first From_ line has no newline
        # The archive's copies say "Precedence: junk" (the list's own): automatic mail to us.
        body = chunk.split(b"\n", 1)[1].replace(b"\n>From ", b"\nFrom ")
        out.append(body.replace(b"\nPrecedence:", b"\nX-Precedence:"))
    return out


def corpus_mail(corpus: Path) -> list[tuple[str, bytes]]:
    """(list, raw) in posting order: a real list's threads to the open list, odd and multipart
    mail to both."""
    posts = [(OPEN, raw) for raw in _mbox_messages(
        corpus / "jwzthreading-fedora" / "fedora-devel-mailman" / "2010-January.txt.gz", 90)]
    odd = sorted((corpus / "ruby-mail" / "error_emails").iterdir())
    odd += sorted((corpus / "cpython-test_email").glob("msg_*.txt"))[:30]
    odd += sorted((corpus / "email_reply_trimmer-discourse" / "emails").iterdir())[:20]
    for i, path in enumerate(odd):
        posts.insert(3 * i + 1, (CLOSED if i % 2 else OPEN, path.read_bytes()))
    return posts


# --- the scenario ----------------------------------------------------------------------------

def _senders(posts: list[tuple[str, bytes]]) -> list[str]:
    seen: dict[str, None] = {}
    for _name, raw in posts:
        address = parse(raw, domain=CFG.server.domain).from_address
        if address:
            seen.setdefault(address.lower())
    return list(seen)


def set_up(store: Store, posts: list[tuple[str, bytes]]) -> str:
    """The two lists, their people, a ban and a competition; the competition's Message-ID."""
    senders = _senders(posts)
    with store.session() as s:
        open_list = MailingList(name=OPEN, nonmember_action=Action.ACCEPT.value,
                                max_posts_per_hour=4)
        closed = MailingList(name=CLOSED)
        s.add_all([open_list, closed])
        s.flush()
        for ml in (open_list, closed):
            add_member(s, ml, "mod@example.org", role=Role.MODERATOR, verified=True)
            add_member(s, ml, "ann@example.org", name="Ann", verified=True)
            add_member(s, ml, "bo@example.org", mode=DeliveryMode.MIME, verified=True)
            add_member(s, ml, "cy@example.org", mode=DeliveryMode.NOMAIL, verified=True)
        for i, address in enumerate(senders):
            # Members who post, most of them taking no mail (the outbox rows stay few).
            mode = DeliveryMode.EACH if i < 2 else DeliveryMode.NOMAIL
            if i % 4 == 0:
                add_member(s, open_list, address, name=f"Poster {i}", mode=mode, verified=True)
            elif i % 4 == 1:
                add_member(s, open_list, address, organisation="Acme Ltd", vendor=True,
                           mode=mode, verified=True)
        bans.add(s, open_list, senders[2], reason="pinned", actor="test")
        add_member(s, closed, "barry@python.org", role=Role.NONMEMBER)  # rejected, and told
        assert closed.id is not None
        known = find_subscription(s, closed.id, "barry@python.org")
        assert known is not None
        known.moderation = Action.REJECT.value
        comp = competitions.start(s, CFG, open_list, prize="A book",
                                  closes_at=START + timedelta(days=30), now=START, actor="test")
        assert comp.message_pk is not None
        announcement = s.get(listserv.models.Message, comp.message_pk)
        assert announcement is not None
        return announcement.message_id


def post_all(store: Store, posts: list[tuple[str, bytes]]) -> list[Action]:
    """Each post through ``posting.post``: runs of five share a transaction (a savepoint each,
    as the group committer does), the rest one transaction each."""
    done: list[Action] = []
    i = 0
    while i < len(posts):
        size = 5 if (i // 5) % 3 == 1 else 1
        with store.session() as s:
            for list_name, raw in posts[i:i + size]:
                tick()
                ml = find(s, list_name)
                assert ml is not None
                parsed = parse(raw, domain=CFG.server.domain)
                with s.begin_nested():
                    result = posting.post(s, CFG, ml, raw, parsed,
                                          envelope_from=parsed.from_address or SOMEONE)
                done.append(result.decision.action)
        i += size
    return done


def competition_replies(store: Store, announcement: str) -> None:
    for n, sender in enumerate(["ann@example.org", "bo@example.org", "stranger@else.example",
                                "ann@example.org"]):
        tick()
        raw = mail(sender, f"{OPEN}@{CFG.server.domain}", "Re: Competition: win A book",
                   f"Count me in ({n}).\n", message_id=f"entry{n}@example.org",
                   headers={"In-Reply-To": f"<{announcement}>"})
        with store.session() as s:
            ml = find(s, OPEN)
            assert ml is not None
            posting.post(s, CFG, ml, raw, parse(raw, domain=CFG.server.domain),
                         envelope_from=sender)


def moderate(store: Store) -> None:
    """Approve two of every three held posts (oldest first), reject the rest."""
    with store.session() as s:
        held = [h.id for h in s.exec(core_select(Held).order_by(Held.id)).scalars()]  # type: ignore[call-overload]
    for n, held_id in enumerate(held):
        tick()
        with store.session() as s:
            action = Action.REJECT if n % 3 == 2 else Action.ACCEPT
            moderation.act(s, CFG, held_id, action, actor="mod@example.org")


def import_mbox(store: Store, corpus: Path) -> None:
    path = corpus / "bigbang-list-archives" / "3GPP_mbox" / "3GPP_TSG_SA_WG4_EVS.mbox"
    summary = archive_import.Summary()
    with store.session() as s:
        ml = find(s, CLOSED)
        assert ml is not None
        with archive_import.open_mailbox(path) as (_total, entries):
            for entry in itertools.islice(entries, 40):
                archive_import.import_entry(s, ml, entry, summary, domain=CFG.server.domain,
                                            source=path.name)


# --- the rows --------------------------------------------------------------------------------

def _value(v: Any) -> Any:
    if isinstance(v, datetime):
        return (v if v.utcoffset() is not None else v.replace(tzinfo=UTC)).isoformat()
    if isinstance(v, bytes | memoryview):
        data = bytes(v)
        return f"bytes {len(data)} {hashlib.sha256(data).hexdigest()[:24]}"
    if isinstance(v, str) and len(v) > 80:
        return f"str {len(v)} {hashlib.sha256(v.encode('utf-8', 'surrogatepass')).hexdigest()[:24]} {v[:40]}"
    return v


def rows(store: Store) -> dict[str, list[list[Any]]]:
    """Every table of the models, each row's columns in the model's order, by primary key."""
    out: dict[str, list[list[Any]]] = {}
    with Session(store.engine) as s:
        for table in SQLModel.metadata.sorted_tables:
            found = s.connection().execute(
                core_select(table).order_by(*table.primary_key.columns)).all()
            if found:
                out[table.name] = [[_value(v) for v in row] for row in found]
    return out


def dump(snapshot: dict[str, list[list[Any]]]) -> str:
    """One row a line, so a difference reads as a diff."""
    parts = []
    for name, table_rows in snapshot.items():
        lines = ",\n".join("  " + json.dumps(r, ensure_ascii=False) for r in table_rows)
        parts.append(f"{json.dumps(name)}: [\n{lines}\n]")
    return "{\n" + ",\n".join(parts) + "\n}\n"


def test_posting_stores_the_rows_it_always_stored(store: Store, corpus: Path,
                                                  frozen: None) -> None:
    posts = corpus_mail(corpus)
    announcement = set_up(store, posts)
    actions = post_all(store, posts)
    assert {a: actions.count(a) for a in Action} == {
        Action.ACCEPT: 93, Action.HOLD: 62, Action.REJECT: 5, Action.DISCARD: 8}, \
        "the scenario reaches every kind of decision"
    competition_replies(store, announcement)
    moderate(store)
    import_mbox(store, corpus)
    got = rows(store)
    # Per backend: SQLite reuses the highest id of a deleted row (a merged thread), PostgreSQL's
    # sequences do not.
    snapshot = DATA / f"posting_rows.{store.engine.dialect.name}.json"
    if os.environ.get("COMMONROOM_WRITE_POSTING_ROWS"):
        snapshot.write_text(dump(got))
    want = json.loads(snapshot.read_text())
    assert list(got) == list(want), "the same tables have rows"
    for name, table_rows in want.items():
        mine = got[name]
        for n, (a, b) in enumerate(zip(mine, table_rows, strict=False)):
            assert a == b, f"{name} row {n}: stored {a}, pinned {b}"
        assert len(mine) == len(table_rows), f"{name}: {len(mine)} rows, pinned {len(table_rows)}"
