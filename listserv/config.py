"""Configuration: a TOML file, every key overridable by ``COMMONROOM_SECTION_KEY``.

Invariants:
- ``load`` either returns a complete, validated ``Config`` or raises ``ConfigError``
  whose message names the offending key (``[delivery] connections``) and says what is wrong.
- Every numeric key is declared with ``number(default, low, high)``, so its range is checked in
  one place and the message states it; a new key only has to declare its range.
- Nothing here opens sockets or databases; paths are resolved against the config file's folder
  (or the working directory when there is no file) so a relative ``var/`` means the same thing
  whichever directory ``commonroom`` is started from.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

ENV_PREFIX = "COMMONROOM_"
DEFAULT_FILE = "commonroom.toml"


class ConfigError(Exception):
    """Bad configuration: start-up stops with this message."""


@dataclass(frozen=True)
class Bounds:
    """The accepted range of a numeric key, both ends included; ``high=None``: no upper end."""

    low: float
    high: float | None = None

    def problem(self, value: float) -> str | None:
        """What is wrong with ``value``, as the end of "[section] key must be …"; None if fine."""
        # NaN fails every comparison and infinity is never a sensible amount: refuse both.
        ok = math.isfinite(value) and self.low <= value and (self.high is None or value <= self.high)
        if ok:
            return None
        if self.high is None:
            return f"at least {self.low:g}"
        return f"between {self.low:g} and {self.high:g}"


N = TypeVar("N", int, float)


def number(default: N, low: N, high: N | None = None) -> N:
    """A numeric key's default and its accepted range (checked by ``load``)."""
    return field(default=default, metadata={"bounds": Bounds(low, high)})


def bounds_of(section: type[Any], key: str) -> Bounds | None:
    for f in fields(section):
        if f.name == key:
            bounds = f.metadata.get("bounds")
            return bounds if isinstance(bounds, Bounds) else None
    return None


@dataclass(frozen=True)
class ServerConfig:
    domain: str = "lists.example.org"
    smtp_host: str = "127.0.0.1"
    smtp_port: int = number(8025, 1, 65535)
    web_base_url: str = "http://127.0.0.1:8080"
    web_host: str = "127.0.0.1"  # where the web pages are served (a reverse proxy in front)
    web_port: int = number(8080, 1, 65535)
    max_message_bytes: int = number(10 * 1024 * 1024, 1024)
    # Accept SMTP in a process of its own (listserv/door.py): a burst is accepted on its own
    # core while this one handles it. ~80 MB more memory; for busy sites.
    smtp_process: bool = False
    # Deliver (the outbox worker) in a process of its own (listserv/courier.py): copies are
    # sent on their own core while this one accepts and handles. ~80 MB more; for busy sites.
    delivery_process: bool = False
    # Threads that handle queued mail at once, on PostgreSQL (SQLite's write lock allows one):
    # each waits on the server most of its time, so a second one overlaps those waits; but on
    # 2 cores it takes CPU from accepting with no gain in delivery (bench/README), hence 1.
    handling_writers: int = number(1, 1, 8)


@dataclass(frozen=True)
class DatabaseConfig:
    url: str = "sqlite:///var/commonroom.db"


@dataclass(frozen=True)
class DeliveryConfig:
    smarthost: str = ""  # host:port; empty means write into the Maildir below
    connections: int = number(4, 1, 100)
    maildir: str = "var/outbox"
    dmarc_nameservers: str = ""  # space-separated "ip" or "ip:port"; empty means the system's
    dmarc_timeout: float = number(1.0, 0.05, 60.0)
    # How long 4xx answers are retried before a delivery is failed (Postfix's
    # maximal_queue_lifetime): a number and a unit, s m h d w; a bare number is days.
    give_up_after: str = "5d"
    keep_sent_days: int = number(30, 1, 3650)  # sent outbox rows are deleted after this many days
    max_attempts: int = number(12, 1, 1000)  # no longer used (deliveries give up by time); old files load
    # DKIM signing of everything sent (listserv/dkim.py): both set, or neither (no signing).
    dkim_selector: str = ""
    dkim_key_file: str = ""  # relative to the config file's folder, like maildir


@dataclass(frozen=True)
class DiscordConfig:
    """The Discord bot (bot/). No token: the bot does not run.

    Ids are Discord snowflakes, kept as strings of digits (as Discord's API sends them): they
    are not amounts, and an empty one means "not set"."""

    token: str = ""  # the bot token; better given as COMMONROOM_DISCORD_TOKEN than in a file
    guild_id: str = ""
    moderator_role: str = ""  # a role name or id; moderator commands check it on every call
    digest_channel_id: str = ""  # optional: where the weekly digest summary is posted
    # Empty: Discord's own. Set to run behind a REST or gateway proxy (and in the tests).
    api_base: str = ""  # e.g. http://127.0.0.1:8081/api/v10
    gateway_url: str = ""  # e.g. ws://127.0.0.1:8081/


@dataclass(frozen=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    delivery: DeliveryConfig = field(default_factory=DeliveryConfig)
    discord: DiscordConfig = field(default_factory=DiscordConfig)
    # [discord.bridges]: list name -> the Discord channel id (digits) its threads are bridged to.
    bridges: Mapping[str, str] = field(default_factory=dict)
    base_dir: Path = field(default_factory=Path.cwd)

    @property
    def smarthost(self) -> tuple[str, int] | None:
        if not self.delivery.smarthost:
            return None
        host, _, port = self.delivery.smarthost.rpartition(":")
        return host, int(port)

    @property
    def give_up_after(self) -> timedelta:
        lifetime = parse_duration(self.delivery.give_up_after)
        assert lifetime is not None  # _validate refused anything else
        return lifetime

    @property
    def maildir_path(self) -> Path:
        return self.base_dir / self.delivery.maildir

    @property
    def database_url(self) -> str:
        """The URL with a relative SQLite path made absolute against ``base_dir``."""
        url = self.database.url
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith(prefix + "/") and ":memory:" not in url:
            return prefix + str(self.base_dir / url[len(prefix):])
        return url


SECTIONS: dict[str, type[Any]] = {
    "server": ServerConfig,
    "database": DatabaseConfig,
    "delivery": DeliveryConfig,
    "discord": DiscordConfig,
}
BRIDGES = "discord.bridges"  # a table inside [discord], read apart from the section's keys


def _coerce(key: str, raw: Any, want: type[Any] | str) -> Any:
    kind = want if isinstance(want, str) else want.__name__
    try:
        if kind == "int":
            # int(2.5) would quietly make 2 of it, and int(True) 1.
            if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
                raise ValueError
            return int(raw)
        if kind == "float":
            if isinstance(raw, bool):
                raise ValueError
            return float(raw)
        if kind == "bool":
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError
        return str(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"{key} must be {kind}, got {raw!r}") from None


def _check_numbers(name: str, section: Any) -> None:
    for f in fields(section):
        bounds = f.metadata.get("bounds")
        if isinstance(bounds, Bounds):
            value = getattr(section, f.name)
            problem = bounds.problem(value)
            if problem:
                raise ConfigError(f"[{name}] {f.name} must be {problem}, got {value!r}")


def _port_problem(text: str) -> bool:
    return not text.isdigit() or not 0 < int(text) < 65536


_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
SELECTOR = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> timedelta | None:
    """"5d", "36h", "90m", "2w", "30s"; a bare number is days, as in Postfix. None if not one."""
    text = text.strip().lower()
    unit = text[-1:] if text[-1:] in _UNITS else "d"
    number = text[:-1] if text[-1:] in _UNITS else text
    try:
        return timedelta(seconds=float(number) * _UNITS[unit])
    except (ValueError, OverflowError):  # not a number, NaN, infinite or absurdly large
        return None


def _validate(cfg: Config) -> None:
    for name in SECTIONS:
        _check_numbers(name, getattr(cfg, name))
    s, d = cfg.server, cfg.delivery
    if not s.domain or "@" in s.domain or " " in s.domain or "." not in s.domain:
        raise ConfigError(f"[server] domain must be a mail domain like lists.example.org, got {s.domain!r}")
    if not s.web_base_url.startswith(("http://", "https://")):
        raise ConfigError(
            f"[server] web_base_url must start with http:// or https://, got {s.web_base_url!r}")
    if not s.web_host or any(c.isspace() for c in s.web_host) or "/" in s.web_host:
        raise ConfigError(f"[server] web_host must be a host name or IP address to listen on "
                          f"(e.g. 127.0.0.1), got {s.web_host!r}")
    if not cfg.database.url.startswith(("sqlite:", "postgresql")):
        raise ConfigError(
            f"[database] url must be sqlite:///PATH or postgresql://…, got {cfg.database.url!r}")
    if d.smarthost:
        host, sep, port = d.smarthost.rpartition(":")
        if not sep or not host or _port_problem(port):
            raise ConfigError(
                f"[delivery] smarthost must be host:port (e.g. 127.0.0.1:25), got {d.smarthost!r}")
    for entry in d.dmarc_nameservers.split():
        host, sep, port = entry.partition(":")
        if not host or (sep and _port_problem(port)):
            raise ConfigError(f"[delivery] dmarc_nameservers must be space-separated ip or ip:port "
                              f"(port 1 to 65535), got {entry!r}")
    if d.dkim_selector and not SELECTOR.fullmatch(d.dkim_selector):
        raise ConfigError("[delivery] dkim_selector must be a DNS label (letters, digits, '-', "
                          f"dots between labels), e.g. \"cr2026\", got {d.dkim_selector!r}")
    lifetime = parse_duration(d.give_up_after)
    if lifetime is None or lifetime <= timedelta(0):
        raise ConfigError("[delivery] give_up_after must be a positive duration like 5d, 36h or "
                          f"90m, got {d.give_up_after!r}")
    _validate_discord(cfg.discord, cfg.bridges)


def _is_snowflake(text: str) -> bool:
    return text.isascii() and text.isdigit() and 0 < int(text) < 2**64


def _validate_discord(dc: DiscordConfig, bridges: Mapping[str, str]) -> None:
    for key in ("guild_id", "digest_channel_id"):
        value = getattr(dc, key)
        if value and not _is_snowflake(value):
            raise ConfigError(f"[discord] {key} must be a Discord id (digits; in Discord, "
                              f"Developer Mode, right-click, Copy ID), got {value!r}")
    if dc.api_base and not dc.api_base.startswith(("http://", "https://")):
        raise ConfigError(f"[discord] api_base must start with http:// or https://, got {dc.api_base!r}")
    if dc.gateway_url and not dc.gateway_url.startswith(("ws://", "wss://")):
        raise ConfigError(f"[discord] gateway_url must start with ws:// or wss://, got {dc.gateway_url!r}")
    if dc.token and not dc.guild_id:
        raise ConfigError("[discord] guild_id must be set when a token is (the server the bot serves)")
    for name, channel in bridges.items():
        if not _is_snowflake(channel):
            raise ConfigError(f"[{BRIDGES}] {name} must be a Discord channel id (digits), got {channel!r}")


def load(path: Path | str | None = None, env: Mapping[str, str] | None = None,
         overrides: Mapping[str, Mapping[str, Any]] | None = None) -> Config:
    """Read the file (if any), then the environment, then ``overrides``; validate."""
    env = os.environ if env is None else env
    if path is None and env.get(ENV_PREFIX + "CONFIG"):
        path = env[ENV_PREFIX + "CONFIG"]
    data: dict[str, Any] = {}
    base_dir = Path.cwd()
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {p} does not exist (run 'commonroom init' to write one)")
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise ConfigError(f"config file {p} is not valid TOML: {e}") from None
        base_dir = p.resolve().parent
    elif Path(DEFAULT_FILE).is_file():
        return load(DEFAULT_FILE, env, overrides)

    discord_data = dict(data.get("discord") or {})
    raw_bridges = discord_data.pop("bridges", {})
    if not isinstance(raw_bridges, dict):
        raise ConfigError(f"[{BRIDGES}] must be a table of LIST = CHANNEL_ID lines")
    if "discord" in data:
        data["discord"] = discord_data
    bridges = {str(name): _coerce(f"[{BRIDGES}] {name}", channel, "str")
               for name, channel in raw_bridges.items()}
    for section in data:
        if section not in SECTIONS:
            raise ConfigError(f"unknown section [{section}] (known: {', '.join(SECTIONS)})")
    built: dict[str, Any] = {}
    for section, cls in SECTIONS.items():
        values = dict(data.get(section) or {})
        known = {f.name: f for f in fields(cls)}
        for key in values:
            if key not in known:
                raise ConfigError(f"[{section}] {key} is not a known key (known: {', '.join(known)})")
        for key in known:
            env_key = f"{ENV_PREFIX}{section.upper()}_{key.upper()}"
            if env_key in env:
                values[key] = env[env_key]
        for key, value in (overrides or {}).get(section, {}).items():
            values[key] = value
        for key, value in list(values.items()):
            values[key] = _coerce(f"[{section}] {key}", value, known[key].type)
        built[section] = cls(**values)
    cfg = Config(**built, bridges=bridges, base_dir=base_dir)
    _validate(cfg)
    return cfg


def with_overrides(cfg: Config, **sections: Mapping[str, Any]) -> Config:
    """A copy of ``cfg`` with some keys replaced (used by tests and the CLI)."""
    changed = {name: replace(getattr(cfg, name), **vals) for name, vals in sections.items()}
    new = replace(cfg, **changed)
    _validate(new)
    return new


EXAMPLE = """\
# Commonroom configuration. Every key can be overridden by an environment variable
# COMMONROOM_SECTION_KEY, e.g. COMMONROOM_DELIVERY_SMARTHOST=127.0.0.1:25.

[server]
# The mail domain of the lists: posts go to LIST@domain.
domain = "{domain}"
# Where Commonroom's SMTP server listens. Your MTA hands the lists' mail to this port.
smtp_host = "127.0.0.1"
smtp_port = 8025
# The public address of the web pages (unsubscribe and confirmation links point here).
web_base_url = "http://127.0.0.1:8080"
# Where 'commonroom serve' serves the web pages; put a reverse proxy with TLS in front
# (deploy/ has an example) whose public address is web_base_url.
web_host = "127.0.0.1"
web_port = 8080
# Larger messages are refused with 552.
max_message_bytes = 10485760
# true: accept SMTP in a process of its own, so a burst of mail is accepted on its own CPU core
# while the server handles it (about 80 MB more memory). For busy sites with 2+ cores.
smtp_process = false
# true: deliver outgoing mail from a process of its own, so sending copies to the smarthost
# uses its own CPU core while the server accepts and handles mail (about 80 MB more memory).
delivery_process = false
# On PostgreSQL: threads handling queued mail at once (SQLite always uses one). More than 1
# only on a machine with cores to spare: on 2 cores a second one slows accepting.
handling_writers = 1

[database]
# SQLite by default; for several processes use PostgreSQL: postgresql://user@host/dbname
url = "sqlite:///var/commonroom.db"

[delivery]
# host:port of the MTA that sends mail on; empty writes outgoing mail into the Maildir below.
smarthost = ""
# Parallel SMTP connections to the smarthost.
connections = 4
maildir = "var/outbox"
# DNS servers for DMARC lookups ("" = the system's), and how long to wait for one.
dmarc_nameservers = ""
dmarc_timeout = 1.0
# How long temporary (4xx) failures are retried before a delivery is given up ("failed"; list
# them with 'commonroom outbox list --state failed', re-queue with 'commonroom outbox retry').
give_up_after = "5d"
# Sent deliveries are kept this many days (for 'commonroom outbox list'), then deleted.
keep_sent_days = 30
# DKIM: sign everything sent with the domain's key. 'commonroom dkim keygen --selector S'
# writes var/dkim/S.key and prints the DNS record to publish; then set both keys below.
dkim_selector = ""
dkim_key_file = ""

[discord]
# The Discord bot runs (in 'commonroom serve', or alone with 'commonroom bot') when a token is
# set. Prefer the environment for the token: COMMONROOM_DISCORD_TOKEN=...
token = ""
# The Discord server (guild) the bot serves, and who may use the moderator commands.
guild_id = ""
moderator_role = ""
# Optional: a channel where the weekly digest is summarised.
digest_channel_id = ""
# Empty means Discord's own; set them to run behind a Discord REST or gateway proxy.
api_base = ""
gateway_url = ""

[discord.bridges]
# One line per bridged list: LIST = "CHANNEL_ID" (a forum channel, or a text channel whose
# threads carry the discussions). For example:
# demo = "123456789012345678"
"""
