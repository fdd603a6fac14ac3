"""The participation policy at the door: who it applies to, and what it says about a post.

The decision itself is pure (``listserv.policy``); this module gathers its inputs from the store:
the author's kind (vendor staff or member) and official flag on the list, the list's public
sources and word limit, and the texts already posted on the list from a public source (so a
forward of a press release that was posted before counts as public domain).

Invariants:
- Nothing is read for a sender outside the policy's scope: ``check`` returns None first.
- The texts a public-domain post adds for later posts are extracted once, from the body already
  read for its own verdict, and stored with it; earlier posts' raw bytes are not parsed again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta

from sqlmodel import Session, col, select

from listserv import policy, quotes
from listserv.message import first_text
from listserv.models import Address, MailingList, Message, MessageStatus, Person, Subscription, utcnow
from listserv.subscriptions import Standing

# How far back, and how many, earlier public texts a new post is compared with.
PUBLIC_TEXT_DAYS = 90
PUBLIC_TEXT_LIMIT = 50
MIN_PUBLIC_WORDS = 20  # shorter "texts" (a covering line) would match too much


def applies_to(session: Session, ml: MailingList, sender: str, sub: Subscription | None) -> bool:
    """Whether the list's policy covers this sender (vendor staff, official posters, ...)."""
    if ml.policy_scope == "off" or not sender:
        return False
    person = session.exec(select(Person).join(Address, col(Address.person_id) == col(Person.id))
                          .where(Address.email == sender)).first()
    kind = person.kind if person is not None else "member"
    return policy.applies(kind, bool(sub and sub.official), ml.policy_scope)


def applies(ml: MailingList, sender: str, standing: Standing) -> bool:
    """``applies_to`` for a post, from the sender's standing it has already read."""
    return bool(ml.policy_scope != "off" and sender and policy.applies(
        standing.kind, standing.official, ml.policy_scope))


def texts_of(body: str) -> list[str]:
    """What of a public-domain post later posts are compared with: the forwarded text (a press
    release), or the post itself, when long enough to mean something."""
    forwarded = quotes.forwarded_part(body, quotes=False)
    return [t for t in (forwarded, quotes.own_words(body)) if len(t.split()) >= MIN_PUBLIC_WORDS]


def public_texts(session: Session, ml: MailingList) -> list[str]:
    """Texts of recent accepted posts that the policy classed as public domain.

    Kept as extracted text when each post was stored (``Message.public_texts``); only rows
    stored before that column existed are read from their raw bytes.
    """
    since = utcnow() - timedelta(days=PUBLIC_TEXT_DAYS)
    rows = session.exec(select(Message.id, Message.public_texts).where(
        Message.list_id == ml.id, Message.status == MessageStatus.ACCEPTED.value,
        col(Message.accepted_at) >= since,
        col(Message.policy).contains(f'"{policy.Case.PUBLIC_DOMAIN.value}"'))
        # The latest accepted: ids are not in arrival order across processes (ids_ahead.py).
        .order_by(col(Message.accepted_at).desc(), col(Message.id).desc())
        .limit(PUBLIC_TEXT_LIMIT)).all()
    texts: list[str] = []
    for pk, kept in rows:
        if kept is None:  # stored before migration 0004
            raw = session.exec(select(Message.raw).where(Message.id == pk)).one()
            texts += texts_of(first_text(raw))
        else:
            texts += json.loads(kept)
    return texts


@dataclass(frozen=True)
class Verdict:
    """What the policy says of a post, and (when it is public domain) the texts to keep."""

    decision: policy.Decision
    public_texts: str | None = None  # JSON for ``Message.public_texts``
    body: str = ""  # the post's text it read (``first_text``): search indexes it without reparsing

    @property
    def hold_reason(self) -> str:
        return "" if self.decision.accepted else policy.HOLD_REASON


def _classify(session: Session, ml: MailingList, body: str) -> policy.Decision:
    return policy.classify(body, public_sources=policy.parse_sources(ml.public_sources),
                           word_limit=ml.policy_word_limit,
                           known_public_texts=public_texts(session, ml))


def decide(session: Session, ml: MailingList, raw: bytes) -> policy.Decision:
    """What the policy says of a post with this list's sources and word limit."""
    return _classify(session, ml, first_text(raw))


def check(session: Session, ml: MailingList, sender: str, standing: Standing,
          raw: bytes) -> Verdict | None:
    """The policy's verdict on a post, or None when the policy does not apply to its author
    (then nothing is read: not the body, not the earlier public texts)."""
    if not applies(ml, sender, standing):
        return None
    body = first_text(raw)
    decision = _classify(session, ml, body)
    kept = (json.dumps(texts_of(body), ensure_ascii=False)
            if decision.case is policy.Case.PUBLIC_DOMAIN else None)
    return Verdict(decision, kept, body)


def evidence_json(decision: policy.Decision) -> str:
    return json.dumps(decision.evidence(), ensure_ascii=False)


def describe(evidence: str) -> str:
    """The stored evidence as lines a moderator reads (the notice and `policy explain`)."""
    try:
        data = json.loads(evidence)
    except ValueError:
        return evidence
    links = data.get("links") or []
    public = set(data.get("public_links") or [])
    lines = [f"Participation policy: {data.get('case', '?')}: {data.get('reason', '')}",
             f"  own words: {data.get('own_words', '?')}"]
    lines += [f"  link: {link}" + ("  (public source)" if link in public else "") for link in links]
    if not links:
        lines.append("  links: none")
    if data.get("quoted_public"):
        lines.append("  quotes a text already posted from a public source")
    return "\n".join(lines)
