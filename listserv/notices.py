"""Mail the list software writes itself: confirmations, welcomes, held and rejected notices.

Invariants:
- Every notice carries ``Auto-Submitted`` (RFC 3834) so that auto-responders stay quiet and our
  own posting rules discard it if it ever comes back: notices can never start a mail loop.
- Notices are built as complete messages (bytes with CRLF line ends) and go through the same
  outbox as posts; the envelope sender is the list's -bounces address.
- Texts speak to a person: what happened, why, and what they can do next.
"""

from __future__ import annotations

import email.policy
import re
import secrets
from datetime import datetime
from email.contentmanager import _encode_text  # type: ignore[attr-defined]  # set_content's encoder
from email.message import EmailMessage, MIMEPart
from email.utils import format_datetime, formataddr, make_msgid
from typing import Any

from listserv import links
from listserv.addresses import Kind
from listserv.decorate import ListInfo
from listserv.models import utcnow

WIRE = email.policy.SMTP.clone(max_line_length=78)


def _set_plain(msg: EmailMessage, name: str, value: str) -> None:
    """Set a header we made ourselves. When it is short plain ASCII, written as is: the email
    package's header parsing (``msg[name] = value``) cost a fifth of a held post (issue 12),
    and would write such a value unchanged anyway."""
    if value.isascii() and value.isprintable() and len(name) + 2 + len(value) <= 78:
        msg.set_raw(name, value)
    else:
        msg[name] = value


def _headers(info: ListInfo, to: str, subject: str, *, auto: str, reply_to: str | None,
             from_addr: str | None) -> list[tuple[str, str]]:
    """A notice's own headers, in order (``_base``, ``_fast_mixed``)."""
    headers = [("From", formataddr((f"{info.name} list", from_addr or info.address(Kind.REQUEST)))),
               ("To", to), ("Subject", subject), ("Date", format_datetime(utcnow())),
               ("Message-ID", make_msgid(domain=info.domain)), ("Auto-Submitted", auto),
               ("Precedence", "list"), ("List-Id", f"<{info.list_id}>"),
               ("X-Loop", info.post_address)]
    return [*headers, ("Reply-To", reply_to)] if reply_to else headers


PARSED = ("From", "To", "Subject", "Reply-To")  # set through the email package's parsers


def _base(info: ListInfo, to: str, subject: str, body: str, *, auto: str = "auto-replied",
          reply_to: str | None = None, from_addr: str | None = None) -> EmailMessage:
    msg = EmailMessage(policy=WIRE)
    for name, value in _headers(info, to, subject, auto=auto, reply_to=reply_to,
                                from_addr=from_addr):
        if name in PARSED:
            msg[name] = value
        else:
            _set_plain(msg, name, value)
    msg.set_content(body)
    return msg


def _notice_bytes(info: ListInfo, to: str, subject: str, body: str, *, auto: str = "auto-replied",
                  reply_to: str | None = None, from_addr: str | None = None) -> bytes:
    """``_base(…).as_bytes()``, written directly when it is plain (notices about held and
    rejected posts are made once per post in a flood; issue 12)."""
    headers = _headers(info, to, subject, auto=auto, reply_to=reply_to, from_addr=from_addr)
    fast = _fast_text(headers, body)
    if fast is not None:
        return fast
    return _base(info, to, subject, body, auto=auto, reply_to=reply_to,
                 from_addr=from_addr).as_bytes()


def notice(info: ListInfo, to: str, subject: str, body: str) -> EmailMessage:
    """A plain notice from the list's request address, for services with their own texts
    (``listserv.event_mail``) to add parts to."""
    return _base(info, to, subject, body)


def confirm_request(info: ListInfo, to: str, token: str, action: str) -> bytes:
    """Double opt-in: one mail, three ways to say yes (reply, mail the address, click)."""
    confirm_addr = info.address(Kind.CONFIRM, token)
    what = {"subscribe": "join", "unsubscribe": "leave"}.get(
        action, f"{DELIVERY_WORDS.get(action, 'change how you get mail')} from")
    body = (
        f"Someone (hopefully you) asked to {what} the mailing list {info.post_address}\n"
        f"({info.description or info.name}) with the address {to}.\n\n"
        "To confirm, do any one of these:\n"
        "  - reply to this message (the subject and text can stay as they are);\n"
        f"  - send an empty message to {confirm_addr};\n"
        f"  - open {links.confirm_url(info.web_base_url, token)}\n\n"
        "If you did not ask for this, ignore this message: nothing happens unless you confirm,\n"
        "and the request expires in 72 hours.\n")
    msg = _base(info, to, f"confirm {token}", body, reply_to=confirm_addr,
                from_addr=confirm_addr)
    return msg.as_bytes()


# Pending actions that change delivery (subscriptions.delivery_action), in the confirmation.
DELIVERY_WORDS = {
    "delivery-each": "get each post as it is sent (no digest)",
    "delivery-nomail": "get no mail, but stay subscribed,",
    "delivery-plain": "get a weekly plain-text digest instead of each post",
    "delivery-mime": "get a weekly MIME digest instead of each post",
    "delivery-html": "get a weekly HTML digest instead of each post",
}


def welcome(info: ListInfo, to: str) -> bytes:
    body = (
        f"Welcome to {info.post_address} ({info.description or info.name}).\n\n"
        f"To post, write to {info.post_address}.\n"
        f"To leave, write to {info.address(Kind.LEAVE)} (you will be asked to confirm).\n"
        f"For help, write to {info.address(Kind.REQUEST)} with 'help' as the subject.\n"
        f"The archive: {links.archive_url(info.web_base_url, info.name)}\n")
    return _base(info, to, f"Welcome to {info.name}", body).as_bytes()


def signin_link(info: ListInfo, to: str, url: str, minutes: int) -> bytes:
    body = (f"Someone (hopefully you) asked to sign in to the web pages of {info.domain}\n"
            f"with the address {to}. To sign in, open this link within {minutes} minutes:\n\n"
            f"  {url}\n\n"
            "It works once. If you did not ask for it, ignore this message: nobody can sign in\n"
            "without the link.\n")
    return _base(info, to, f"Sign in to {info.domain}", body).as_bytes()


def goodbye(info: ListInfo, to: str) -> bytes:
    body = (f"You have left {info.post_address}. You will get no more posts from it.\n"
            f"To join again, write to {info.address(Kind.JOIN)}.\n")
    return _base(info, to, f"You have left {info.name}", body).as_bytes()


def help_text(info: ListInfo) -> str:
    return (
        f"Commands for {info.post_address}, sent to {info.address(Kind.REQUEST)} in the subject\n"
        "or one per line in the body:\n"
        "  subscribe    - join the list (you will be asked to confirm)\n"
        "  unsubscribe  - leave the list (you will be asked to confirm)\n"
        "  digest plain - get a weekly digest instead of each post (also: digest mime,\n"
        "                 digest html; digest off goes back to each post; you will be\n"
        "                 asked to confirm)\n"
        "  attend N     - say you are coming to event N (leave N: you no longer are)\n"
        "  enable       - get the list's mail again after bounces stopped it\n"
        "  help         - this text\n\n"
        "Moderators: 'event add', 'competition start' or 'schedule add' as the subject (or the\n"
        "first line), then 'Key: value' lines (Title:, Start:, End:, ...; Prize:, Closes:, ...;\n"
        "At:, Every:, From:, Subject:), a blank line and the text. Nothing is created until you\n"
        "confirm from your own address (you will be asked).\n\n"
        f"Shortcuts: write to {info.address(Kind.JOIN)} to join, {info.address(Kind.LEAVE)} to leave.\n"
        f"To reach the people who run the list, write to {info.address(Kind.OWNER)}.\n")


def request_results(info: ListInfo, to: str, results: list[tuple[str, str]]) -> bytes:
    """The reply to a -request message: each line understood and what became of it."""
    lines = [f"> {command}\n{outcome}\n" for command, outcome in results] or [
        "No commands were found in your message.\n"]
    body = ("These are the results of your message:\n\n" + "\n".join(lines) + "\n"
            + help_text(info))
    return _base(info, to, f"Results of your request to {info.name}", body).as_bytes()


# What the sender is told happens next, by the rule that held the post.
NEXT_STEPS = {
    "participation-policy": (
        "This list asks people who post in an official capacity or for a supplier to check new\n"
        "guidance and views with their policy and communications colleagues first. That is\n"
        "all this is: nothing is wrong with your message. A moderator will read it and\n"
        "usually send it on; if they have a question, they will write to you.\n"),
}
DEFAULT_NEXT = ("You do not need to do anything. If a moderator approves it, it goes to the list;\n"
                "if not, you will be told why.\n")


def held_for_sender(info: ListInfo, to: str, subject: str, reason: str, *, rule: str = "") -> bytes:
    body = (f"Your message to {info.post_address} with the subject\n\n    {subject}\n\n"
            f"is waiting for a moderator, because {reason}.\n\n"
            + NEXT_STEPS.get(rule, DEFAULT_NEXT))
    return _notice_bytes(info, to, f"Your message to {info.name} is waiting for a moderator",
                         body)


def rejected_for_sender(info: ListInfo, to: str, subject: str, reason: str) -> bytes:
    body = (f"Your message to {info.post_address} with the subject\n\n    {subject}\n\n"
            f"was not posted: {reason}.\n\n"
            f"If you think this is a mistake, write to {info.address(Kind.OWNER)}.\n")
    return _notice_bytes(info, to, f"Your message to {info.name} was not posted", body)


def how_to_act(held_id: int) -> str:
    """The commands a moderator can reply with (``moderation.REPLY_COMMANDS``)."""
    return ("To act on it, reply to this message with one of these as the first line\n"
            "(exactly; anything else changes nothing):\n"
            "  approve            (send it to the list)\n"
            "  approve always     (send it, and accept this sender's posts from now on)\n"
            "  approve hold       (send it, but hold this sender's future posts)\n"
            "  reject REASON      (the sender is told the reason)\n"
            "  discard            (drop it silently)\n"
            "or on the server:\n"
            f"  commonroom queue approve {held_id}\n"
            f"  commonroom queue reject {held_id} --reason '...'\n"
            f"  commonroom queue discard {held_id}\n")


def on_the_web(info: ListInfo, held_id: int) -> str:
    """Where a signed-in moderator sees and handles the post (listserv/web/moderate.py)."""
    return ("or on the web (sign in as a moderator):\n"
            f"  {info.web_base_url.rstrip('/')}/moderate/held/{held_id}\n")


def held_for_moderators(info: ListInfo, to: str, held_id: int, token: str, sender: str,
                        subject: str, reason: str, original: bytes, *, policy: str = "") -> bytes:
    evidence = f"{policy}\n\n" if policy else ""
    body = (f"A post to {info.post_address} is held for review (queue item {held_id}).\n\n"
            f"From:    {sender}\nSubject: {subject}\nReason:  {reason}\n\n{evidence}"
            + how_to_act(held_id) + on_the_web(info, held_id) + "\nThe post is attached.\n")
    kwargs: dict[str, Any] = {"auto": "auto-generated", "from_addr": info.address(Kind.OWNER),
                              "reply_to": info.address(Kind.CONFIRM, token)}
    subject_line = f"[{info.name}] held post {held_id}: {subject}"[:200]
    filename = f"held-{held_id}.eml"
    # Every held post makes one of these per moderator: written directly when it is plain
    # ASCII (almost always), which the email package would write the same (issue 12).
    fast = _fast_mixed(_headers(info, to, subject_line, **kwargs), body, original, filename)
    if fast is not None:
        return fast
    return _with_attachment(_base(info, to, subject_line, body, **kwargs), original, filename)


def held_reminder(info: ListInfo, to: str, held_id: int, token: str, sender: str, subject: str,
                  reason: str, expires: datetime, expiry_action: str) -> bytes:
    fate = {"accept": "sent to the list", "reject": "rejected",
            "discard": "discarded"}.get(expiry_action, expiry_action)
    body = (f"Reminder: a post to {info.post_address} has been waiting for a moderator.\n\n"
            f"From:    {sender}\nSubject: {subject}\nReason:  {reason}\n\n"
            f"If nobody handles it by {expires:%A %d %B %Y %H:%M} UTC, it will be {fate}.\n\n"
            + how_to_act(held_id) + on_the_web(info, held_id))
    return _base(info, to, f"[{info.name}] reminder: held post {held_id}: {subject}"[:200], body,
                 auto="auto-generated", from_addr=info.address(Kind.OWNER),
                 reply_to=info.address(Kind.CONFIRM, token)).as_bytes()


def moderation_result(info: ListInfo, to: str, held_id: int, outcome: str) -> bytes:
    return _base(info, to, f"[{info.name}] {outcome.splitlines()[0]}"[:200],
                 outcome + "\n", auto="auto-replied",
                 from_addr=info.address(Kind.OWNER)).as_bytes()


# RFC 2045 2.7/2.8: what 7bit and 8bit bodies may hold (RFC 2046 5.2.1 allows only these, or
# binary, for message/rfc822). Lines of at most 998 octets, CR only in CRLF, no NUL.
MAX_LINE = 998  # octets of a line, without its CRLF (RFC 5322 2.1.1)


def _longest_line(raw: bytes) -> int:
    """Octets in the longest line, CR LF not counted (``raw`` has no bare CR). Pure."""
    return max((len(line) - line.endswith(b"\r") for line in raw.split(b"\n")), default=0)
_BARE_LF = re.compile(rb"(?<!\r)\n")


def attachment_encoding(raw: bytes) -> str | None:
    """"7bit" or "8bit" when ``raw`` (CRLF lines) can be a message/rfc822 body, else None. Pure."""
    # Counted in C rather than searched with a regular expression: this runs for every held post.
    if b"\0" in raw or raw.count(b"\r") != raw.count(b"\r\n") or _longest_line(raw) > MAX_LINE:
        return None
    return "7bit" if raw.isascii() else "8bit"


def _attachment_parts(raw: bytes, filename: str) -> list[bytes]:
    """The post as MIME parts: message/rfc822 with its bytes untouched (7bit or 8bit); or, when
    it breaks the line rules, its headers as text/rfc822-headers plus its body in base64."""
    encoding = attachment_encoding(raw)
    if encoding is not None:
        return [(f"Content-Type: message/rfc822\r\n"
                 f"Content-Disposition: attachment; filename=\"{filename}\"\r\n"
                 f"Content-Transfer-Encoding: {encoding}\r\n\r\n").encode() + raw]
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        head, body = b"", raw
    headers = MIMEPart(policy=WIRE)
    headers.set_content(head + b"\r\n", maintype="text", subtype="rfc822-headers",
                        cte="quoted-printable", disposition="inline")
    rest = MIMEPart(policy=WIRE)
    rest.set_content(body, maintype="application", subtype="octet-stream",
                     disposition="attachment", filename=filename.replace(".eml", "-body"))
    return [headers.as_bytes(), rest.as_bytes()]


def _with_attachment(msg: EmailMessage, original: bytes, filename: str) -> bytes:
    """``msg`` as multipart/mixed with the post attached (see ``_attachment_parts``).

    The email package would base64 a message/rfc822 given as bytes, so the part is spliced in.
    """
    raw, boundary = _attachable(original)
    msg.make_mixed()
    msg.set_boundary(boundary)
    closing = f"--{boundary}--".encode()
    text = msg.as_bytes()
    assert text.count(closing) == 1
    parts = b"".join(f"--{boundary}\r\n".encode() + part + b"\r\n"
                     for part in _attachment_parts(raw, filename))
    return text.replace(closing, parts + closing)


# Header values the email package writes back exactly as given: single-spaced printable ASCII
# words, no encoded-word look-alikes; addresses only as "Name words <addr>" or a bare addr.
_PLAIN_VALUE = re.compile(r"[!-~]+(?: [!-~]+)*\Z")
_PLAIN_ADDRESS = re.compile(r"(?:[A-Za-z0-9_-]+(?: [A-Za-z0-9_-]+)* <[A-Za-z0-9._+=-]+@[A-Za-z0-9.-]+>"
                            r"|[A-Za-z0-9._+=-]+@[A-Za-z0-9.-]+)\Z")
ADDRESS_HEADERS = ("From", "To", "Reply-To")
_NEWLINES = re.compile(r"\r\n|\r|\n")  # what the email package's generator takes as line ends


def _plain_header(name: str, value: str) -> bool:
    """Whether ``name: value`` can be written as is: one line the email package would not
    fold, re-quote or decode. Pure."""
    if len(name) + 2 + len(value) > 78 or "=?" in value:
        return False
    pattern = _PLAIN_ADDRESS if name in ADDRESS_HEADERS else _PLAIN_VALUE
    return pattern.match(value) is not None


def _text_part(body: str) -> tuple[str, bytes] | None:
    """The text's Content-Transfer-Encoding and CRLF bytes as ``set_content(body)`` writes them
    (its own choice of 7bit, 8bit, quoted-printable or base64), or None for text the email
    package might treat otherwise (control characters)."""
    if "\r" in body or not all(line.isprintable() for line in body.split("\n")):
        return None
    cte, payload = _encode_text(body, "utf-8", None, WIRE)
    return cte, _NEWLINES.sub("\r\n", payload).encode("ascii", "surrogateescape")


def _plain_head(headers: list[tuple[str, str]], text: tuple[str, bytes] | None) -> str | None:
    """The notice's own header lines, or None when one of them needs the email package."""
    if text is None or not all(_plain_header(name, value) for name, value in headers):
        return None
    return "".join(f"{name}: {value}\r\n" for name, value in headers)


def _fast_text(headers: list[tuple[str, str]], body: str) -> bytes | None:
    """``_base(…).as_bytes()`` written directly, byte for byte the same (tests check this),
    or None when a header or the text needs the email package."""
    text = _text_part(body)
    head = _plain_head(headers, text)
    if head is None or text is None:
        return None
    cte, payload = text
    return (f"{head}Content-Type: text/plain; charset=\"utf-8\"\r\n"
            f"Content-Transfer-Encoding: {cte}\r\nMIME-Version: 1.0\r\n\r\n").encode() + payload


def _fast_mixed(headers: list[tuple[str, str]], body: str, original: bytes,
                filename: str) -> bytes | None:
    """``_with_attachment(_base(…))`` written directly, byte for byte the same (tests check
    this), or None when a header or the text needs the email package."""
    text = _text_part(body)
    head = _plain_head(headers, text)
    if head is None or text is None:
        return None
    cte, payload = text
    raw, boundary = _attachable(original)
    out = (f"{head}MIME-Version: 1.0\r\nContent-Type: multipart/mixed;\r\n boundary=\"{boundary}\"\r\n\r\n"
           f"--{boundary}\r\nContent-Type: text/plain; charset=\"utf-8\"\r\n"
           f"Content-Transfer-Encoding: {cte}\r\n\r\n").encode() + payload + b"\r\n"
    parts = b"".join(f"--{boundary}\r\n".encode() + part + b"\r\n"
                     for part in _attachment_parts(raw, filename))
    return out + parts + f"--{boundary}--\r\n".encode()


def _attachable(original: bytes) -> tuple[bytes, str]:
    """The post with CRLF line ends, and a boundary that does not occur in it."""
    raw = _BARE_LF.sub(b"\r\n", original)
    if not raw.endswith(b"\r\n"):
        raw += b"\r\n"
    boundary = "=_commonroom_" + secrets.token_hex(12)
    while boundary.encode() in raw:  # the boundary must not occur in what it encloses
        boundary = "=_commonroom_" + secrets.token_hex(12)
    return raw, boundary


def to_owners(info: ListInfo, to: str, original: bytes, sender: str) -> bytes:
    """Mail to LIST-owner, passed on to each moderator as an attachment (never re-sent as is,
    so the moderators' replies go to the writer, not back into the list)."""
    body = f"A message for the people who run {info.post_address} arrived from {sender}.\n"
    msg = _base(info, to, f"[{info.name}] message for the list owners from {sender}"[:200],
                body, auto="auto-generated", reply_to=sender, from_addr=info.address(Kind.OWNER))
    return _with_attachment(msg, original, "message.eml")
