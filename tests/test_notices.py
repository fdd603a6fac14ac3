"""Notices that carry a post (issue 7.10): the post is attached as message/rfc822 in 7bit or
8bit with its bytes untouched (RFC 2046 5.2.1 forbids base64 there), or, when its lines break
the 7bit/8bit rules, as text/rfc822-headers plus its body."""

from __future__ import annotations

import email
import email.policy
import re
from email.message import EmailMessage
from pathlib import Path

import pytest

from listserv import notices
from listserv.decorate import ListInfo

INFO = ListInfo("demo", "lists.example.org", "Demo list", "https://lists.example.org")
ASCII = (b"From: Dan <dan@elsewhere.example>\r\nTo: demo@lists.example.org\r\n"
         b"Subject: CRMs\r\nMessage-ID: <a@b>\r\n\r\nWhich CRM do you use?\r\n")
UTF8 = ASCII.replace(b"Which CRM", "Quel CRM utilisez-vous, s'il vous pla\u00eet ?".encode())


def _notice(original: bytes) -> tuple[bytes, EmailMessage]:
    data = notices.held_for_moderators(INFO, "mod@council.gov.uk", 7, "tok", "dan@x", "CRMs",
                                       "not a member", original)
    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return data, msg


@pytest.mark.parametrize("original,encoding", [(ASCII, "7bit"), (UTF8, "8bit")])
def test_the_held_post_is_attached_untouched_without_base64(original: bytes,
                                                             encoding: str) -> None:
    data, msg = _notice(original)
    assert msg.get_content_type() == "multipart/mixed"
    text, attached = msg.iter_parts()
    assert "held for review" in text.get_content()
    assert attached.get_content_type() == "message/rfc822"
    assert attached["Content-Transfer-Encoding"] == encoding
    assert attached.get_filename() == "held-7.eml"
    assert original in data, "the post's bytes are in the notice as received"
    inner = attached.get_content()
    assert inner["Message-ID"] == "<a@b>" and "CRM" in inner.get_content()
    assert notices.attachment_encoding(original) == encoding


def test_bare_line_feeds_are_made_crlf_first() -> None:
    data, msg = _notice(ASCII.replace(b"\r\n", b"\n"))
    attached = list(msg.iter_parts())[1]
    assert attached["Content-Transfer-Encoding"] == "7bit"
    assert ASCII in data


@pytest.mark.parametrize("body", [b"x" * 1200 + b"\r\n", b"a\rb\r\n", b"nul\0here\r\n"])
def test_a_post_that_cannot_be_7bit_or_8bit_goes_as_headers_plus_body(body: bytes) -> None:
    original = ASCII.replace(b"Which CRM do you use?\r\n", body)
    _, msg = _notice(original)
    _text, headers, rest = msg.iter_parts()
    assert headers.get_content_type() == "text/rfc822-headers"
    assert "Subject: CRMs" in headers.get_content()
    assert rest.get_content_type() == "application/octet-stream"
    assert rest.get_content() == body
    for part in msg.walk():
        assert part.get_content_type() != "message/rfc822"


def test_mail_for_the_owners_is_attached_the_same_way() -> None:
    data = notices.to_owners(INFO, "mod@council.gov.uk", UTF8, "dan@x")
    msg = email.message_from_bytes(data, policy=email.policy.default)
    attached = list(msg.iter_parts())[1]  # type: ignore[attr-defined]
    assert attached.get_content_type() == "message/rfc822"
    assert attached["Content-Transfer-Encoding"] == "8bit" and UTF8 in data


def test_every_corpus_message_makes_a_well_formed_notice(corpus: Path) -> None:
    """Real mail: whichever form it takes, the notice parses and says what it holds."""
    files = sorted(p for p in corpus.rglob("*.eml"))[:200]
    if not files:
        pytest.skip("no .eml files in the corpus")
    for path in files:
        _, msg = _notice(path.read_bytes())
        kinds = [p.get_content_type() for p in msg.iter_parts()]
        assert kinds in (["text/plain", "message/rfc822"],
                         ["text/plain", "text/rfc822-headers", "application/octet-stream"]), path
        attached = list(msg.iter_parts())[1]
        if attached.get_content_type() == "message/rfc822":
            assert attached["Content-Transfer-Encoding"] in ("7bit", "8bit"), path


def _general(info: ListInfo, to: str, held_id: int, token: str, sender: str, subject: str,
             reason: str, original: bytes, policy: str = "") -> bytes:
    """The held notice built the general way (EmailMessage), which the direct one must equal."""
    evidence = f"{policy}\n\n" if policy else ""
    body = (f"A post to {info.post_address} is held for review (queue item {held_id}).\n\n"
            f"From:    {sender}\nSubject: {subject}\nReason:  {reason}\n\n{evidence}"
            + notices.how_to_act(held_id) + notices.on_the_web(info, held_id)
            + "\nThe post is attached.\n")
    msg = notices._base(info, to, f"[{info.name}] held post {held_id}: {subject}"[:200], body,
                        auto="auto-generated", from_addr=info.address(notices.Kind.OWNER),
                        reply_to=info.address(notices.Kind.CONFIRM, token))
    return notices._with_attachment(msg, original, f"held-{held_id}.eml")


def _normalised(data: bytes) -> bytes:
    """Without what differs from one notice to the next: Date, Message-ID and boundary."""
    boundary = re.search(rb'boundary="([^"]+)"', data)
    if boundary is not None:
        data = data.replace(boundary.group(1), b"BOUNDARY")
    return re.sub(rb"(?m)^(Date|Message-ID): .*\r\n", rb"\1: X\r\n", data)


ODD = [  # (list name, moderator, sender, subject, reason, policy)
    ("demo", "mod@council.gov.uk", "dan@x", "CRMs", "not a member", ""),
    ("demo", "mod@council.gov.uk", "dan@x", "Caf\u00e9 CRMs", "not a member", ""),
    ("demo", "Mod <mod@council.gov.uk>", "d\u00e1n@x", "CRMs", "not a member", ""),
    ("demo", "mod@council.gov.uk", "dan@x", "a subject long enough to be folded " * 3, "r", ""),
    ("demo", "mod@council.gov.uk", "dan@x", "=?utf-8?q?Caf=C3=A9?=", "not a member", ""),
    ("demo", "mod@council.gov.uk", "dan@x", "two  spaces\tand a tab", "r", ""),
    ("demo", "mod@council.gov.uk", "dan@x", "(comment) \"quoted\" ; : \\", "r", ""),
    ("demo", "\"Mod, Chief\" <mod@council.gov.uk>", "dan@x", "CRMs", "r", ""),
    ("demo.v2", "mod@council.gov.uk", "dan@x", "CRMs", "r", ""),
    ("demo", "mod@council.gov.uk", "dan@x", "CRMs", "r", "Policy text " + "x" * 90),
    ("demo", "mod@council.gov.uk", "dan@x", "CRMs", "r\x0cform feed", ""),
    ("demo", "mod@council.gov.uk", "dan@x", " leading and trailing ", "r", ""),
    ("demo", "member000001@council1.example", "offer1@spam1.example", "Cheap offer 1",
     "offer1@spam1.example is not a member of demo; a moderator will look at it", ""),
    ("demo", "mod@council.gov.uk", "dan@x", "Caf\u00e9", "r " * 60, "P\u00f3licy " * 30),
]
TOKEN = "0123456789abcdef" * 2  # as long as links.held_token's


@pytest.mark.parametrize("case", ODD)
@pytest.mark.parametrize("original", [ASCII, UTF8, ASCII.replace(b"Which", b"x" * 1200)])
def test_the_held_notice_is_the_same_as_the_email_package_would_write(
        case: tuple[str, ...], original: bytes) -> None:
    name, to, sender, subject, reason, policy = case
    info = ListInfo(name, "lists.example.org", "Demo list", "https://lists.example.org")
    args = (info, to, 7, TOKEN, sender, subject, reason, original)
    assert _normalised(notices.held_for_moderators(*args, policy=policy)) == _normalised(
        _general(*args, policy=policy))


def test_corpus_held_notices_are_the_same_as_the_email_package_would_write(
        corpus: Path) -> None:
    files = sorted(p for p in corpus.rglob("*.eml"))[:200]
    if not files:
        pytest.skip("no .eml files in the corpus")
    for path in files:
        raw = path.read_bytes()
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        subject, sender = str(parsed["Subject"] or ""), str(parsed["From"] or "")
        args = (INFO, "mod@council.gov.uk", 12, "tok", sender, subject, "not a member", raw)
        assert _normalised(notices.held_for_moderators(*args)) == _normalised(
            _general(*args)), path


BODIES = ["short\n", "no line end", "", "Caf\u00e9\n", "x" * 90 + "\n", "\u00e9" * 90 + "\n",
          ("a line of text\n" * 12) + "y" * 100 + "\n", ("\u00e9t\u00e9 " * 30 + "\n") * 12,
          "form\x0cfeed\n", "tab\there\n"]


@pytest.mark.parametrize("case", ODD)
@pytest.mark.parametrize("body", BODIES)
def test_plain_notices_are_the_same_as_the_email_package_would_write(
        case: tuple[str, ...], body: str) -> None:
    """The sender's held and rejected notices are written directly when they can be."""
    name, to, _sender, subject, reason, _policy = case
    info = ListInfo(name, "lists.example.org", "Demo list", "https://lists.example.org")
    args = (info, to, subject, body + reason)
    direct = notices._notice_bytes(*args, reply_to="r@x")
    general = notices._base(*args, reply_to="r@x").as_bytes()
    assert _normalised(direct) == _normalised(general)
    again = email.message_from_bytes(direct, policy=email.policy.default)
    assert isinstance(again, EmailMessage) and again.get_content().replace("\r\n", "\n") == (
        (body + reason).rstrip("\n") + "\n")
