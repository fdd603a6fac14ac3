"""Configuration: file, environment, validation with the key named."""

from __future__ import annotations

from dataclasses import fields
from datetime import timedelta
from pathlib import Path

import pytest

from listserv.config import SECTIONS, ConfigError, bounds_of, load


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.toml"
    path.write_text(text)
    return path


def test_defaults_and_relative_sqlite_path(tmp_path: Path) -> None:
    cfg = load(write(tmp_path, ""), env={})
    assert cfg.server.smtp_port == 8025 and cfg.delivery.connections == 4
    assert cfg.database_url == f"sqlite:///{tmp_path}/var/commonroom.db"
    assert cfg.smarthost is None and cfg.maildir_path == tmp_path / "var" / "outbox"


def test_environment_overrides_file(tmp_path: Path) -> None:
    path = write(tmp_path, '[delivery]\nsmarthost = "mta.example:25"\n')
    cfg = load(path, env={"COMMONROOM_DELIVERY_SMARTHOST": "127.0.0.1:2525",
                          "COMMONROOM_SERVER_MAX_MESSAGE_BYTES": "2048"})
    assert cfg.smarthost == ("127.0.0.1", 2525) and cfg.server.max_message_bytes == 2048


def test_web_host_and_port_default_and_come_from_the_environment(tmp_path: Path) -> None:
    path = write(tmp_path, "")
    assert (load(path, env={}).server.web_host, load(path, env={}).server.web_port) == ("127.0.0.1", 8080)
    cfg = load(path, env={"COMMONROOM_SERVER_WEB_HOST": "0.0.0.0", "COMMONROOM_SERVER_WEB_PORT": "8181"})
    assert (cfg.server.web_host, cfg.server.web_port) == ("0.0.0.0", 8181)


@pytest.mark.parametrize("text,env,message", [
    ("[server]\nsmtp_port = 70000\n", {}, "[server] smtp_port must be between"),
    ("[server]\ndomain = 'not a domain'\n", {}, "[server] domain"),
    ("[delivery]\nsmarthost = 'nohostport'\n", {}, "[delivery] smarthost must be host:port"),
    ("[delivery]\nconnections = 0\n", {}, "[delivery] connections must be between"),
    ("[delivery]\nconnectoins = 3\n", {}, "[delivery] connectoins is not a known key"),
    ("[smtp]\nport = 1\n", {}, "unknown section [smtp]"),
    ("[database]\nurl = 'mysql://x'\n", {}, "[database] url"),
    ("", {"COMMONROOM_SERVER_SMTP_PORT": "eighty"}, "[server] smtp_port must be int"),
    ("[server\n", {}, "not valid TOML"),
    ("[server]\nweb_port = 70000\n", {}, "[server] web_port must be between"),
    ("", {"COMMONROOM_SERVER_WEB_PORT": "web"}, "[server] web_port must be int"),
    ("[server]\nweb_host = 'http://x/'\n", {}, "[server] web_host must be a host name"),
    ("", {"COMMONROOM_SERVER_WEB_HOST": ""}, "[server] web_host must be a host name"),
])
def test_bad_configuration_names_the_key(tmp_path: Path, text: str, env: dict[str, str],
                                         message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load(write(tmp_path, text), env=env)
    assert message in str(err.value)


# Every numeric key of every section, with a value of 0 and one below zero: start-up must stop
# with the key named, never with a bare ValueError from whatever uses the number later.
NUMERIC_KEYS = [(section, f.name) for section, cls in SECTIONS.items() for f in fields(cls)
                if f.type in ("int", "float")]


@pytest.mark.parametrize("section,key", NUMERIC_KEYS, ids=lambda v: str(v))
@pytest.mark.parametrize("value", ["0", "-1"])
def test_numeric_key_of_zero_or_less_names_the_key(tmp_path: Path, section: str, key: str,
                                                    value: str) -> None:
    with pytest.raises(ConfigError) as err:
        load(write(tmp_path, f"[{section}]\n{key} = {value}\n"), env={})
    assert f"[{section}] {key} must be " in str(err.value)
    assert f"got {value}" in str(err.value)


@pytest.mark.parametrize("section,key", NUMERIC_KEYS, ids=lambda v: str(v))
def test_every_numeric_key_states_its_range(section: str, key: str) -> None:
    """A new numeric key must say what it accepts: the message then names the range."""
    bounds = bounds_of(SECTIONS[section], key)
    assert bounds is not None, f"[{section}] {key} has no range: declare it with config.number()"
    cls = SECTIONS[section]
    default = next(f.default for f in fields(cls) if f.name == key)
    assert bounds.problem(default) is None  # the default itself is accepted


def test_out_of_range_message_names_the_accepted_range(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load(write(tmp_path, "[delivery]\nmax_attempts = 0\n"), env={})
    assert str(err.value) == "[delivery] max_attempts must be between 1 and 1000, got 0"
    with pytest.raises(ConfigError) as err:
        load(write(tmp_path, ""), env={"COMMONROOM_DELIVERY_DMARC_TIMEOUT": "nan"})
    assert "[delivery] dmarc_timeout must be between" in str(err.value)
    with pytest.raises(ConfigError) as err:
        load(write(tmp_path, "[delivery]\nconnections = 2.5\n"), env={})
    assert "[delivery] connections must be int, got 2.5" in str(err.value)


@pytest.mark.parametrize("servers", ["1.2.3.4:abc", "1.2.3.4:0", ":53"])
def test_dmarc_nameserver_port_is_checked(tmp_path: Path, servers: str) -> None:
    with pytest.raises(ConfigError) as err:
        load(write(tmp_path, f"[delivery]\ndmarc_nameservers = '{servers}'\n"), env={})
    assert "[delivery] dmarc_nameservers" in str(err.value)


@pytest.mark.parametrize("text,lifetime", [
    ("", timedelta(days=5)),  # Postfix's maximal_queue_lifetime
    ("[delivery]\ngive_up_after = '36h'\n", timedelta(hours=36)),
    ("[delivery]\ngive_up_after = '90m'\n", timedelta(minutes=90)),
    ("[delivery]\ngive_up_after = '1w'\n", timedelta(weeks=1)),
    ("[delivery]\ngive_up_after = 2\n", timedelta(days=2)),  # a bare number is days
    ("[delivery]\nmax_attempts = 12\n", timedelta(days=5)),  # old files still load
])
def test_deliveries_give_up_by_time(tmp_path: Path, text: str, lifetime: timedelta) -> None:
    """Issue 7.14: [delivery] give_up_after, a duration; keep_sent_days (7.25) defaults to 30."""
    cfg = load(write(tmp_path, text), env={})
    assert cfg.give_up_after == lifetime and cfg.delivery.keep_sent_days == 30


@pytest.mark.parametrize("text,message", [
    ("[delivery]\ngive_up_after = 'soon'\n", "[delivery] give_up_after must be a positive duration"),
    ("[delivery]\ngive_up_after = '0h'\n", "[delivery] give_up_after must be a positive duration"),
    ("[delivery]\ngive_up_after = '-1d'\n", "[delivery] give_up_after must be a positive duration"),
    ("[delivery]\ngive_up_after = 'infd'\n", "[delivery] give_up_after must be a positive duration"),
    ("[delivery]\nkeep_sent_days = 0\n", "[delivery] keep_sent_days must be between 1 and"),
    ("[delivery]\nkeep_sent_days = 'month'\n", "[delivery] keep_sent_days must be int"),
])
def test_bad_delivery_lifetimes_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        load(write(tmp_path, text), env={})
    assert message in str(e.value)
