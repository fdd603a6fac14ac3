"""``commonroom archive import`` (``listserv.archive_import``) on the corpus mboxes, on each
backend: threads come out as the threading answer keys say, posts keep their dates, a second
import adds nothing, nothing is delivered, and bad messages are counted, never fatal."""

from __future__ import annotations

import gzip
import mailbox
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, text
from sqlmodel import select

from listserv import archive_import, search
from listserv.models import AuditEntry, DiscordRelay, MailingList, Message, Outbox, Thread
from listserv.store import Store
from tests.harness import cli, make_list, write_config
from tests.test_threads_corpus import FEDORA, IMAP_CASES, IMAPTEST, answer_key, partition, read_mbox


@pytest.fixture
def config(tmp_path: Path, store: Store, db_url: str) -> Path:
    make_list(store, "fedora-devel-list")
    return write_config(tmp_path, db_url, "127.0.0.1:2525")


def _count(store: Store, table: type) -> int:
    with store.read_session() as s:
        return int(s.exec(select(func.count()).select_from(table)).one())


def _partition_by_message_id(store: Store, list_name: str,
                             positions: dict[str, int]) -> set[frozenset[int]]:
    groups: dict[int, list[int]] = {}
    with store.read_session() as s:
        rows = s.exec(select(Message.message_id, Message.thread_id).join(MailingList)
                      .where(MailingList.name == list_name)).all()
    for message_id, thread_id in rows:
        assert thread_id is not None
        groups.setdefault(thread_id, []).append(positions[message_id])
    return partition(groups.values())


def test_fedora_mbox_imports_with_the_archives_threads(config: Path, store: Store,
                                                       corpus: Path) -> None:
    mbox = corpus / FEDORA / "2010-January.txt.gz"
    posts = read_mbox(mbox)
    first = cli(config, "archive", "import", "fedora-devel-list", str(mbox))
    assert first.exit_code == 0, first.output
    assert "imported 292, skipped 0 (already in the archive), unreadable 0" in first.output
    if store.is_postgres:  # indexed by the command (search_behind), not left to a serve
        with store.engine.connect() as conn:
            assert conn.execute(text("SELECT count(*), count(tsv) FROM search_text")).one() \
                == (292, 292)
    positions = {p.message_id: p.position for p in posts}
    want = partition(answer_key(corpus / FEDORA / "2010-January_thread.html.gz"))
    assert _partition_by_message_id(store, "fedora-devel-list", positions) == want

    # Their own dates, accepted then; thread rows agree with their posts.
    with store.read_session() as s:
        rows = s.exec(select(Message)).all()
        for m in rows:
            want_date = posts[positions[m.message_id]].date
            assert m.date == m.accepted_at == m.received_at == want_date
            assert m.status == "accepted"
        for t in s.exec(select(Thread)).all():
            dates = [m.date for m in rows if m.thread_id == t.id]
            assert t.post_count == len(dates) and t.last_post_at == max(d for d in dates if d)
            # The archive's summary is kept for imported posts too (posting.join_archive).
            opening = min((m for m in rows if m.thread_id == t.id),
                          key=lambda m: (m.date or m.received_at, m.id or 0))
            assert t.opening_pk == opening.id and t.participant_count >= 1

    again = cli(config, "archive", "import", "fedora-devel-list", str(mbox))
    assert again.exit_code == 0, again.output
    assert "imported 0, skipped 292 (already in the archive), unreadable 0" in again.output
    assert _count(store, Message) == 292
    assert _count(store, Outbox) == _count(store, DiscordRelay) == 0  # nothing delivered
    with store.read_session() as s:
        audit = s.exec(select(AuditEntry).where(AuditEntry.action == "archive-import")).all()
        assert len(audit) == 2 and audit[0].target == mbox.name
        ml = s.exec(select(MailingList)).one()
        assert ml.id is not None
        found = search.search(s, '"rawhide"', [ml.id])
        assert found.hits and all(h.thread_id is not None for h in found.hits)


def _import(store: Store, path: Path, list_name: str) -> archive_import.Summary:
    summary = archive_import.Summary()
    with archive_import.open_mailbox(path) as (_, entries), store.session() as s:
        ml = s.exec(select(MailingList).where(MailingList.name == list_name)).one()
        for entry in entries:
            archive_import.import_entry(s, ml, entry, summary, domain="lists.test",
                                        source=path.name)
    return summary


def _first_occurrences(ids: Iterable[str]) -> list[int]:
    seen: set[str] = set()
    kept = []
    for i, message_id in enumerate(ids):
        if message_id not in seen:
            seen.add(message_id)
            kept.append(i)
    return kept


@pytest.mark.parametrize("name", sorted(IMAP_CASES))
def test_imaptest_threads(store: Store, corpus: Path, name: str) -> None:
    """The RFC 5256 cases, less the posts that repeat an earlier Message-ID (an archive keeps
    one post per Message-ID; they are counted as duplicates)."""
    path = corpus / IMAPTEST / f"{name}.mbox"
    make_list(store, "imaptest")
    summary = _import(store, path, "imaptest")
    with store.read_session() as s:
        stored = s.exec(select(Message.message_id, Message.thread_id).order_by(Message.id)).all()
    posts = read_mbox(path)
    explicit = [p.message_id if "@corpus.test" not in p.message_id else f"#{p.position}"
                for p in posts]
    kept = _first_occurrences(explicit)
    assert (summary.imported, summary.duplicates) == (len(kept), len(posts) - len(kept))
    groups: dict[int | None, list[int]] = {}
    for position, (_mid, thread_id) in zip(kept, stored, strict=True):
        groups.setdefault(thread_id, []).append(position)
    want = {g & frozenset(kept) for g in partition([[n - 1 for n in g]
                                                    for g in IMAP_CASES[name]])} - {frozenset()}
    assert partition(groups.values()) == want
    again = _import(store, path, "imaptest")
    assert (again.imported, again.duplicates) == (0, len(posts))


BAD_MBOX = (
    b"From ann@example.org  Mon Jan  4 10:00:00 2010\n"
    b"From: Ann <ann@example.org>\nSubject: Fine\nDate: Mon, 4 Jan 2010 10:00:00 +0000\n"
    b"Message-ID: <fine@example.org>\n\nA normal post.\n\n"
    b"From nobody  Mon Jan  4 11:00:00 2010\n\n"
    b"From bob@example.org  not a date at all\n"
    b"From: Bob <bob@example.org>\nSubject: Undated\n\nNo date anywhere.\n\n"
    b"From cat@example.org  Mon Jan  4 12:00:00 2010\n"
    b"From: =?utf-8?q?Cat=E2=80=AE_Evil=0A?= <cat@example.org>\nSubject: No id, envelope date\n"
    b"\nNeither a Message-ID nor a Date: the envelope says when.\n\n"
    b"From dan@example.org  Mon Jan  4 13:00:00 2010\n"
    b"From: dan@example.org\nSubject: Nul \x00 byte\nDate: Mon, 4 Jan 2010 13:00:00 +0000\n"
    b"Message-ID: <nul@example.org>\nContent-Type: text/plain; charset=bogus-charset\n\n\xff\xfe\n"
)


def test_malformed_messages_are_counted_never_fatal(config: Path, store: Store,
                                                    tmp_path: Path) -> None:
    path = tmp_path / "bad.mbox"
    path.write_bytes(BAD_MBOX)
    result = cli(config, "archive", "import", "fedora-devel-list", str(path))
    assert result.exit_code == 0, result.output
    assert "message 2: empty message" in result.output
    assert "message 3: no readable date" in result.output
    with store.read_session() as s:
        no_id = s.exec(select(Message).where(Message.subject == "No id, envelope date")).one()
        assert no_id.date == datetime(2010, 1, 4, 12, tzinfo=UTC)
        assert no_id.from_name == "Cat Evil"  # names.clean: no bidi override, one line
        assert b"Message-ID: <import." in no_id.raw and no_id.raw.startswith(b"Date: Mon, 04 Jan 2010")
    # PostgreSQL refuses a NUL in text: that post is counted as unreadable, not a crash.
    imported = 3 if store.is_sqlite else 2
    assert f"imported {imported}," in result.output
    again = cli(config, "archive", "import", "fedora-devel-list", str(path))
    assert f"imported 0, skipped {imported} (already in the archive)" in again.output


def test_maildir_and_gzip(config: Path, store: Store, tmp_path: Path, corpus: Path) -> None:
    box = mailbox.Maildir(tmp_path / "Maildir", create=True)
    for i in range(3):
        box.add(f"From: ann@example.org\nSubject: Maildir {i}\nMessage-ID: <md{i}@example.org>\n"
                f"{'In-Reply-To: <md0@example.org>' if i else ''}\n"
                f"Date: Mon, 4 Jan 2010 1{i}:00:00 +0000\n\nPost {i}.\n")
    box.close()
    result = cli(config, "archive", "import", "fedora-devel-list", str(tmp_path / "Maildir"))
    assert "imported 3, skipped 0" in result.output, result.output
    assert _count(store, Thread) == 1
    plain = tmp_path / "imap.mbox.gz"
    plain.write_bytes(gzip.compress((corpus / IMAPTEST / "thread5.mbox").read_bytes()))
    assert "imported 5," in cli(config, "archive", "import", "fedora-devel-list",
                                str(plain)).output


def test_errors_say_what_to_do(config: Path, tmp_path: Path) -> None:
    not_mbox = tmp_path / "notes.txt"
    not_mbox.write_text("just some notes\n")
    bad = cli(config, "archive", "import", "fedora-devel-list", str(not_mbox))
    assert bad.exit_code == 1 and "is not an mbox" in bad.output and "Maildir" in bad.output
    nolist = cli(config, "archive", "import", "nosuch", str(not_mbox))
    assert nolist.exit_code == 1 and "there is no list called 'nosuch'" in nolist.output
    folder = tmp_path / "folder"
    folder.mkdir()
    notdir = cli(config, "archive", "import", "fedora-devel-list", str(folder))
    assert notdir.exit_code == 1 and "not a Maildir" in notdir.output
    broken = tmp_path / "broken.mbox.gz"
    broken.write_bytes(gzip.compress(b"From x\n")[:12])
    assert "cannot be unpacked" in cli(config, "archive", "import", "fedora-devel-list",
                                       str(broken)).output
    missing = cli(config, "archive", "import", "fedora-devel-list", str(tmp_path / "nope"))
    assert missing.exit_code == 2 and "does not exist" in missing.output


CORPUS_MBOXES = ["ietf-mailarchive/duplicate_tests.mbox", "ietf-mailarchive/export.mbox",
                 "ietf-mailarchive/latin1.mbox", "ietf-mailarchive/windows1252.mbox",
                 "ietf-mailarchive/mailbox_mmdf", "ietf-mailarchive/mailbox_mbox",
                 "ietf-mailarchive/urlize.mbox", "bigbang-list-archives/2001-November.txt",
                 "bigbang-list-archives/3GPP_mbox/3GPP_TSG_SA_WG4_EVS.mbox",
                 "mimekit/mbox/content-length.mbox.txt",
                 "mimekit/mbox/simple.mbox.txt", "mimekit/mbox/unmunged.mbox.txt"]


# Envelope lines "From -" and no Date header: nothing says when these were written.
UNDATED = {"mimekit/mbox/unmunged.mbox.txt"}


@pytest.mark.parametrize("name", CORPUS_MBOXES)
def test_corpus_mboxes_import_whole(store: Store, corpus: Path, name: str) -> None:
    make_list(store, "corpus")
    with archive_import.open_mailbox(corpus / name) as (count, _entries):
        pass
    summary = _import(store, corpus / name, "corpus")
    assert summary.imported + summary.duplicates + len(summary.unreadable) == count
    assert _count(store, Message) == summary.imported
    if name in UNDATED:
        assert {why for _, why in summary.unreadable} == {"no readable date"}
    else:
        assert summary.imported > 0
