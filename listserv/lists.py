"""Finding lists and describing them to the rest of the code.

Invariants: list names are lower-case ASCII words with hyphens (they become local parts of mail
addresses); ``list_info`` is the one place a ``MailingList`` row becomes a ``ListInfo``.
"""

from __future__ import annotations

import re

from sqlmodel import Session, select

from listserv.config import Config
from listserv.decorate import ListInfo
from listserv.models import Action, MailingList

NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
SUFFIXES = ("-join", "-subscribe", "-leave", "-unsubscribe", "-request", "-bounces", "-owner",
            "-confirm")


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a list name, or None when it can."""
    if not NAME.match(name):
        return ("a list name is 1-63 lower-case letters, digits and hyphens, starting with a "
                "letter or digit")
    if name.endswith(SUFFIXES) or "--" in name:
        return f"'{name}' would clash with the list command addresses ({', '.join(SUFFIXES)})"
    return None


def find(session: Session, name: str) -> MailingList | None:
    return session.exec(select(MailingList).where(MailingList.name == name.lower())).first()


def list_info(ml: MailingList, cfg: Config) -> ListInfo:
    return ListInfo(name=ml.name, domain=cfg.server.domain, description=ml.description,
                    web_base_url=cfg.server.web_base_url, subject_prefix=ml.subject_prefix)


# Settings a list owner may change with `commonroom lists set`, and how each value is checked.
SETTINGS: dict[str, tuple[str, tuple[str, ...] | None]] = {
    "description": ("free text shown in headers and notices", None),
    "subject_prefix": ("the tag put in front of subjects, e.g. [tools]; empty = [NAME]", None),
    "nonmember_action": ("what happens to posts from non-members",
                         tuple(a.value for a in Action)),
    "dmarc_mitigation": ("rewrite From for authors whose domain has a strict DMARC policy",
                         ("auto", "always", "never")),
    "max_message_bytes": ("largest post in bytes (held above it); empty = the server's limit",
                          None),
}


def apply_setting(ml: MailingList, key: str, value: str) -> str | None:
    """Set ``key`` on ``ml``; returns a problem description instead of raising."""
    if key not in SETTINGS:
        return f"unknown setting '{key}'; settings are: {', '.join(SETTINGS)}"
    _, choices = SETTINGS[key]
    if choices is not None and value not in choices:
        return f"{key} must be one of {', '.join(choices)}, not '{value}'"
    if key == "max_message_bytes":
        if value == "":
            ml.max_message_bytes = None
            return None
        if not value.isdigit() or int(value) < 1024:
            return "max_message_bytes must be a whole number of bytes, at least 1024"
        ml.max_message_bytes = int(value)
        return None
    setattr(ml, key, value)
    return None
