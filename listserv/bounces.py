"""Mail to a list's bounce address, acted on: scores, disabled delivery, reminders, complaints.

The door (``listserv.inbound``) hands over the raw message and the VERP recipient; the report
is read by ``bounce_parse`` and scored by ``bounce_score``; this module writes the outcome.
Copies the smarthost refused come through ``count`` and ``probe_failed`` too
(``listserv.smtp_bounces``), with the ``Bounce`` row the outbox recorded: one path for both.

Invariants:
- A bounce is attributed to the VERP recipient when there is one (the copy we sent them came
  back, whatever address the report names after forwarding); without VERP, to each failed
  recipient that is a member of the list. Non-members are recorded, never scored.
- Disabling delivery never touches ``delivery_mode``: re-enabling gives back what the member
  chose. Fan-out and digests skip rows with ``delivery_disabled_at`` set.
- Every disable, re-enable, removal and complaint is audited, and each names the member.
- The caller's transaction holds everything; nothing here commits.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from listserv import audit, bounce_score, leases, links, notices, outbox, subscriptions
from listserv.addresses import PROBE_PREFIX, Kind, probe_sender
from listserv.bounce_parse import Failure, Report, ReportKind, parse_report
from listserv.config import Config
from listserv.lists import list_info
from listserv.models import Address, Bounce, MailingList, Role, Subscription
from listserv.store import site_secret

log = logging.getLogger("commonroom.bounces")
ACTOR = "bounces"
POLICY_NOTICE_EVERY = timedelta(days=1)


@dataclass(frozen=True)
class MemberBounceInfo:
    email: str
    score: float
    last_bounce_at: datetime | None
    disabled_at: datetime | None


def settings(ml: MailingList) -> bounce_score.Settings:
    return bounce_score.Settings(ml.bounce_score_threshold, ml.bounce_info_stale_days,
                                 ml.bounce_you_are_disabled_warnings,
                                 ml.bounce_you_are_disabled_warnings_interval, ml.bounce_probe)


def _member(sub: Subscription) -> bounce_score.Member:
    return bounce_score.Member(sub.bounce_score, sub.last_bounce_at, sub.delivery_disabled_at,
                               sub.warnings_sent, sub.last_warning_at)


def _send(session: Session, cfg: Config, ml: MailingList, to: str, subject: str,
          body: str) -> None:
    info = list_info(ml, cfg)
    msg = notices.notice(info, to, subject, body)
    outbox.enqueue_notice(session, list_id=ml.id, recipient=to,
                          sender=info.address(Kind.BOUNCES), payload=msg.as_bytes())


def _tell_owners(session: Session, cfg: Config, ml: MailingList, subject: str,
                 body: str) -> None:
    assert ml.id is not None
    for mod in subscriptions.moderators(session, ml.id):
        _send(session, cfg, ml, mod, subject, body)


def _how_to_enable(session: Session, cfg: Config, ml: MailingList, email: str) -> str:
    info = list_info(ml, cfg)
    url = links.reenable_url(info.web_base_url, site_secret(session), ml.name, email)
    return (f"To get the list's mail again, open\n\n    {url}\n\n"
            f"or send a message from {email} to\n"
            f"{info.address(Kind.REQUEST)} with the word\n\n    enable\n\n"
            "as its subject or first line. If your mailbox was full or your server was down,\n"
            "please check it first, or the mail will bounce again.\n")


def handle(session: Session, cfg: Config, ml: MailingList, raw: bytes, verp: str,
           now: datetime) -> str:
    """Read and act on one message sent to ``ml``'s bounce address; says what was done."""
    if verp.startswith(PROBE_PREFIX):
        return _probe_bounced(session, cfg, ml, raw, verp[len(PROBE_PREFIX):], now)
    report = parse_report(raw, verp)
    if report.kind is ReportKind.COMPLAINT:
        return complaint(session, cfg, ml, report.complainant, report.how, now)
    if report.kind is ReportKind.AUTOREPLY:
        return f"dropped ({report.how})"
    if report.kind is not ReportKind.FAILURE:
        return f"bounce: {report.kind.value}, nothing counted"
    failures = report.failures
    if verp:  # our copy to the VERP recipient came back: it is theirs, whatever it names
        worst = min(failures, key=lambda f: (not f.permanent, f.policy))
        failures = (Failure(verp, worst.status, worst.diagnostic),)
    done = [_record(session, cfg, ml, f, report, now) for f in failures]
    return "bounce: " + "; ".join(done)


def _record(session: Session, cfg: Config, ml: MailingList, failure: Failure, report: Report,
            now: datetime) -> str:
    row = Bounce(list_id=ml.id, address=failure.recipient, at=now, status=failure.status,
                 source=report.how, diagnostic=failure.diagnostic[:500])
    session.add(row)
    return count(session, cfg, ml, row, now)


def count(session: Session, cfg: Config, ml: MailingList, row: Bounce, now: datetime) -> str:
    """Score the failure ``row`` records (its address, RFC 3463 status and diagnostic) against
    that member of ``ml``, and act on the score; says what was done."""
    assert ml.id is not None
    who = row.address
    sub = subscriptions.find_subscription(session, ml.id, who)
    if sub is None or sub.role == Role.NONMEMBER.value:
        return f"{who} {row.status} (not a member)"
    if sub.probe_token and sub.last_bounce_at is not None and \
            now - sub.last_bounce_at > timedelta(days=ml.bounce_info_stale_days):
        sub.probe_token = ""  # that probe got through long ago: a new run may send another
    scored = bounce_score.score(_member(sub), row.status, now, settings(ml))
    row.counted = scored.counted
    session.add(row)
    if scored.counted:
        sub.bounce_score = scored.score
        sub.last_bounce_at = now
        session.add(sub)
    log.info("bounce %s", scored.reason, extra={"list": ml.name, "member": who,
                                                 "status": row.status})
    if scored.tell_owners and _claim_policy_notice(session, ml, now):
        _tell_owners(session, cfg, ml, f"{ml.name}: mail refused by policy ({row.status})",
                     f"A copy of the list's mail to {who} was refused by the receiving side:\n\n"
                     f"    {row.diagnostic or row.status}\n\n"
                     "This is a deliverability problem (authentication, reputation or a block\n"
                     "list), not a dead address, so the member's bounce score is unchanged.\n"
                     "Run `commonroom doctor` and `commonroom bounces "
                     f"{ml.name}` to see more.\n")
    if scored.then is bounce_score.Then.DISABLE:
        disable(session, cfg, ml, sub, who, now, scored.reason)
    elif scored.then is bounce_score.Then.PROBE and not sub.probe_token:
        send_probe(session, cfg, ml, sub, who)
    return f"{who} {scored.reason}"


def send_probe(session: Session, cfg: Config, ml: MailingList, sub: Subscription,
               email: str) -> None:
    """Mail ``email`` from its own probe address; only a bounce of it disables delivery
    (the ordinary bounces may have come from a forwarder, or be forged)."""
    sub.probe_token = secrets.token_hex(16)
    session.add(sub)
    info = list_info(ml, cfg)
    msg = notices.notice(info, email, f"{ml.name}: checking that mail reaches you",
                         f"Mail from {info.post_address} to {email} has been bouncing.\n"
                         "This message checks whether the address still works: if you are "
                         "reading it,\nit does, and there is nothing to do.\n")
    outbox.enqueue_notice(session, list_id=ml.id, recipient=email,
                          sender=probe_sender(ml.name, cfg.server.domain, sub.probe_token),
                          payload=msg.as_bytes())
    audit.record(session, list_id=ml.id, actor=ACTOR, action="bounce-probe", target=email,
                 detail=f"score {sub.bounce_score:g}")


def _probe_bounced(session: Session, cfg: Config, ml: MailingList, raw: bytes, token: str,
                   now: datetime) -> str:
    sub = probe_subscription(session, ml, token)
    if sub is None:
        return "bounce of an unknown or answered probe: nothing counted"
    email = session.exec(select(Address.email).where(Address.id == sub.address_id)).one()
    report = parse_report(raw, email)
    if report.kind is not ReportKind.FAILURE:
        return f"probe to {email}: {report.kind.value} ({report.how}), nothing counted"
    row = Bounce(list_id=ml.id, address=email, at=now, status=report.failures[0].status,
                 diagnostic=report.failures[0].diagnostic[:500])
    return probe_failed(session, cfg, ml, sub, row, now)


def probe_subscription(session: Session, ml: MailingList, token: str) -> Subscription | None:
    """The member whose unanswered probe carries ``token`` (``probe-…`` stripped), or None."""
    if not token:
        return None
    return session.exec(select(Subscription).where(
        Subscription.list_id == ml.id, Subscription.probe_token == token)).first()


def probe_failed(session: Session, cfg: Config, ml: MailingList, sub: Subscription, row: Bounce,
                 now: datetime) -> str:
    """``sub``'s probe came back (``row`` records how): delivery is disabled."""
    row.source = "probe"
    session.add(row)
    sub.probe_token = ""
    scored = bounce_score.score(_member(sub), row.status, now, settings(ml), probe=True)
    if scored.then is bounce_score.Then.DISABLE:
        disable(session, cfg, ml, sub, row.address, now, f"{row.status}: probe bounced")
    session.add(sub)
    return f"probe to {row.address} bounced ({row.status}): delivery disabled"


def _claim_policy_notice(session: Session, ml: MailingList, now: datetime) -> bool:
    """Whether this policy refusal is the one that tells the owners: they hear once a day per
    list, not once per copy. The day is a one-day lease on the list's notice (``leases.take``,
    a unique row taken by one conditional write), so processes scoring at once on PostgreSQL
    cannot both take it; the refusals of one batch share one session, and the first takes it.
    (Looking for an earlier 5.7 bounce could not see another process's uncommitted one.)"""
    return leases.take(session, f"policy-notice:{ml.id}", leases.holder_id(),
                       POLICY_NOTICE_EVERY, now)


def disable(session: Session, cfg: Config, ml: MailingList, sub: Subscription, email: str,
            now: datetime, why: str) -> None:
    sub.delivery_disabled_at = now
    sub.warnings_sent = 0
    sub.last_warning_at = now
    session.add(sub)
    audit.record(session, list_id=ml.id, actor=ACTOR, action="delivery-disabled", target=email,
                 detail=why)
    _send(session, cfg, ml, email, f"{ml.name}: your delivery is disabled (bounces)",
          f"Mail from {list_info(ml, cfg).post_address} to {email} has been bouncing\n"
          f"(bounce score {sub.bounce_score:g}), so the list has stopped sending it to you.\n"
          "You are still a member.\n\n" + _how_to_enable(session, cfg, ml, email))
    if ml.bounce_notify_owner_on_disable:  # Mailman's setting and default
        _tell_owners(session, cfg, ml, f"{ml.name}: delivery to {email} disabled (bounces)",
                     f"Mail to {email} has been bouncing (bounce score "
                     f"{sub.bounce_score:g}; last: {why}),\nso the list has stopped sending "
                     "it to them. They are still a member and have been told\nhow to get "
                     f"the list's mail again. After {ml.bounce_you_are_disabled_warnings} "
                     f"reminders, {ml.bounce_you_are_disabled_warnings_interval} days apart,\n"
                     "the address is unsubscribed.\n\n"
                     f"To re-enable it yourself:  commonroom members enable {ml.name} {email}\n"
                     f"To stop these notices:     commonroom lists set {ml.name} "
                     "bounce_notify_owner_on_disable off\n")


def enable(session: Session, ml: MailingList, email: str, *, actor: str,
           via: str) -> subscriptions.Outcome:
    """Deliver to ``email`` again, its score cleared; an Outcome whatever the state."""
    assert ml.id is not None
    sub = subscriptions.find_subscription(session, ml.id, email)
    if sub is None or sub.role == Role.NONMEMBER.value:
        return subscriptions.Outcome(False, f"{email} is not a member of {ml.name}")
    if sub.delivery_disabled_at is None and not sub.bounce_score:
        return subscriptions.Outcome(True, f"delivery to {email} is already on")
    sub.delivery_disabled_at = None
    sub.probe_token = ""
    sub.bounce_score = 0.0
    sub.warnings_sent = 0
    sub.last_warning_at = None
    session.add(sub)
    audit.record(session, list_id=ml.id, actor=actor, action="delivery-enabled", target=email,
                 detail=f"via {via}")
    return subscriptions.Outcome(True, f"delivery to {email} is on again")


def complaint(session: Session, cfg: Config, ml: MailingList, email: str, how: str,
              now: datetime) -> str:
    """An ARF report: the member marked the list's mail as spam; they leave it at once."""
    assert ml.id is not None
    session.add(Bounce(list_id=ml.id, address=email or "unknown", at=now, status="complaint",
                       source=how))
    if not email or not subscriptions.is_member(session, ml.id, email):
        return f"complaint ({how}) about {email or 'an unknown recipient'}: not a member"
    subscriptions.remove_member(session, ml, email, actor=ACTOR, via=f"complaint ({how})")
    log.info("complaint: unsubscribed", extra={"list": ml.name, "member": email})
    return f"complaint ({how}): {email} unsubscribed"


def owner_complaint(session: Session, cfg: Config, ml: MailingList, raw: bytes,
                    now: datetime) -> str | None:
    """An ARF report sent to the owner address acts like one sent to the bounce address;
    None when ``raw`` is not one (then it goes to the owners as usual)."""
    if b"feedback-report" not in raw:  # cheap test before parsing every owner mail
        return None
    report = parse_report(raw)
    if report.kind is not ReportKind.COMPLAINT:
        return None
    return complaint(session, cfg, ml, report.complainant, report.how, now)


def sweep(session: Session, cfg: Config, now: datetime) -> int:
    """Reminders due to disabled members, and removal after the last; how many acted on."""
    rows = session.exec(select(Subscription, Address.email, MailingList).join(
        Address, col(Address.id) == col(Subscription.address_id)).join(
        MailingList, col(MailingList.id) == col(Subscription.list_id)).where(
        col(Subscription.delivery_disabled_at).is_not(None))).all()
    acted = 0
    for sub, email, ml in rows:
        due = bounce_score.due_warning(_member(sub), now, settings(ml))
        if due is bounce_score.Due.WARN:
            sub.warnings_sent += 1
            sub.last_warning_at = now
            session.add(sub)
            _send(session, cfg, ml, email,
                  f"{ml.name}: your delivery is still disabled (reminder {sub.warnings_sent})",
                  f"The list {list_info(ml, cfg).post_address} is not sending you mail because "
                  "it bounced.\nAfter "
                  f"{ml.bounce_you_are_disabled_warnings} reminders you will be unsubscribed.\n\n"
                  + _how_to_enable(session, cfg, ml, email))
        elif due is bounce_score.Due.REMOVE:
            subscriptions.remove_member(session, ml, email, actor=ACTOR,
                                        via="bounces: no re-enable after the reminders")
            _tell_owners(session, cfg, ml, f"{ml.name}: {email} unsubscribed (bounces)",
                         f"Delivery to {email} was disabled on "
                         f"{sub.delivery_disabled_at:%Y-%m-%d} because mail bounced, and "
                         "nobody re-enabled it\nafter the reminders, so the address has "
                         "been unsubscribed.\n")
        else:
            continue
        acted += 1
    return acted


def member_info(session: Session, ml: MailingList) -> dict[str, MemberBounceInfo]:
    """Each member's bounce facts, by address, for ``members list``."""
    rows = session.exec(select(Subscription, Address.email).join(
        Address, col(Address.id) == col(Subscription.address_id)).where(
        Subscription.list_id == ml.id)).all()
    return {email: MemberBounceInfo(email, sub.bounce_score, sub.last_bounce_at,
                                    sub.delivery_disabled_at) for sub, email in rows}


def recent(session: Session, ml: MailingList, limit: int = 50) -> list[Bounce]:
    return list(session.exec(select(Bounce).where(Bounce.list_id == ml.id).order_by(
        col(Bounce.at).desc(), col(Bounce.id).desc()).limit(limit)).all())
