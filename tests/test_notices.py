"""Notices that carry a post (issue 7.10): the post is attached as message/rfc822 in 7bit or
8bit with its bytes untouched (RFC 2046 5.2.1 forbids base64 there), or, when its lines break
the 7bit/8bit rules, as text/rfc822-headers plus its body."""

from __future__ import annotations

import email
import email.policy
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
