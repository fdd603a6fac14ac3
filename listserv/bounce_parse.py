"""What a message sent to a list's bounce address says: pure, bytes in, a ``Report`` out.

Read in this order, the first that applies wins:
1. RFC 5965 (ARF) feedback reports: a complaint, with the complaining recipient.
2. RFC 3464 delivery status notifications: each failed recipient with its status code and
   diagnostic. ``Action: delayed`` is a warning, not a failure, and is left out.
3. Irregular bounces that real MTAs still send (Exim's plain text, old Exchange, qmail…):
   flufl.bounce, Mailman's own detectors. Only its permanent findings count; its temporary
   ones are "still trying" warnings. (Before 4: Exim marks its bounces Auto-Submitted.)
4. Auto-replies and challenge-response mail (RFC 3834 ``Auto-Submitted``, the common
   ``X-Autoreply`` family, tell-tale subjects): dropped, never counted.
5. Nothing readable: if the VERP address names whose copy bounced, a failure of that
   recipient with the unspecific status 5.0.0; otherwise ``UNKNOWN``.

Invariants:
- Nothing here raises on hostile input; addresses come back lower-cased in the domain only.
- ``Failure.status`` is always an RFC 3463 code ``C.S.D`` with C in 4 or 5.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import Message

from flufl.bounce import all_failures

from listserv.addresses import normalise_address

_STATUS = re.compile(r"\b([45])\.(\d{1,3})\.(\d{1,3})\b")
_UNREADABLE = "5.0.0"


class ReportKind(enum.Enum):
    FAILURE = "failure"  # one or more recipients failed
    WARNING = "warning"  # delivery delayed, still being tried: nothing to count
    AUTOREPLY = "autoreply"  # out-of-office, vacation, challenge-response: dropped
    COMPLAINT = "complaint"  # ARF: the recipient marked a post as spam
    UNKNOWN = "unknown"  # not readable and no VERP recipient


@dataclass(frozen=True)
class Failure:
    recipient: str
    status: str  # RFC 3463, e.g. "5.1.1"
    diagnostic: str = ""

    @property
    def permanent(self) -> bool:
        return self.status.startswith("5")

    @property
    def policy(self) -> bool:
        """5.7.x: the receiving side refuses the list (spam, policy), not a dead mailbox."""
        return self.status.startswith("5.7.")


@dataclass(frozen=True)
class Report:
    kind: ReportKind
    failures: tuple[Failure, ...] = ()
    how: str = ""  # which reading found it: "dsn", "arf", "flufl", "verp", "autoreply: …"
    complainant: str = ""  # COMPLAINT: the address that complained


def _status_in(text: str) -> str:
    m = _STATUS.search(text)
    return f"{m.group(1)}.{m.group(2)}.{m.group(3)}" if m else ""


def reply_status(code: int, text: str) -> str:
    """The RFC 3463 status an SMTP reply means: its enhanced code when it gives one of the
    reply's own class (``550 5.1.1 …`` → 5.1.1), else the class alone (``550 …`` → 5.0.0).
    A reply that is not 5xx (or no reply, code 0) is a temporary failure, 4.0.0 at most."""
    klass = "5" if 500 <= code < 600 else "4"
    m = _STATUS.match(text.strip())
    return _status_in(m.group(0)) if m and m.group(1) == klass else f"{klass}.0.0"


def _address(field: str) -> str:
    """``rfc822; Alice@Example.org`` or ``<alice@example.org>`` → ``Alice@example.org``."""
    value = field.split(";", 1)[-1].strip().strip("<>").strip()
    return normalise_address(value) or ""


def _report_part(msg: Message, report_type: str) -> Message | None:
    for part in msg.walk():
        if (part.get_content_type() == "multipart/report"
                and str(part.get_param("report-type", "")).lower() == report_type):
            return part
    return None


def _blocks(part: Message, content_type: str) -> list[Message]:
    """The field blocks of a message/delivery-status or message/feedback-report part."""
    for sub in part.walk():
        if sub.get_content_type() != content_type:
            continue
        payload = sub.get_payload()
        if isinstance(payload, list):
            return [b for b in payload if isinstance(b, Message)]
        text = payload if isinstance(payload, str) else ""
        blocks = [message_from_bytes(chunk.strip().encode("utf-8", "replace") + b"\n")
                  for chunk in re.split(r"\r?\n\s*\r?\n", text) if chunk.strip()]
        return blocks
    return []


def _dsn(part: Message) -> Report:
    failures: list[Failure] = []
    delayed = False
    for block in _blocks(part, "message/delivery-status")[1:]:  # the first is per-message
        action = str(block.get("Action", "")).strip().lower()
        if action == "delayed":
            delayed = True
        if action != "failed":
            continue
        recipient = _address(str(block.get("Final-Recipient", "")) or
                             str(block.get("Original-Recipient", "")))
        diagnostic = " ".join(str(block.get("Diagnostic-Code", "")).split())
        status = _status_in(str(block.get("Status", ""))) or _status_in(diagnostic) or "5.0.0"
        if recipient:
            failures.append(Failure(recipient, status, diagnostic[:500]))
    if failures:
        return Report(ReportKind.FAILURE, tuple(failures), "dsn")
    return Report(ReportKind.WARNING if delayed else ReportKind.UNKNOWN, (), "dsn")


def _arf(part: Message, verp: str) -> Report:
    blocks = _blocks(part, "message/feedback-report")
    fields = blocks[0] if blocks else Message()
    who = _address(str(fields.get("Original-Rcpt-To", ""))) or verp
    if not who:  # the reported post's own To/envelope, when the report names nobody else
        for sub in part.walk():
            if sub.get_content_type() in ("message/rfc822", "text/rfc822-headers"):
                inner = sub.get_payload()
                if isinstance(inner, list) and inner and isinstance(inner[0], Message):
                    who = _address(str(inner[0].get("To", "")))
    feedback = str(fields.get("Feedback-Type", "abuse")).strip().lower() or "abuse"
    return Report(ReportKind.COMPLAINT, (), f"arf: {feedback}", who)


# (header, pattern its value matches) that mark a human's mailbox answering on its own.
_AUTOREPLY_HEADERS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("Auto-Submitted", re.compile(r"^\s*auto-replied", re.I)),
    ("X-Autoreply", re.compile(r".")),
    ("X-Autorespond", re.compile(r".")),
    ("X-Auto-Response-Suppress", re.compile(r"\b(?:oof|autoreply)\b", re.I)),
    ("Precedence", re.compile(r"^\s*auto_reply", re.I)),
    ("X-Challenge", re.compile(r".")),  # challenge-response systems (TMDA, Boxtrapper…)
    ("X-Boxtrapper", re.compile(r".")),
    ("X-Bluebottle-Request", re.compile(r".")),
)
_AUTOREPLY_SUBJECT = re.compile(
    r"^\s*(?:out of (?:the )?office|automatic reply|auto(?:matic)?[- ]?(?:reply|response)"
    r"|auto:|vacation|away from|abwesenheit|absence"
    r"|please confirm your (?:message|e-?mail)|confirm your email to|verify your email to"
    r"|challenge)", re.I)


def autoreply(msg: Message) -> str:
    """Why ``msg`` is an auto-reply or a challenge, or "" (checked after DSN and ARF)."""
    for header, pattern in _AUTOREPLY_HEADERS:
        value = msg.get(header)
        if value is not None and pattern.search(str(value)):
            return f"{header}: {' '.join(str(value).split())[:60]}"
    subject = " ".join(str(msg.get("Subject", "")).split())
    if _AUTOREPLY_SUBJECT.search(subject):
        return f"subject: {subject[:60]}"
    return ""


def _flufl(msg: Message, raw: bytes) -> tuple[Failure, ...]:
    try:
        _temporary, permanent = all_failures(msg)
    except Exception:  # a third-party detector must not take a bounce down with it
        return ()
    text = raw.decode("utf-8", "replace")
    found: list[Failure] = []
    for addr in sorted(permanent):
        recipient = normalise_address(addr.decode("utf-8", "replace").strip("<>"))
        if recipient is None:
            continue
        status, diagnostic = _status_near(text, recipient)
        found.append(Failure(recipient, status if status.startswith("5") else "5.0.0",
                             diagnostic))
    return tuple(found)


def _status_near(text: str, recipient: str) -> tuple[str, str]:
    """The first enhanced status code after the recipient's address in a plain-text bounce,
    and the line it is on (the server's words, as the diagnostic)."""
    at = max(text.lower().find(recipient.lower()), 0)
    window = text[at:at + 600]
    m = _STATUS.search(window)
    if m is None:
        return "", ""
    start = window.rfind("\n", 0, m.start()) + 1
    end = window.find("\n", m.end())
    line = window[start:end if end >= 0 else len(window)]
    return _status_in(line), " ".join(line.split())[:500]


def parse_report(raw: bytes, verp: str = "") -> Report:
    """Read what ``raw`` (sent to a bounce address) reports; ``verp`` is the recipient the
    VERP address named, or ""."""
    msg = message_from_bytes(raw, policy=policy.compat32)
    verp = normalise_address(verp) or "" if verp else ""
    arf = _report_part(msg, "feedback-report")
    if arf is not None:
        return _arf(arf, verp)
    dsn = _report_part(msg, "delivery-status")
    if dsn is not None:
        report = _dsn(dsn)
        if report.kind is not ReportKind.UNKNOWN:
            return report
    # flufl before the auto-reply check: MTAs (Exim) mark their own bounces Auto-Submitted.
    failures = _flufl(msg, raw)
    if failures:
        return Report(ReportKind.FAILURE, failures, "flufl")
    why = autoreply(msg)
    if why:
        return Report(ReportKind.AUTOREPLY, (), f"autoreply: {why}")
    if verp:
        return Report(ReportKind.FAILURE, (Failure(verp, _UNREADABLE, "unreadable report"),),
                      "verp")
    return Report(ReportKind.UNKNOWN)
