"""Two approvals of one held post at the same moment fan it out once (issue 7.7).

Real threads race on the real store: on PostgreSQL each has its own connection and
transaction; a barrier lets both start acting together, as a moderator's reply and the CLI can.
"""

from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy import func
from sqlmodel import select

from listserv import config as config_mod
from listserv import moderation, posting
from listserv.config import Config
from listserv.lists import find
from listserv.message import parse
from listserv.models import Action, AuditEntry, Held, Outbox
from listserv.store import Store
from tests.harness import DOMAIN, mail, make_list

MEMBERS = ("ann@council.gov.uk", "bob@district.gov.uk")
MOD = "mod@council.gov.uk"
OUTSIDER = "dan@elsewhere.example"
POST = f"demo@{DOMAIN}"
ROUNDS = 4


def _hold(store: Store, cfg: Config, n: int) -> tuple[int, int]:
    raw = mail(OUTSIDER, POST, f"Question {n}", message_id=f"q{n}@elsewhere.example")
    with store.session() as s:
        ml = find(s, "demo")
        assert ml is not None
        result = posting.post(s, cfg, ml, raw, parse(raw, domain=DOMAIN),
                              envelope_from=OUTSIDER)
    assert result.held_id is not None
    return result.held_id, result.message_pk


def _copies(store: Store, message_pk: int) -> int:
    with store.session() as s:
        return int(s.exec(select(func.count()).select_from(Outbox).where(
            Outbox.message_pk == message_pk)).one())


def _race(store: Store, cfg: Config, held_id: int) -> list[moderation.ActionResult]:
    """Two approvals of ``held_id`` in two threads, each in its own transaction, released
    together by a barrier."""
    barrier = threading.Barrier(2)
    results: list[moderation.ActionResult] = []
    errors: list[BaseException] = []

    def approve(actor: str) -> None:
        try:
            with store.session() as s:
                barrier.wait(10)
                results.append(moderation.act(s, cfg, held_id, Action.ACCEPT, actor=actor))
        except BaseException as e:  # reported below, not lost in the thread
            errors.append(e)

    threads = [threading.Thread(target=approve, args=(who,)) for who in ("cli", MOD)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    return results


def test_two_simultaneous_approvals_deliver_once(store: Store, config_path: Path) -> None:
    cfg = config_mod.load(config_path, env={})
    make_list(store, "demo", moderators=(MOD,), members=MEMBERS)
    for n in range(ROUNDS):
        held_id, message_pk = _hold(store, cfg, n)
        results = _race(store, cfg, held_id)
        assert sorted(r.ok for r in results) == [False, True], [r.message for r in results]
        assert "already handled" in next(r.message for r in results if not r.ok)
        assert _copies(store, message_pk) == len(MEMBERS) + 1, f"round {n}: delivered twice"
        with store.session() as s:
            held = s.get(Held, held_id)
            assert held is not None and held.resolution == "accept"
            accepted = s.exec(select(func.count()).select_from(AuditEntry).where(
                AuditEntry.action == "held-accept",
                AuditEntry.target.startswith(f"held {held_id} "))).one()  # type: ignore[attr-defined]
            assert accepted == 1
