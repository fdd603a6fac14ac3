"""The posting rules: small pure functions, each with a name and a reason a person can read.

Invariants:
- A rule looks only at the ``PostFacts`` it is given (no I/O, no clock), so every rule is tested
  with a table of cases.
- A rule returns ``None`` (no opinion) or a ``Hit`` carrying the action and a reason written
  for the sender and the moderators.
- ``RULES`` is the order the pipeline reads them in: the first hit decides (Mailman's chain).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import getaddresses

from listserv.models import Action

# Subjects that are really requests to the list software (after Mailman's administrivia check):
# a command word with at most two more words, so "Unsubscribe me please" is caught and
# "Subscription costs for Office 365" or "Help with the new CRM" are not.
ADMINISTRIVIA = re.compile(
    r"^\s*(?:(?:re|aw|fwd?)\s*:\s*)*(?:(?:un-?subscribe|subscribe|remove|signoff|leave)"
    r"(?:\s+\S+){0,2}|help|confirm\s+\S+)\s*$", re.IGNORECASE)
AUTO_PRECEDENCE = {"bulk", "junk", "list", "auto_reply"}


def is_glob(pattern: str) -> bool:
    """A ban pattern like "*@spam.example" (not a "^regex", not an address). Pure."""
    return not pattern.startswith("^") and any(c in pattern for c in "*?[")


def automatic_mail(*, null_sender: bool, auto_submitted: str, precedence: str) -> str:
    """Why a message is automatic mail, or "" when it is not: the one definition.

    Automatic mail is never posted and never answered (answering auto-replies makes storms):
    the null reverse-path (MAIL FROM:<>, RFC 5321 4.5.5: bounces and other notifications),
    Auto-Submitted other than "no" (RFC 3834), or a bulk Precedence.
    """
    if null_sender:
        return "sent with the null sender MAIL FROM:<>"
    auto = auto_submitted.strip().lower()
    if auto and not auto.startswith("no"):
        return f"Auto-Submitted: {auto}"
    prec = precedence.strip().lower()
    if prec in AUTO_PRECEDENCE:
        return f"Precedence: {prec}"
    return ""


def list_id_of(value: str) -> str:
    """The list identifier of a List-Id value: the part in angle brackets (RFC 2919), or the
    whole value when a sender left the brackets out; case-folded, as ids compare."""
    bracketed = re.findall(r"<([^<>]*)>", value)
    return (bracketed[-1] if bracketed else value).strip().casefold()


def addresses_in(value: str) -> set[str]:
    """The addresses in a header value such as X-Loop, case-folded."""
    try:
        pairs = getaddresses([value])
    except Exception:  # the stdlib address parser has raised on hostile input before
        return set()
    return {addr.strip().casefold() for _, addr in pairs if addr.strip()}


@dataclass(frozen=True)
class Ban:
    pattern: str  # an address, a glob ("*@spam.example"), or a regular expression ("^…")
    expires_at: datetime | None = None

    def matches(self, address: str, now: datetime) -> bool:
        if self.expires_at is not None and self.expires_at <= now:
            return False
        if self.pattern.startswith("^"):
            try:
                return re.match(self.pattern, address, re.IGNORECASE) is not None
            except re.error:
                return False  # refused when added (bans.normalise_pattern); never raise here
        if is_glob(self.pattern):
            return fnmatch.fnmatchcase(address.casefold(), self.pattern.casefold())
        return self.pattern.casefold() == address.casefold()


@dataclass(frozen=True)
class PostFacts:
    """Everything the rules may look at, gathered by the posting service."""

    list_name: str
    list_post_address: str  # LIST@DOMAIN
    list_id: str  # the List-Id value we stamp, e.g. "demo.lists.example.org"
    sender: str  # the From address (or the envelope sender when From is missing)
    subject: str
    size: int
    max_bytes: int
    now: datetime
    list_ids_seen: Sequence[str] = ()  # List-Id headers on the incoming message
    x_loop: Sequence[str] = ()
    auto_submitted: str = ""
    precedence: str = ""
    null_sender: bool = False  # the envelope sender was empty (MAIL FROM:<>)
    is_member: bool = False
    moderation: str = ""  # the member's moderation override ("" = none)
    nonmember_action: str = Action.HOLD.value
    bans: Sequence[Ban] = field(default_factory=tuple)
    emergency: bool = False
    posts_last_hour: int = 0  # this sender's earlier posts to this list in the last hour
    max_posts_per_hour: int = 0  # 0 = no limit
    policy_hold: str = ""  # the participation policy's reason when it says "check first"

    @property
    def automatic(self) -> str:
        """Why this is automatic mail (``automatic_mail``), or ""."""
        return automatic_mail(null_sender=self.null_sender, auto_submitted=self.auto_submitted,
                              precedence=self.precedence)

    @property
    def looped(self) -> bool:
        """Whether this message has already been through this list (our own mail come back).

        Whole ids and whole addresses: list "dev" must not take "webdev"'s mail for its own.
        """
        ours, post = self.list_id.casefold(), self.list_post_address.casefold()
        return any(list_id_of(v) == ours for v in self.list_ids_seen) or any(
            post in addresses_in(v) for v in self.x_loop)

    @property
    def never_answer(self) -> bool:
        """Mail nobody is told anything about: automatic mail, or a loop."""
        return self.looped or bool(self.automatic)


@dataclass(frozen=True)
class Hit:
    action: Action
    reason: str


Rule = Callable[[PostFacts], Hit | None]


def loop(f: PostFacts) -> Hit | None:
    if f.looped:
        return Hit(Action.DISCARD, f"mail loop: this message has already been through {f.list_name}")
    return None


def auto_generated(f: PostFacts) -> Hit | None:
    why = f.automatic
    return Hit(Action.DISCARD, f"automatic mail ({why}) is not posted") if why else None


def administrivia(f: PostFacts) -> Hit | None:
    if ADMINISTRIVIA.match(f.subject):
        return Hit(Action.HOLD,
                   "this looks like a request for the list software, not a post: send commands "
                   f"to {f.list_name}-request (e.g. 'unsubscribe'); a moderator will check it")
    return None


def banned(f: PostFacts) -> Hit | None:
    if any(b.matches(f.sender, f.now) for b in f.bans):
        return Hit(Action.DISCARD, f"{f.sender} is banned from {f.list_name}")
    return None


def emergency(f: PostFacts) -> Hit | None:
    if f.emergency:
        return Hit(Action.HOLD, f"{f.list_name} is under emergency moderation: every post is "
                                "checked by a moderator for now")
    return None


def oversize(f: PostFacts) -> Hit | None:
    if f.size > f.max_bytes:
        return Hit(Action.HOLD, f"the message is {f.size // 1024} KB; {f.list_name} takes at most "
                                f"{f.max_bytes // 1024} KB")
    return None


def member_moderation(f: PostFacts) -> Hit | None:
    # Also for known non-members a moderator has set a handling for ("always accept").
    if f.moderation:
        return Hit(Action(f.moderation), f"posts from {f.sender} are set to '{f.moderation}' "
                                         "by the moderators")
    return None


def rate_limit(f: PostFacts) -> Hit | None:
    if f.max_posts_per_hour and f.posts_last_hour >= f.max_posts_per_hour:
        return Hit(Action.HOLD, f"{f.sender} has already posted {f.posts_last_hour} times to "
                                f"{f.list_name} in the last hour (the limit is "
                                f"{f.max_posts_per_hour}); a moderator will look at this one")
    return None


def participation_policy(f: PostFacts) -> Hit | None:
    return Hit(Action.HOLD, f.policy_hold) if f.policy_hold else None


def member(f: PostFacts) -> Hit | None:
    return Hit(Action.ACCEPT, "posted by a member") if f.is_member else None


def nonmember(f: PostFacts) -> Hit | None:
    action = Action(f.nonmember_action)
    reasons = {
        Action.ACCEPT: "this list accepts posts from anyone",
        Action.HOLD: f"{f.sender} is not a member of {f.list_name}; a moderator will look at it",
        Action.REJECT: f"{f.list_name} accepts posts from members only; subscribe first by "
                       f"writing to {f.list_name}-join",
        Action.DISCARD: f"{f.sender} is not a member of {f.list_name}",
    }
    return Hit(action, reasons[action])


# The rule that reads the participation policy's verdict, the one costly fact (see pipeline.reaches).
POLICY_RULE = "participation-policy"

RULES: tuple[tuple[str, Rule], ...] = (
    ("loop", loop),
    ("auto-generated", auto_generated),
    ("administrivia", administrivia),
    ("banned", banned),
    ("emergency", emergency),
    ("oversize", oversize),
    ("member-moderation", member_moderation),
    ("rate-limit", rate_limit),
    (POLICY_RULE, participation_policy),
    ("member", member),
    ("nonmember", nonmember),
)
