"""Digests are stored as data (versioned JSON), not as pickles (issue 7.22)."""

from __future__ import annotations

import json
import os
import pickle
from dataclasses import replace

import pytest
from sqlalchemy import text
from sqlmodel import select

from digests import render, stored
from digests.send import DigestRenderer
from listserv.config import Config
from listserv.models import DigestCopy
from listserv.store import Store
from tests.test_digest_render import ALICE, DIGEST, _headers


@pytest.mark.parametrize("fmt", sorted(render.FORMATS))
def test_round_trip_every_format(fmt: str) -> None:
    rendered = render.render(DIGEST, fmt)
    data = stored.dump(rendered)
    assert stored.load(data) == rendered
    assert render.personalise(stored.load(data), ALICE, _headers()) == render.personalise(
        rendered, ALICE, _headers())


def test_stored_form_is_plain_data() -> None:
    doc = json.loads(stored.dump(render.render(DIGEST, "mime")).decode("utf-8"))
    assert doc["version"] == 1 and doc["fmt"] == "mime" and doc["subject"].startswith("demo Digest")
    kinds = {next(iter(k for k in item if k in ("bytes", "part"))) for item in doc["items"]}
    assert kinds == {"bytes", "part"}


def test_a_version_1_document_written_by_hand_loads() -> None:
    """The stored form is an interface: this literal must keep loading whatever the classes
    become (the text parts' derived fields are computed on load)."""
    token = "%%unsubscribe_url.0123456789abcdef%%"
    doc = {"version": 1, "fmt": "plain", "subject": "demo Digest, Vol 1, Issue 1",
           "text": "Hello\nLeave: %%unsubscribe_url%%\n",
           "items": [{"bytes": "TUlNRS1WZXJzaW9uOiAxLjAK"},  # "MIME-Version: 1.0\n"
                     {"part": "plain", "text": f"Hello\nLeave: {token}\n",
                      "tokens": [[token, render.UNSUBSCRIBE_URL]], "description": ""}]}
    loaded = stored.load(json.dumps(doc).encode())
    copy = render.personalise(loaded, ALICE, {"From": "demo <demo@lists.example.org>"})
    assert b"MIME-Version: 1.0\n" in copy
    assert f"Leave: {ALICE.unsubscribe_url}\n".encode() in copy


@pytest.mark.parametrize("data", [pickle.dumps(render.render(DIGEST, "plain")), b"{}",
                                  b'{"version": 99}', b"\xff\xfe"])
def test_what_is_not_a_stored_digest_is_refused_with_a_reason(data: bytes) -> None:
    with pytest.raises(stored.StoredDigestError):
        stored.load(data)


def _downgrade(store: Store, revision: str) -> None:
    from alembic import command
    from alembic.config import Config as AlembicConfig

    from listserv.store import MIGRATIONS

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with store.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


class _Evil:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("echo pwned",))


def test_migration_turns_pickled_digests_into_data(db_url: str) -> None:
    """Rows written by the pickling code (before 0007) are converted in the migration, without
    running any code a pickle names; a row that is not a digest pickle is left as it was."""
    store = Store(db_url)
    try:
        store.upgrade("0003")
        old = {fmt: render.render(DIGEST, fmt) for fmt in sorted(render.FORMATS)}
        with store.engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO mailing_list (name, description, subject_prefix, nonmember_action, "
                "dmarc_mitigation, created_at) VALUES ('demo', '', '', 'hold', 'auto', "
                "CURRENT_TIMESTAMP)"))
            conn.execute(text(
                "INSERT INTO digest_period (list_id, period_start, period_end, volume, number, "
                "threads, posts, copies, trigger, created_at) SELECT id, CURRENT_TIMESTAMP, "
                "CURRENT_TIMESTAMP, 1, 1, 3, 5, 3, 'schedule', CURRENT_TIMESTAMP FROM mailing_list"))
            for fmt, rendered in [*old.items(), ("evil", _Evil())]:
                conn.execute(text("INSERT INTO digest_copy (period_id, fmt, rendered) "
                                  "SELECT id, :fmt, :data FROM digest_period"),
                             {"fmt": fmt, "data": pickle.dumps(rendered)})
        store.upgrade()
        with store.session() as s:
            copies = {c.fmt: (c.id, c.rendered) for c in s.exec(select(DigestCopy))}
        for fmt, rendered in old.items():
            assert stored.load(copies[fmt][1]) == rendered, fmt
        assert copies["evil"][1] == pickle.dumps(_Evil())  # untouched, and never unpickled
        with pytest.raises(stored.StoredDigestError):
            stored.load(copies["evil"][1])
        member_copy = DigestRenderer(store, replace(Config()))(copies["html"][0] or 0, ALICE.email)
        assert b"multipart/alternative" in member_copy and ALICE.email.encode() in member_copy

        _downgrade(store, "0003")  # back to what the earlier code reads
        with store.session() as s:
            back = {c.fmt: c.rendered for c in s.exec(select(DigestCopy))}
        assert all(pickle.loads(back[fmt]) == rendered for fmt, rendered in old.items())
    finally:
        store.dispose()


def test_rendered_digests_pickle_under_the_name_the_earlier_code_reads() -> None:
    """Migration 0007's downgrade writes pickles for the code before it, which knows only
    digests.render.Rendered and TextPart: the render package split must keep those names."""
    data = pickle.dumps(render.render(DIGEST, "plain"))
    assert b"digests.render" in data and b"digests.render." not in data
    assert render.Rendered.__module__ == render.TextPart.__module__ == "digests.render"
