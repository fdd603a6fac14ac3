"""A post's parts (listserv/mailparts.py): the body shown, attachments numbered and made safe."""

from __future__ import annotations

from pathlib import Path

import pytest

from listserv import mailparts
from listserv.mailparts import content_disposition, safe_filename, served_type

HOSTILE = Path(__file__).parent / "data" / "hostile"


def test_hostile_attachments_are_numbered_named_and_typed_safely() -> None:
    raw = (HOSTILE / "06-attachments.eml").read_bytes()
    assert mailparts.body(raw).text.strip() == "Files attached."
    atts = mailparts.attachments(raw)
    assert [a.number for a in atts] == [1, 2, 3, 4, 5, 6]
    names = [a.filename for a in atts]
    assert names[0] == "page.html"
    assert names[1] == "picture.svg"
    assert "/" not in "".join(names) and "\\" not in "".join(names)
    assert all(ch.isprintable() for n in names for ch in n)
    assert "\u202e" not in names[3]  # the right-to-left override that hides ".exe"
    assert names[4] == "evil.js"
    assert names[5] == "Report 2026.pdf"
    served = [served_type(a) for a in atts]
    assert served == ["application/octet-stream", "application/octet-stream", "text/plain",
                      "application/octet-stream", "application/octet-stream", "application/pdf"]
    att, data = mailparts.attachment_bytes(raw, 6) or (None, b"")
    assert att is not None and data.startswith(b"%PDF-1.4")
    assert mailparts.attachment_bytes(raw, 7) is None
    assert mailparts.attachment_bytes(raw, 0) is None
    # A charset parameter that tries to break out of the header is not passed on.
    assert served_type(atts[2], mailparts.part_charset(raw, 3)) == "text/plain"


@pytest.mark.parametrize("name,want", [
    ("report.pdf", "report.pdf"),
    ("../../etc/passwd", "passwd"),
    ("C:\\Users\\x\\evil.bat", "evil.bat"),
    ('a"b;c.txt', "a_b;c.txt"),
    ("line\r\nbreak.txt", "line break.txt"),
    ("...hidden", "hidden"),
    ("", "attachment-3"),
    ("x" * 300 + ".pdf", "x" * 116 + ".pdf"),
    ("Straße.doc", "Straße.doc"),
])
def test_safe_filename(name: str, want: str) -> None:
    assert safe_filename(name, 3) == want


def test_content_disposition_has_an_ascii_fallback_and_utf8_name() -> None:
    assert content_disposition("Straße 1.pdf") == (
        "attachment; filename=\"Stra_e 1.pdf\"; filename*=UTF-8''Stra%C3%9Fe%201.pdf")
    assert content_disposition('a";b') == "attachment; filename=\"a_;b\"; filename*=UTF-8''a%22%3Bb"


def test_html_alternative_is_body_not_attachment_and_plain_wins() -> None:
    raw = (b"Content-Type: multipart/alternative; boundary=x\n\n--x\nContent-Type: text/plain\n\n"
           b"plain\n--x\nContent-Type: text/html\n\n<p>html</p>\n--x--\n")
    assert mailparts.attachments(raw) == []
    assert mailparts.body(raw) == mailparts.Body("plain", False)


def test_enclosed_message_is_one_attachment(corpus: Path) -> None:
    raw = (corpus / "ietf-mailarchive" / "attachment_message_rfc822.mail").read_bytes()
    atts = mailparts.attachments(raw)
    assert [a.content_type for a in atts] == ["message/rfc822"]
    got = mailparts.attachment_bytes(raw, 1)
    assert got is not None and b"Subject" in got[1]


def test_corpus_mail_never_breaks_the_walk(corpus: Path) -> None:
    for path in sorted((corpus / "flanker").glob("*.eml")):
        raw = path.read_bytes()
        mailparts.body(raw)
        for att in mailparts.attachments(raw):
            assert att.filename and served_type(att)
