"""A post as ``posting.post`` has just stored it, without an ORM object.

``posting.post`` writes the ``message`` row with one core INSERT (issue 12: building a SQLModel
``Message`` took ~120 µs and its flush more), so what the rest of the pipeline reads of the new
post (the archive's thread summary and search text, the Discord bridge, competitions, the
moderation queue) comes from this record of the values it inserted. Functions that take a post
take either kind (``AnyPost``): a ``Message`` loaded or flushed earlier, or a ``PostRow``.

Invariant: a ``PostRow`` holds exactly the values its row was inserted with.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from listserv.models import Message


@dataclass(frozen=True, slots=True)
class PostRow:
    id: int
    list_id: int
    thread_id: int | None
    message_id: str
    envelope_from: str
    from_address: str
    from_name: str
    subject: str
    date: datetime | None
    received_at: datetime
    policy: str
    raw: bytes


AnyPost = Message | PostRow
