"""Real mail nobody here wrote, posted through real SMTP: every message is stored, none is lost.

Each corpus message is sent by a non-member, so it takes the longest path: stored, threaded,
held, the moderator notified with the post attached, the sender told.
"""

from __future__ import annotations

import smtplib
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func
from sqlmodel import select

from listserv import config as config_mod
from listserv.models import Message, MessageStatus
from listserv.store import Store
from tests.harness import DOMAIN, Running, make_list, running, write_config
from tests.smtpsink import SmtpSink
from tests.test_message import CORPUS, messages


@pytest.fixture
def server(store: Store, tmp_path: Path, db_url: str) -> Iterator[Running]:
    with SmtpSink() as sink:
        make_list(store, "corpus", moderators=("mod@council.gov.uk",))
        path = write_config(tmp_path, db_url, f"127.0.0.1:{sink.port}")
        with running(config_mod.load(path, env={}), store) as srv:
            yield srv


def test_every_corpus_message_is_stored(server: Running, store: Store, corpus: Path) -> None:
    found = [m for folder, (singles, mboxes, _) in CORPUS.items()
             for m in messages(corpus / folder, singles, mboxes)]
    assert len(found) > 600
    refused: list[tuple[str, int, bytes]] = []
    sent = 0
    with smtplib.SMTP("127.0.0.1", server.port, timeout=60) as client:
        for name, raw in found:
            try:
                client.sendmail("sender@corpus.example", f"corpus@{DOMAIN}", raw)
                sent += 1
            except smtplib.SMTPResponseException as e:
                refused.append((name, e.smtp_code, e.smtp_error))
    # Only the size limit may refuse a message (the test config allows 200 KB).
    assert all(code == 552 for _, code, _ in refused), refused
    assert len(refused) < 10
    server.settle(120)  # a 250 means queued: the pipeline may still be handling the last ones
    with store.session() as s:
        stored = s.exec(select(func.count()).select_from(Message)).one()
        shunted = s.exec(select(Message.reason).where(
            Message.status == MessageStatus.SHUNTED.value)).all()
    assert shunted == []
    assert stored == sent
    server.drain(60)
