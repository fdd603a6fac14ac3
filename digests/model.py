"""What a digest says, independent of how it is rendered.

Frozen dataclasses filled in by the digest builder (which reads the store) and read by
:mod:`digests.render`. Nothing here does I/O. All datetimes are timezone-aware (UTC); the
renderers convert them to the list's time zone (:attr:`Digest.tz`) for display.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from listserv import names

__all__ = [
    "Digest",
    "DigestPost",
    "DigestThread",
    "Participant",
    "UpcomingItem",
    "summarise",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Participant:
    """Someone whose words appear in the digest."""

    name: str
    email: str
    organisation: str = ""
    vendor: bool = False

    def display_name(self) -> str:
        """The name, or with no name the local part of the address ("jane" for jane@example.org)."""
        return names.clean(self.name) or self.email.rpartition("@")[0] or self.email

    def label(self) -> str:
        """How the person is shown: "Jane Doe", or "Jane Doe (Acme Ltd, vendor)" for vendor staff."""
        name = self.display_name()
        if not self.vendor:
            return name
        org = names.clean(self.organisation)
        return f"{name} ({org}, vendor)" if org else f"{name} (vendor)"


@dataclass(frozen=True)
class DigestPost:
    """One post of the period; ``raw`` is the post as received (the MIME digest encloses it as is)."""

    message_id: str
    subject: str
    author: Participant
    date: datetime
    raw: bytes


@dataclass(frozen=True)
class DigestThread:
    """A thread with posts in the period. ``posts`` are the period's posts, oldest first."""

    subject: str
    url: str
    participants: tuple[Participant, ...]
    new_posts: int
    is_new: bool
    summary: str
    posts: tuple[DigestPost, ...]

    @property
    def latest(self) -> datetime:
        """When the thread's most recent post of the period was sent (the epoch with no posts)."""
        return max((p.date for p in self.posts), default=_EPOCH)

    @property
    def first(self) -> datetime | None:
        """When the thread's earliest post of the period was sent."""
        return min((p.date for p in self.posts), default=None)


@dataclass(frozen=True)
class UpcomingItem:
    """An event or scheduled item shown under "Coming up"."""

    title: str
    when: datetime
    url: str = ""
    detail: str = ""


@dataclass(frozen=True)
class Digest:
    """One issue of a list's digest.

    ``threads`` holds every thread with posts in the period ``[period_start, period_end)``;
    the renderers order them with :attr:`active_threads`.
    """

    list_name: str
    list_address: str
    description: str
    period_start: datetime
    period_end: datetime
    volume: int
    number: int
    threads: tuple[DigestThread, ...]
    upcoming: tuple[UpcomingItem, ...]
    new_members: int
    archive_url: str
    tz: str = "Europe/London"

    @property
    def active_threads(self) -> tuple[DigestThread, ...]:
        """Most active first: most new posts, then most recent post, then subject (case-blind)."""
        return tuple(sorted(self.threads,
                            key=lambda t: (-t.new_posts, -t.latest.timestamp(), t.subject.casefold(),
                                           t.subject)))

    @property
    def new_threads(self) -> tuple[DigestThread, ...]:
        """Threads started in the period, in the order of their first post."""
        new = [t for t in self.threads if t.is_new]
        return tuple(sorted(new, key=lambda t: (t.first is None, (t.first or _EPOCH).timestamp(),
                                                t.subject.casefold())))

    @property
    def post_count(self) -> int:
        return sum(len(t.posts) for t in self.threads)


_FOOTER_RULE = re.compile(r"^[ \t]*_{20,}[ \t]*$", re.MULTILINE)


def summarise(text: str, words: int = 60) -> str:
    """The opening of a post in at most ``words`` words, ending with "…" when cut.

    ``text`` is the post's own words (the caller has already removed quotes and signature).
    A mailing-list footer (a line of underscores, as Mailman writes, and all after it) is
    dropped, and runs of whitespace collapse to single spaces.
    """
    m = _FOOTER_RULE.search(text)
    if m:
        text = text[: m.start()]
    tokens = text.split()
    if len(tokens) <= words:
        return " ".join(tokens)
    cut = " ".join(tokens[: max(words, 1)]).rstrip(",;:–—- ")
    return cut + "…"
