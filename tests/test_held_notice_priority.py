"""A flood of held posts must not delay real mail (issue 12): the notices about held posts (to
the moderators, and to the sender) are queued at bulk priority, behind confirmations and
replies, in arrival order with members' copies; a confirmation stays a notice."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import select

from listserv import config as config_mod
from listserv.models import Outbox, OutboxPriority
from listserv.store import Store
from tests.harness import DOMAIN, Running, mail, make_list, running

MOD, OUTSIDER, JOINER = "mod@council.gov.uk", "dan@elsewhere.example", "new@council.gov.uk"


@pytest.fixture
def server(store: Store, config_path: Path) -> Iterator[Running]:
    make_list(store, "demo", moderators=(MOD,), members=("ann@council.gov.uk",))
    with running(config_mod.load(config_path, env={}), store) as srv:
        yield srv


def test_held_notices_are_bulk_and_a_confirmation_is_a_notice(server: Running,
                                                              store: Store) -> None:
    server.send(OUTSIDER, f"demo@{DOMAIN}", mail(OUTSIDER, f"demo@{DOMAIN}", "Cheap offer"))
    server.send(JOINER, f"demo-join@{DOMAIN}", mail(JOINER, f"demo-join@{DOMAIN}", "subscribe"))
    server.drain()
    with store.session() as s:
        priority = {r.recipient: r.priority for r in s.exec(select(Outbox)).all()}
    assert priority == {MOD: OutboxPriority.BULK, OUTSIDER: OutboxPriority.BULK,
                        JOINER: OutboxPriority.NOTICE}
