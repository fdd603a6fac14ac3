"""The command line: every command has --help, errors say what to do and exit non-zero."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from listserv.cli import main
from listserv.store import Store
from tests.harness import cli, write_config


def all_commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [prefix]
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found += all_commands(command, (*prefix, name))
        else:
            found.append((*prefix, name))
    return found


@pytest.mark.parametrize("command", all_commands(main), ids=" ".join)
def test_every_command_has_help(command: tuple[str, ...]) -> None:
    result = CliRunner().invoke(main, [*command, "--help"])
    assert result.exit_code == 0 and "Usage:" in result.output
    assert len(result.output.splitlines()) > 3


@pytest.fixture
def config(tmp_path: Path, store: Store, db_url: str) -> Path:
    return write_config(tmp_path, db_url, "127.0.0.1:2525")


def test_init_writes_config_and_store(tmp_path: Path) -> None:
    path = tmp_path / "commonroom.toml"
    result = CliRunner().invoke(main, ["--config", str(path), "init", "--domain", "lists.x.org"])
    assert result.exit_code == 0, result.output
    assert 'domain = "lists.x.org"' in path.read_text()
    assert (tmp_path / "var" / "commonroom.db").exists()
    again = CliRunner().invoke(main, ["--config", str(path), "init"])
    assert again.exit_code == 1 and "--force" in again.output


def test_bad_config_names_the_key(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[delivery]\nconnections = 'many'\n")
    result = CliRunner().invoke(main, ["--config", str(path), "lists", "list"])
    assert result.exit_code == 1
    assert "[delivery] connections must be int" in result.output
    missing = CliRunner().invoke(main, ["--config", str(tmp_path / "nope.toml"), "lists", "list"])
    assert missing.exit_code == 1 and "commonroom init" in missing.output


def test_env_overrides_config(config: Path) -> None:
    result = CliRunner().invoke(main, ["--config", str(config), "lists", "list"],
                                env={"COMMONROOM_SERVER_SMTP_PORT": "0"})
    assert result.exit_code == 1 and "[server] smtp_port" in result.output


def test_zero_max_attempts_stops_serve_with_the_key_named(config: Path) -> None:
    """Issue 7.19: 0 used to reach the outbox worker and stop start-up with a bare ValueError."""
    config.write_text(config.read_text() + "max_attempts = 0\n")
    result = CliRunner().invoke(main, ["--config", str(config), "serve"])
    assert result.exit_code == 1 and not isinstance(result.exception, ValueError)
    assert "[delivery] max_attempts must be between 1 and" in result.output
    from_env = CliRunner().invoke(main, ["--config", str(config), "lists", "list"],
                                  env={"COMMONROOM_DELIVERY_CONNECTIONS": "-3"})
    assert from_env.exit_code == 1 and "[delivery] connections must be between" in from_env.output


def test_lists_lifecycle(config: Path) -> None:
    made = cli(config, "lists", "create", "digital-tools", "--description", "Tools talk",
               "--moderator", "Mod@Council.gov.uk")
    assert made.exit_code == 0, made.output
    assert cli(config, "lists", "create", "digital-tools").exit_code == 1
    bad = cli(config, "lists", "create", "Bad Name!")
    assert bad.exit_code == 1 and "lower-case" in bad.output
    clash = cli(config, "lists", "create", "foo-request")
    assert clash.exit_code == 1 and "clash" in clash.output
    assert "digital-tools@lists.example.org" in cli(config, "lists", "list").output
    shown = cli(config, "lists", "show", "digital-tools").output
    assert "mod@council.gov.uk" in shown and "nonmember_action = hold" in shown
    assert cli(config, "lists", "set", "digital-tools", "nonmember_action", "reject").exit_code == 0
    wrong = cli(config, "lists", "set", "digital-tools", "nonmember_action", "maybe")
    assert wrong.exit_code == 1 and "one of" in wrong.output
    unknown = cli(config, "lists", "show", "nope")
    assert unknown.exit_code == 1 and "digital-tools" in unknown.output


def test_members_add_list_remove(config: Path) -> None:
    assert cli(config, "lists", "create", "demo").exit_code == 0
    added = cli(config, "members", "add", "demo", "vic@vendor.example", "--name", "Vic",
                "--org", "Acme Ltd", "--vendor")
    assert added.exit_code == 0, added.output
    assert "already" in cli(config, "members", "add", "demo", "VIC@vendor.example").output
    rows = [json.loads(line) for line in
            cli(config, "members", "list", "demo", "--json").output.splitlines()]
    assert rows == [{"email": "vic@vendor.example", "name": "Vic", "organisation": "Acme Ltd",
                     "vendor": True, "role": "member", "delivery": "each",
                     "bounce_score": 0.0, "last_bounce": None, "delivery_disabled": False,
                     "delivery_disabled_at": None}]
    assert "(Acme Ltd, vendor)" in cli(config, "members", "list", "demo").output
    assert cli(config, "members", "add", "demo", "not-an-address").exit_code == 1
    assert cli(config, "members", "remove", "demo", "vic@vendor.example").exit_code == 0
    gone = cli(config, "members", "remove", "demo", "vic@vendor.example")
    assert gone.exit_code == 1 and "not a member" in gone.output


def test_names_with_line_breaks_are_cleaned_where_they_enter(config: Path, tmp_path: Path) -> None:
    """Issue 7.20: a line break or control character in a name or organisation made every copy
    of that person's posts fail to render."""
    assert cli(config, "lists", "create", "demo").exit_code == 0
    added = cli(config, "members", "add", "demo", "vic@vendor.example", "--name", "Vic\nVendor",
                "--org", "Acme\r\nLtd\x00", "--vendor")
    assert added.exit_code == 0, added.output
    csv_path = tmp_path / "members.csv"
    csv_path.write_text('Email address,Nickname\nann@council.gov.uk,"Ann\nOther\x07"\n')
    assert cli(config, "members", "import", "demo", str(csv_path)).exit_code == 0
    assert cli(config, "members", "add", "demo", "cat@acme.example").exit_code == 0
    assert cli(config, "members", "set", "demo", "cat@acme.example", "--name", "Cat\u2028Two",
               "--vendor", "Acme\tLtd").exit_code == 0
    assert cli(config, "lists", "set", "demo", "description", "Tools\r\nBcc: x@y").exit_code == 0
    assert "description = Tools Bcc: x@y\n" in cli(config, "lists", "show", "demo").output
    empty = cli(config, "members", "set", "demo", "cat@acme.example", "--vendor", "\x00\n")
    assert empty.exit_code == 2 and "needs the organisation" in empty.output
    rows = {r["email"]: (r["name"], r["organisation"]) for r in (json.loads(line) for line in cli(
        config, "members", "list", "demo", "--json").output.splitlines())}
    assert rows == {"vic@vendor.example": ("Vic Vendor", "Acme Ltd"),
                    "ann@council.gov.uk": ("Ann Other", ""),
                    "cat@acme.example": ("Cat Two", "Acme Ltd")}


GOOGLE_EXPORT = """Members for group demo@googlegroups.com
Email address,Nickname,Group status,Email status,Email preference,Posting permissions,Join year
ann@council.gov.uk,Ann,owner,,Every email,allowed,2019
bob@district.gov.uk,,member,,Digest,allowed,2020
not an address,Someone,member,,Every email,allowed,2020
cat@acme.example,Cat,manager,,No email,allowed,2021
ann@council.gov.uk,Ann again,member,,Every email,allowed,2019
"""


def test_members_import_google_groups_csv(config: Path, tmp_path: Path) -> None:
    assert cli(config, "lists", "create", "demo").exit_code == 0
    csv_path = tmp_path / "members.csv"
    csv_path.write_text(GOOGLE_EXPORT)
    result = cli(config, "members", "import", "demo", str(csv_path))
    assert result.exit_code == 0, result.output
    assert "added 3, skipped 1 (already members), invalid 1" in result.output
    assert "line 5" in result.output
    rows = {r["email"]: r for r in (json.loads(line) for line in cli(
        config, "members", "list", "demo", "--json").output.splitlines())}
    assert rows["ann@council.gov.uk"]["role"] == "owner"
    assert rows["bob@district.gov.uk"]["delivery"] == "mime"
    assert rows["cat@acme.example"]["role"] == "moderator"
    assert rows["cat@acme.example"]["delivery"] == "nomail"
    not_csv = tmp_path / "x.csv"
    not_csv.write_text("name,phone\nx,1\n")
    bad = cli(config, "members", "import", "demo", str(not_csv))
    assert bad.exit_code == 1 and "Email address" in bad.output


def test_queue_errors_are_clear(config: Path) -> None:
    assert cli(config, "lists", "create", "demo").exit_code == 0
    assert "nothing is held" in cli(config, "queue", "list", "demo").output
    missing = cli(config, "queue", "approve", "999")
    assert missing.exit_code == 1 and "no held post number 999" in missing.output
