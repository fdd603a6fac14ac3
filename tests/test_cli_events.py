"""``commonroom events``: add prints the id and announces; list, attendees, change, cancel;
mistakes are said plainly and exit non-zero."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import select

from listserv import config as config_mod
from listserv import events
from listserv.config import Config
from listserv.models import Event, Outbox, utcnow
from listserv.store import Store
from tests.harness import cli, make_list, write_config

MOD, ANN = "mod@council.gov.uk", "ann@council.gov.uk"


@pytest.fixture
def config(tmp_path: Path, store: Store, db_url: str) -> Path:
    make_list(store, "demo", moderators=(MOD,), members=(ANN,))
    return write_config(tmp_path, db_url, "127.0.0.1:2525")


def add(config: Path, *extra: str) -> str:
    result = cli(config, "events", "add", "demo", "--title", "Social media cafe",
                 "--start", "2030-09-03T09:30", "--end", "2030-09-03T12:30", *extra)
    assert result.exit_code == 0, result.output
    return str(result.output.strip())


def test_add_announces_and_lists(tmp_path: Path, config: Path, store: Store) -> None:
    (tmp_path / "about.txt").write_text("Coffee and questions.\n", encoding="utf-8")
    event_id = add(config, "--where", "Ripley library", "--capacity", "1",
                   "--description-file", str(tmp_path / "about.txt"))
    assert event_id.isdigit()
    with store.session() as s:
        event = s.get(Event, int(event_id))
        assert event is not None and event.description == "Coffee and questions.\n"
        assert event.timezone == "Europe/London" and event.starts_at.hour == 8  # BST
        queued = s.exec(select(Outbox).where(Outbox.message_pk == event.message_pk)).all()
        assert sorted(r.recipient for r in queued) == [ANN, MOD]
    listed = cli(config, "events", "list", "demo")
    assert "Social media cafe" in listed.output and "0/1 coming" in listed.output
    assert "nobody" in cli(config, "events", "attendees", event_id).output
    with store.session() as s:
        event = s.get(Event, int(event_id))
        assert event is not None
        events.attend(s, load_cfg(config), event, ANN, via="test", now=utcnow())
    assert f"{ANN}\tattending" in cli(config, "events", "attendees", event_id).output
    changed = cli(config, "events", "change", event_id, "--where", "Ripley town hall")
    assert changed.exit_code == 0 and "changed location" in changed.output
    cancelled = cli(config, "events", "cancel", event_id)
    assert cancelled.exit_code == 0 and "1 told" in cancelled.output
    assert cli(config, "events", "cancel", event_id).exit_code == 1
    assert "no events" in cli(config, "events", "list", "demo").output


def load_cfg(path: Path) -> Config:
    return config_mod.load(path, env={})


@pytest.mark.parametrize(("args", "code", "said"), [
    (("add", "nope", "--title", "T", "--start", "2030-01-01T10:00", "--end", "2030-01-01T11:00"),
     1, "nope"),
    (("add", "demo", "--title", "T", "--start", "tomorrow", "--end", "2030-01-01T11:00"),
     2, "is not a time"),
    (("add", "demo", "--title", "T", "--start", "2030-01-01T10:00", "--end", "2030-01-01T09:00"),
     1, "end after it starts"),
    (("add", "demo", "--title", "T", "--start", "2001-01-01T10:00", "--end", "2001-01-01T11:00"),
     1, "in the future"),
    (("add", "demo", "--title", "T", "--start", "2030-01-01T10:00", "--end", "2030-01-01T11:00",
      "--tz", "Mars/Base"), 2, "not a time zone"),
    (("add", "demo", "--title", "T", "--start", "2030-01-01T10:00", "--end", "2030-01-01T11:00",
      "--capacity", "0"), 2, "capacity"),
    (("attendees", "999"), 1, "no event 999"),
    (("cancel", "999"), 1, "events list"),
])
def test_mistakes_are_said_and_exit_non_zero(config: Path, args: tuple[str, ...], code: int,
                                             said: str) -> None:
    result = cli(config, "events", *args)
    assert result.exit_code == code, result.output
    assert said in result.output
