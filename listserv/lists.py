"""Finding lists and describing them to the rest of the code.

Invariants: list names are lower-case ASCII words with hyphens (they become local parts of mail
addresses); ``list_info`` is the one place a ``MailingList`` row becomes a ``ListInfo``.
"""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import bindparam, event, inspect
from sqlmodel import Session, col, select

from listserv import addresses, names
from listserv.config import Config
from listserv.decorate import ListInfo
from listserv.models import Action, MailingList
from listserv.store import per_transaction

NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
SUFFIXES = addresses.SUFFIXES  # kept for callers; the scheme lives in addresses.py


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a list name, or None when it can."""
    if not NAME.match(name):
        return ("a list name is 1-63 lower-case letters, digits and hyphens, starting with a "
                "letter or digit")
    if name.endswith(SUFFIXES) or "--" in name:
        return f"'{name}' would clash with the list command addresses ({', '.join(SUFFIXES)})"
    return None


def find(session: Session, name: str) -> MailingList | None:
    """The list called ``name``. Read once per transaction (the group committer handles many
    posts to a list in one; a round trip each on PostgreSQL): the row the session already
    holds is what the ORM would return anyway, so the cache changes nothing but the SELECT.
    One renamed or deleted in this session is looked up again, and every one after a rollback
    (of a savepoint too: ``_forget``)."""
    name = name.lower()
    known: dict[str, MailingList] = per_transaction(session, _LISTS)
    ml = known.get(name)
    if ml is not None and ml.name == name and inspect(ml).persistent:
        return ml
    ml = session.exec(_BY_NAME, params={"name": name}).first()
    if ml is not None:
        known[name] = ml
    return ml


_LISTS = "commonroom_lists"  # session.info: (transaction, {name: its MailingList})


@event.listens_for(Session, "after_soft_rollback")
def _forget(session: Session, _previous: object) -> None:
    """A rolled-back savepoint may have made or changed a list ``find`` keeps: forget them."""
    session.info.pop(_LISTS, None)


# Built once: every message asks, and building the statement cost more than running it.
_BY_NAME = select(MailingList).where(col(MailingList.name) == bindparam("name"))


def every(session: Session) -> list[MailingList]:
    """Every list, by name."""
    return list(session.exec(select(MailingList).order_by(MailingList.name)).all())


def all_names(session: Session) -> list[str]:
    """Every list's name, in order (for messages that say which lists there are)."""
    return list(session.exec(select(MailingList.name).order_by(MailingList.name)).all())


def list_info(ml: MailingList, cfg: Config) -> ListInfo:
    return info_of(ml.name, ml.description, ml.subject_prefix, cfg)


def info_of(name: str, description: str, subject_prefix: str, cfg: Config) -> ListInfo:
    """``list_info`` from the list's columns (delivery reads them without the ORM)."""
    return ListInfo(name=name, domain=cfg.server.domain, description=description,
                    web_base_url=cfg.server.web_base_url, subject_prefix=subject_prefix)


# Settings a list owner may change with `commonroom lists set`: what each is, and its values
# (a tuple of choices, "int", "bool", or None for free text).
SETTINGS: dict[str, tuple[str, tuple[str, ...] | str | None]] = {
    "description": ("free text shown in headers and notices", None),
    "subject_prefix": ("the tag put in front of subjects, e.g. [tools]; empty = [NAME]", None),
    "nonmember_action": ("what happens to posts from non-members",
                         tuple(a.value for a in Action)),
    "dmarc_mitigation": ("rewrite From for authors whose domain has a strict DMARC policy",
                         ("auto", "always", "never")),
    "max_message_bytes": ("largest post in bytes (held above it); empty = the server's limit",
                          "int?"),
    "public_sources": ("space-separated domains or URL prefixes whose texts are public "
                       "(e.g. \"gov.uk https://www.derbyshire.gov.uk/news/\")", None),
    "policy_scope": ("who the participation policy applies to",
                     ("vendors", "vendors+official", "everyone", "off")),
    "policy_word_limit": ("most own words a pointer post may have", "int"),
    "emergency": ("hold every post for a moderator (incidents)", "bool"),
    "max_posts_per_hour": ("posts per sender per hour before the rest are held; 0 = no limit",
                           "int"),
    "hold_days": ("days a held post waits (moderators are reminded half way)", "int"),
    "expiry_action": ("what happens to a held post nobody handled in time",
                      (Action.ACCEPT.value, Action.REJECT.value, Action.DISCARD.value)),
    "digest_schedule": ("when the digest goes out: a cron expression in the list's time zone "
                        "(minute hour day month weekday; use day names: '0 8 * * mon')", "cron"),
    "timezone": ("the list's time zone for the digest schedule and dates, e.g. Europe/London",
                 "tz"),
    "archive": ("who may read the web archive: anyone, signed-in members, or moderators only",
                ("public", "members", "private")),
    # Bounces (listserv/bounce_score.py): Mailman's names and defaults.
    "bounce_score_threshold": ("bounce score at which delivery to a member is disabled "
                               "(5.x.x counts 1, a 4.x.x that gave up 0.5, one a day)", "int"),
    "bounce_info_stale_days": ("days without bounces after which a member's score starts again",
                               "int"),
    "bounce_you_are_disabled_warnings": ("reminders sent to a disabled member before they are "
                                         "unsubscribed", "int"),
    "bounce_you_are_disabled_warnings_interval": ("days between those reminders", "int"),
    "bounce_probe": ("at the threshold, send a probe first; only its bounce disables", "bool"),
    "bounce_notify_owner_on_disable": ("tell the moderators when bounces disable a member's "
                                       "delivery", "bool"),
}
BOOLEANS = {"on": True, "true": True, "yes": True, "1": True,
            "off": False, "false": False, "no": False, "0": False}


def cron_problem(value: str) -> str | None:
    """Why ``value`` is not a usable digest schedule, checked by the scheduler's own parser."""
    fields = value.split()
    if len(fields) == 5 and fields[4][:1].isdigit():
        return ("write the weekday as a name (mon, tue, …): numbers mean different days to "
                "different cron dialects")
    try:
        CronTrigger.from_crontab(value)
    except ValueError as e:
        return (f"'{value}' is not a cron expression (minute hour day month weekday, "
                f"e.g. '0 8 * * mon'): {e}")
    return None


def apply_setting(ml: MailingList, key: str, value: str) -> str | None:
    """Set ``key`` on ``ml``; returns a problem description instead of raising."""
    if key not in SETTINGS:
        return f"unknown setting '{key}'; settings are: {', '.join(SETTINGS)}"
    _, kind = SETTINGS[key]
    converted: object = value
    if key in ("description", "subject_prefix"):  # shown in headers: one line, like names
        converted = names.clean(value)
    elif isinstance(kind, tuple):
        if value not in kind:
            return f"{key} must be one of {', '.join(kind)}, not '{value}'"
    elif kind == "bool":
        if value.lower() not in BOOLEANS:
            return f"{key} must be on or off, not '{value}'"
        converted = BOOLEANS[value.lower()]
    elif kind in ("int", "int?"):
        if kind == "int?" and value == "":
            converted = None
        elif not value.isdigit():
            return f"{key} must be a whole number, not '{value}'"
        else:
            converted = int(value)
            if key == "max_message_bytes" and converted < 1024:
                return "max_message_bytes must be at least 1024"
            if key == "hold_days" and converted < 1:
                return "hold_days must be at least 1"
            if key in ("bounce_score_threshold", "bounce_info_stale_days",
                       "bounce_you_are_disabled_warnings_interval") and converted < 1:
                return f"{key} must be at least 1"
    elif kind == "tz":
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            return f"unknown time zone '{value}'; use a name like Europe/London"
    elif kind == "cron":
        problem = cron_problem(value)
        if problem:
            return problem
    elif key == "public_sources":
        converted = " ".join(value.split())
    setattr(ml, key, converted)
    return None
