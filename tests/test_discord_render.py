"""What a relayed post looks like in Discord (listserv.discord_render): webhook names within
Discord's rules, thread titles, quote collapsing on the discourse answer key, splitting at
2000 characters, attachments with archive links on CPython's MIME test mail."""

from __future__ import annotations

from email.message import EmailMessage
from pathlib import Path

import pytest

from listserv import links
from listserv.decorate import Author
from listserv.discord_render import (
    MAX_CONTENT,
    MAX_NAME,
    MAX_PARTS,
    MAX_TITLE,
    PostSource,
    capped,
    collapse_quotes,
    post_text,
    render_post,
    split_message,
    thread_title,
    webhook_name,
)
from listserv.mailparts import attachments

BASE = "https://lists.example.org"


def source(raw: bytes, *, author: Author | None = None, subject: str = "Hello") -> PostSource:
    return PostSource(list_name="demo", list_tag="[demo]", web_base_url=BASE, message_pk=42,
                      thread_id=7, thread_subject=subject, raw=raw,
                      author=author or Author("ann@council.gov.uk", "Ann"))


def plain(body: str) -> bytes:
    m = EmailMessage()
    m["From"] = "ann@council.gov.uk"
    m["Subject"] = "Hello"
    m.set_content(body)
    return m.as_bytes()


@pytest.mark.parametrize(("author", "want"), [
    (Author("jane@acme.example", "Jane Doe", "Acme Ltd", True), "Jane Doe (Acme Ltd, vendor)"),
    (Author("jane@acme.example", "Jane Doe", "", True), "Jane Doe (vendor)"),
    (Author("ann@council.gov.uk", "Ann Smith", "Council", False), "Ann Smith"),
    (Author("ann@council.gov.uk"), "ann"),  # no name: the address's local part
    (Author("x@y", "Ann\r\nBcc: evil@example.org\x00"), "Ann Bcc: evil@example.org"),
    (Author("x@y", "Discord Fan"), "D-iscord Fan"),
    (Author("x@y", "CLYDE"), "C-LYDE"),
    (Author("x@y", "Ms DISCORDANT (Clydebank, vendor)"), "Ms D-ISCORDANT (C-lydebank, vendor)"),
    (Author("x@y", "Acme", "Discord Ltd", True), "Acme (D-iscord Ltd, vendor)"),
    (Author("everyone@y"), "everyone (list)"),
    (Author("x@y", "here"), "here (list)"),
    (Author("x@y", "a```b"), "a'''b"),
    (Author("@y", "   "), "List member"),
])
def test_webhook_name(author: Author, want: str) -> None:
    assert webhook_name(author) == want


def test_a_long_name_is_cut_but_keeps_the_vendor_mark() -> None:
    name = webhook_name(Author("x@y", "Jane " * 30, "Acme Learning Solutions Ltd", True))
    assert len(name) <= MAX_NAME
    assert name.endswith("… (Acme Learning Solutions Ltd, vendor)")
    very = webhook_name(Author("x@y", "J" * 100, "Organisation " * 10, True))
    assert len(very) <= MAX_NAME and very.startswith("J") and very.endswith("…)")
    assert len(webhook_name(Author("x@y", "J" * 200))) == MAX_NAME


@pytest.mark.parametrize(("subject", "want"), [
    ("Which LMS do you use?", "Which LMS do you use?"),
    ("Re: [demo] Which LMS?", "Which LMS?"),
    ("[demo] Re: AW: Fwd: Which LMS?", "Which LMS?"),
    ("RE[2]: [DEMO] x", "x"),
    ("Report: numbers", "Report: numbers"),  # "Re" + "port" is not a marker
    ("[other] Re: x", "[other] Re: x"),  # another list's tag is part of the subject
    ("Re:", "(no subject)"),
    ("", "(no subject)"),
    ("Line\nbreak\x07", "Line break"),
])
def test_thread_title(subject: str, want: str) -> None:
    assert thread_title(subject, "[demo]") == want


def test_thread_title_is_at_most_100_characters() -> None:
    title = thread_title("Re: " + "word " * 40, "[demo]")
    assert len(title) == MAX_TITLE and title.endswith("…")


def test_split_prefers_paragraphs_then_lines_then_words() -> None:
    assert split_message("a" * 10 + "\n\n" + "b" * 5 + "\n" + "c" * 12 + " dd", 12) == [
        "a" * 10, "b" * 5, "c" * 12, "dd"]
    assert split_message("one two\n\nthree", 20) == ["one two\n\nthree"]
    assert split_message("x" * 25, 10) == ["x" * 10, "x" * 10, "x" * 5]
    assert split_message("\n\n  \n") == ["(no text)"]
    # Paragraphs that fit together stay together.
    assert split_message("aaa\n\nbbb\n\nccc", 8) == ["aaa\n\nbbb", "ccc"]


@pytest.mark.parametrize("limit", [50, 200, MAX_CONTENT])
def test_split_keeps_everything_in_order_within_the_limit(corpus: Path, limit: int) -> None:
    root = corpus / "email_reply_trimmer-discourse" / "emails"
    for path in sorted(root.glob("*.txt")):
        text = path.read_text(encoding="utf-8", errors="replace").strip()
        parts = split_message(text, limit)
        assert all(0 < len(p) <= limit for p in parts), path.name
        assert "".join("".join(parts).split()) == "".join(text.split()), path.name


def test_collapse_quotes() -> None:
    text = "Yes.\n> first quoted line\n> second\n\n> third\nMy answer.\n> short\nEnd."
    collapsed, shortened = collapse_quotes(text)
    assert collapsed == ("Yes.\n> first quoted line second third …\nMy answer.\n> short\nEnd.")
    assert shortened
    assert collapse_quotes("> one line only") == ("> one line only", False)
    long_line = "> " + "x" * 200
    assert collapse_quotes(long_line) == ("> " + "x" * 80 + " …", True)


def test_discourse_replies_keep_the_reply_and_hide_the_quotes(corpus: Path) -> None:
    """For each reply of the answer key: the trimmed reply's lines are relayed, the elided
    part's long lines are not, and a link to the whole post says something was hidden."""
    root = corpus / "email_reply_trimmer-discourse"
    url = links.message_url(BASE, "demo", 42)
    checked = 0
    for path in sorted((root / "emails").glob("*.txt")):
        if path.name.startswith("spam"):
            continue
        text = post_text(source(plain(path.read_text(encoding="utf-8"))))
        trimmed = (root / "trimmed" / path.name).read_text(encoding="utf-8")
        elided = (root / "elided" / path.name).read_text(encoding="utf-8")
        for line in trimmed.splitlines():
            if line.strip() and not line.lstrip().startswith(">"):
                assert line.strip() in text, (path.name, line)
        kept = set(trimmed.splitlines())
        for line in elided.splitlines():
            if len(line.strip()) > 30 and line not in kept and not line.startswith(">"):
                assert line.strip() not in text, (path.name, line)
        if elided.strip():
            assert f"hidden; the whole post: <{url}>" in text, path.name
        checked += 1
    assert checked == 62


def test_attachments_are_listed_with_archive_links(corpus: Path) -> None:
    raw = (corpus / "cpython-test_email" / "msg_04.txt").read_bytes()
    found = attachments(raw)
    assert found, "msg_04 has attachments"
    text = post_text(source(raw))
    for a in found:
        assert f"<{BASE}/lists/demo/messages/42/attachments/{a.number}>" in text
    assert [a.number for a in found] == list(range(1, len(found) + 1))


def test_attachment_numbering_skips_body_text() -> None:
    m = EmailMessage()
    m.set_content("The body.")
    m.add_alternative("<p>The body.</p>", subtype="html")
    m.add_attachment(b"%PDF-1.4 ...", maintype="application", subtype="pdf",
                     filename="minutes.pdf")
    m.add_attachment("a,b\n1,2\n", subtype="csv", filename="figures.csv")
    found = attachments(m.as_bytes())
    assert [(a.number, a.filename, a.content_type) for a in found] == [
        (1, "minutes.pdf", "application/pdf"), (2, "figures.csv", "text/csv")]
    text = post_text(source(m.as_bytes()))
    assert text.startswith("The body.\n\n")
    assert "-# 📎 minutes.pdf · 12 bytes · <https://lists.example.org/lists/demo/messages/42/" \
           "attachments/1>" in text
    assert "hidden" not in text


@pytest.mark.parametrize("folder", ["cpython-test_email", "mime4j", "flanker", "ruby-mail"])
def test_any_corpus_mail_renders_within_discords_limits(corpus: Path, folder: str) -> None:
    paths = [p for p in sorted((corpus / folder).rglob("*")) if p.is_file()
             and p.suffix in (".txt", ".msg", ".eml", "") and p.stat().st_size < 2_000_000]
    assert paths
    for path in paths:
        post = render_post(source(path.read_bytes(), subject=path.name))
        assert post.parts and all(0 < len(p) <= MAX_CONTENT for p in post.parts), path
        assert 0 < len(post.username) <= MAX_NAME and 0 < len(post.thread_title) <= MAX_TITLE
        assert len(post.starter) <= MAX_CONTENT


def test_render_post() -> None:
    post = render_post(source(plain("Hi all,\n\nSee you there.\n\n-- \nAnn\nCouncil\n"),
                              subject="Re: [demo] Breakfast meeting")
                       )
    assert post.thread_title == "Breakfast meeting"
    assert post.username == "Ann"
    assert post.parts == ["Hi all,\n\nSee you there.\n\n-# (quoted text or signature hidden; the "
                          "whole post: <https://lists.example.org/lists/demo/messages/42>)"]
    assert post.starter == ("**Breakfast meeting**\n-# A thread on the demo list: "
                            "<https://lists.example.org/lists/demo/threads/7>")


def test_heading_lines_stay_text() -> None:
    text = post_text(source(plain("# Agenda\n-# small\n## Items\nA # in the middle.\n")))
    assert text == "\\# Agenda\n\\-# small\n\\## Items\nA # in the middle."


def test_a_huge_post_is_capped_with_a_link_to_the_rest() -> None:
    body = "\n\n".join(f"Line {n} " + "z" * 1500 for n in range(40))
    post = render_post(source(plain(body)))
    assert len(post.parts) == MAX_PARTS and all(len(p) <= MAX_CONTENT for p in post.parts)
    assert post.parts[0].startswith("Line 0 ") and post.parts[-2].startswith(f"Line {MAX_PARTS - 2} ")
    assert post.parts[-1].endswith("the post goes on in the archive: "
                                   "<https://lists.example.org/lists/demo/messages/42>)")
    assert capped(["a", "b"], "u", 2) == ["a", "b"]
