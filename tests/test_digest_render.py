"""The pure part of weekly digests: the content model, summaries and the three renderers."""

from __future__ import annotations

import email
import email.policy
import email.utils
import re
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

import pytest

from digests.model import Digest, DigestPost, DigestThread, Participant, UpcomingItem, summarise
from digests.render import (
    MEMBER_EMAIL,
    UNSUBSCRIBE_URL,
    MemberLinks,
    format_day,
    personalise,
    post_text,
    render,
    safe_url,
)
from listserv.message import first_text

JANE = Participant("Jane Doe", "jane@derby.gov.example", "Derby City Council")
BOB = Participant("Bob Smith", "bob@acme.example", "Acme Ltd", vendor=True)
ELOISE = Participant("Éloïse Martin", "eloise@ripley.gov.example")
ANON = Participant("", "mallory@example.net")

T0 = datetime(2026, 11, 16, 0, 0, tzinfo=UTC)  # midnight starting Monday, London time (GMT)
HYPHENS30 = "-" * 30


def _raw(author: Participant, subject: str, body: str, when: datetime, mid: str,
         html: str | None = None, in_reply_to: str | None = None) -> bytes:
    msg = EmailMessage()
    msg["From"] = f"{author.name} <{author.email}>" if author.name else author.email
    msg["To"] = "demo@lists.example.org"
    msg["Subject"] = subject
    msg["Date"] = email.utils.format_datetime(when)
    msg["Message-ID"] = mid
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
    if html is None:
        msg.set_content(body)
    else:
        msg.set_content(html, subtype="html")
    return msg.as_bytes()


def _post(author: Participant, subject: str, body: str, hours: float, n: int,
          html: str | None = None) -> DigestPost:
    when = T0 + timedelta(hours=9 + hours)
    mid = f"<post{n}@lists.example.org>"
    return DigestPost(mid, subject, author, when, _raw(author, subject, body, when, mid, html))


LMS_1 = _post(JANE, "Which LMS do you use?", "We are moving off our old LMS. Moodle or Totara?\n\nJane", 1, 1)
LMS_2 = _post(BOB, "Re: Which LMS do you use?",
              "Happy to help – our café-style onboarding works well.\n"
              f"Summary:\n{HYPHENS30}\nPricing is public on our site.", 5, 2)
LMS_3 = _post(ELOISE, "Re: Which LMS do you use?", "Ripley uses Moodle – très bien.", 30, 3)
XSS_1 = _post(ANON, 'Try <script>alert(1)</script> "quotes" & ampersands',
              'Look: <script>alert(1)</script> and "quotes" & ampersands.', 10, 4)
HTML_1 = _post(JANE, "Breakfast meeting in Ripley",
               "", 48, 5, html="<html><body><p>A free <b>breakfast</b> meeting.</p>"
                               "<p>Book a place &amp; bring a friend.</p></body></html>")

LMS = DigestThread("Which LMS do you use?", "https://lists.example.org/demo/t/1", (JANE, BOB, ELOISE), 3,
                   True, summarise("We are moving off our old LMS. Moodle or Totara?"),
                   (LMS_1, LMS_2, LMS_3))
XSS = DigestThread('Try <script>alert(1)</script> "quotes" & ampersands', "javascript:alert(1)", (ANON,),
                   1, False, 'Look: <script>alert(1)</script> and "quotes" & ampersands.', (XSS_1,))
BREAKFAST = DigestThread("Breakfast meeting in Ripley", "https://lists.example.org/demo/t/3", (JANE,), 1,
                         True, "A free breakfast meeting. Book a place & bring a friend.", (HTML_1,))

DIGEST = Digest(
    list_name="demo", list_address="demo@lists.example.org",
    description="Local-government digital and tools community",
    period_start=T0, period_end=T0 + timedelta(days=7), volume=3, number=12,
    threads=(BREAKFAST, XSS, LMS),
    upcoming=(UpcomingItem("Social media café", datetime(2026, 12, 3, 9, 30, tzinfo=UTC),
                           "https://events.example.org/cafe", "Ripley library, 9.30 to 12.30"),),
    new_members=4, archive_url="https://lists.example.org/demo/",
)
POSTS = [LMS_1, LMS_2, LMS_3, BREAKFAST.posts[0], XSS_1]  # most active thread first

ALICE = MemberLinks("alice@example.org", "https://lists.example.org/u/ALICE-TOKEN?l=demo&x=1",
                    "https://lists.example.org/d/ALICE-TOKEN")
CAROL = MemberLinks("carol@example.org", "https://lists.example.org/u/CAROL-TOKEN",
                    "https://lists.example.org/d/CAROL-TOKEN")


def _headers() -> dict[str, str]:
    return {
        "From": "demo Digest <demo@lists.example.org>",
        "List-Id": "demo <demo.lists.example.org>",
        "List-Unsubscribe": f"<{UNSUBSCRIBE_URL}>, <mailto:demo-leave@lists.example.org>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        "List-Post": "<mailto:demo@lists.example.org>",
        "List-Help": "<mailto:demo-request@lists.example.org?subject=help>",
        "List-Archive": "<https://lists.example.org/demo/>",
        "Precedence": "list",
        "Message-ID": "<digest-3-12@lists.example.org>",
        "Date": "Mon, 23 Nov 2026 07:00:00 +0000",
    }


def _parse(data: bytes) -> EmailMessage:
    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


# -- model --------------------------------------------------------------------------------------


def test_labels_mark_vendor_staff() -> None:
    assert BOB.label() == "Bob Smith (Acme Ltd, vendor)"
    assert JANE.label() == "Jane Doe"
    assert ANON.label() == "mallory"
    assert Participant("Vic", "v@x.example", vendor=True).label() == "Vic (vendor)"


def test_active_threads_most_posts_then_latest_then_subject() -> None:
    assert [t.subject for t in DIGEST.active_threads] == [LMS.subject, BREAKFAST.subject, XSS.subject]
    a = DigestThread("b", "", (), 2, False, "", (_post(JANE, "b", "x", 1, 10),))
    b = DigestThread("a", "", (), 2, False, "", (_post(JANE, "a", "x", 1, 11),))
    c = DigestThread("c", "", (), 2, False, "", (_post(JANE, "c", "x", 9, 12),))
    d = Digest("l", "l@x", "", T0, T0, 1, 1, (a, b, c), (), 0, "")
    assert [t.subject for t in d.active_threads] == ["c", "a", "b"]


def test_new_threads_in_order_of_first_post() -> None:
    assert [t.subject for t in DIGEST.new_threads] == [LMS.subject, BREAKFAST.subject]


def test_summarise_cuts_at_a_word_boundary() -> None:
    text = " ".join(f"word{i}" for i in range(100))
    s = summarise(text)
    assert s.endswith("…")
    assert s[:-1].split() == [f"word{i}" for i in range(60)]
    assert summarise("Short   and\n\n sweet.") == "Short and sweet."
    assert not summarise("Short and sweet.").endswith("…")
    assert summarise("one two three four", words=2) == "one two…"


def test_summarise_drops_the_list_footer() -> None:
    text = ("Is anyone using Totara?\n\n_______________________________________________\n"
            "demo mailing list\nhttps://lists.example.org/demo\n")
    assert summarise(text) == "Is anyone using Totara?"


# -- helpers ------------------------------------------------------------------------------------


def test_post_text_reads_plain_and_html_only_posts() -> None:
    assert post_text(LMS_2.raw).startswith("Happy to help – our café-style onboarding")
    text = post_text(HTML_1.raw)
    assert "A free breakfast meeting." in text
    assert "Book a place & bring a friend." in text
    assert "<p>" not in text


def test_post_text_is_the_text_the_policy_reads() -> None:
    # One HTML-to-text for the whole project: the digest encloses the words the policy judged.
    for post in (LMS_2, HTML_1):
        assert post_text(post.raw) == first_text(post.raw).strip("\n").rstrip()


def test_post_text_falls_back_when_the_charset_lies() -> None:
    raw = (b"Subject: x\nContent-Type: text/plain; charset=us-ascii\nContent-Transfer-Encoding: 8bit\n\n"
           + "caf\u00e9\n".encode())
    assert post_text(raw) == "café"


def test_safe_url_allows_only_http() -> None:
    assert safe_url("https://a.example/x?y=1") == "https://a.example/x?y=1"
    assert safe_url("javascript:alert(1)") == "#"
    assert safe_url(" JaVaScRiPt:alert(1)") == "#"
    assert safe_url("data:text/html,hi") == "#"
    assert safe_url("java\tscript:alert(1)") == "#"
    assert safe_url("") == "#"


def test_dates_are_shown_in_the_list_time_zone() -> None:
    assert format_day(datetime(2026, 11, 23, 12, tzinfo=UTC), "Europe/London") == "Monday 23 November 2026"
    # 23:30 UTC on 30 June is already 1 July in London (BST).
    assert format_day(datetime(2026, 6, 30, 23, 30, tzinfo=UTC), "Europe/London") == "Wednesday 1 July 2026"


# -- plain (RFC 1153) ---------------------------------------------------------------------------


def _plain_body(links: MemberLinks = ALICE) -> tuple[EmailMessage, str]:
    msg = _parse(personalise(render(DIGEST, "plain"), links, _headers()))
    assert msg.get_content_type() == "text/plain"
    return msg, msg.get_content()


def test_plain_follows_rfc_1153() -> None:
    msg, body = _plain_body()
    assert msg["Subject"] == "demo Digest, Vol 3, Issue 12"
    lines = body.split("\n")
    assert re.match(r"^demo Digest +Monday 23 November 2026 +Volume 3 : Issue 12$", lines[0])
    # The preamble ends with 70 hyphens and a blank line, after "Today's Topics".
    rule = lines.index("-" * 70)
    assert lines[rule + 1] == ""
    assert lines.count("-" * 70) == 1
    assert "Today's Topics:" in lines[:rule]
    # Every enclosed message, and the footer block after them, ends with blank / 30 hyphens / blank.
    seps = [i for i, line in enumerate(lines) if line == HYPHENS30]
    assert len(seps) == len(POSTS) + 1
    for i in seps:
        assert lines[i - 1] == "" and lines[i + 1] == ""
    # The body line of exactly 30 hyphens was byte-stuffed, so it is not a separator.
    assert f"- {HYPHENS30}" in lines
    # Trailer, right after the last separator's blank line.
    assert lines[seps[-1] + 2] == "End of demo Digest V3 Issue 12"
    assert lines[seps[-1] + 3] == "*" * len("End of demo Digest V3 Issue 12")


def test_plain_encloses_posts_in_toc_order_with_rfc_1153_headers() -> None:
    _msg, body = _plain_body()
    rule = body.index("-" * 70)
    toc = body[body.index("Today's Topics:"):rule]
    assert [line.split(". ", 1)[1] for line in toc.splitlines()[2:] if line.strip()] == [
        f"{p.subject} ({p.author.label()})" for p in POSTS]
    chunks = body[rule:].split(f"\n\n{HYPHENS30}\n\n")
    enclosed = [c.strip("-\n") for c in chunks[: len(POSTS)]]
    for chunk, post in zip(enclosed, POSTS, strict=True):
        head, _, text = chunk.partition("\n\n")
        names = [line.split(":", 1)[0] for line in head.splitlines()]
        assert names == ["Date", "From", "Subject", "Message-ID"]
        assert f"Subject: {post.subject}" in head
        assert f"Message-ID: {post.message_id}" in head
        assert text.strip()
    assert "From: Bob Smith (Acme Ltd, vendor) <bob@acme.example>" in enclosed[1]
    assert "Ripley uses Moodle – très bien." in enclosed[2]
    assert "Book a place & bring a friend." in enclosed[3]


def test_plain_preamble_summarises_the_week() -> None:
    _msg, body = _plain_body()
    preamble = body[: body.index("Today's Topics:")]
    assert preamble.index(LMS.subject) < preamble.index(BREAKFAST.subject) < preamble.index("Try <script>")
    assert "With Jane Doe, Bob Smith (Acme Ltd, vendor), Éloïse Martin" in preamble
    assert "3 new posts" in preamble
    assert "New threads" in preamble and "Coming up" in preamble
    assert "Thursday 3 December 2026, 09:30: Social media café" in preamble
    assert "4 new members this week." in preamble
    assert "https://lists.example.org/demo/" in preamble
    assert "Monday 16 November 2026 to Sunday 22 November 2026" in " ".join(preamble.split())


def test_coming_up_says_so_when_nothing_is_scheduled() -> None:
    empty = Digest("demo", "demo@lists.example.org", "", T0, T0 + timedelta(days=7), 1, 1, (LMS,), (), 1, "")
    text = render(empty, "plain").text
    assert "Nothing is scheduled yet." in text
    assert "1 new member this week." in text


# -- MIME (RFC 2046 multipart/digest) -----------------------------------------------------------


def test_mime_digest_parses_back_into_the_original_posts() -> None:
    msg = _parse(personalise(render(DIGEST, "mime"), ALICE, _headers()))
    assert msg.get_content_type() == "multipart/mixed"
    parts = list(msg.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "multipart/digest", "text/plain"]
    toc = parts[0].get_content()
    assert "Today's Topics:" in toc and "Bob Smith (Acme Ltd, vendor)" in toc
    enclosed = list(parts[1].iter_parts())
    assert [p.get_content_type() for p in enclosed] == ["message/rfc822"] * len(POSTS)
    for part, post in zip(enclosed, POSTS, strict=True):
        inner = part.get_content()
        original = _parse(post.raw)
        assert inner["Message-ID"] == post.message_id
        assert inner["Subject"] == original["Subject"] == post.subject
        body, orig_body = inner.get_body(("plain", "html")), original.get_body(("plain", "html"))
        assert body is not None and orig_body is not None
        assert body.get_content() == orig_body.get_content()
    footer = parts[2].get_content()
    assert ALICE.unsubscribe_url in footer and ALICE.delivery_url in footer


def test_mime_digest_keeps_raw_posts_byte_for_byte() -> None:
    data = personalise(render(DIGEST, "mime"), ALICE, _headers())
    for post in POSTS:
        assert post.raw.replace(b"\r\n", b"\n") in data


# -- HTML ---------------------------------------------------------------------------------------


def _html(links: MemberLinks = ALICE) -> tuple[EmailMessage, str, str]:
    msg = _parse(personalise(render(DIGEST, "html"), links, _headers()))
    assert msg.get_content_type() == "multipart/alternative"
    plain, markup = list(msg.iter_parts())
    assert plain.get_content_type() == "text/plain"
    assert markup.get_content_type() == "text/html"
    return msg, plain.get_content(), markup.get_content()


def test_html_has_no_external_resources() -> None:
    _msg, _plain, markup = _html()
    assert not re.search(r"""src\s*=\s*["']?\s*(https?:)?//""", markup, re.I)
    assert not re.search(r"<link\b", markup, re.I)
    assert not re.search(r"url\(\s*['\"]?\s*(https?:)?//", markup, re.I)
    assert "@import" not in markup
    assert not re.search(r"<(img|iframe|object|embed|video|audio|script)\b", markup, re.I)


def test_html_escapes_everything_from_posts() -> None:
    _msg, _plain, markup = _html()
    assert "<script>" not in markup
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in markup
    assert "&#34;quotes&#34; &amp; ampersands" in markup
    assert "javascript:" not in markup  # the thread URL was not http(s): replaced by "#"
    assert 'href="#"' in markup


def test_html_content_and_dark_mode() -> None:
    _msg, plain, markup = _html()
    assert '<meta name="color-scheme" content="light dark">' in markup
    assert "@media (prefers-color-scheme: dark)" in markup
    assert "max-width:640px" in markup
    assert f'href="{LMS.url}"' in markup
    assert "vendor &middot; Acme Ltd" in markup
    assert markup.index(LMS.subject) < markup.index(BREAKFAST.subject)
    assert "3 new posts" in markup and "4 new members this week." in markup
    assert "Thursday 3 December 2026, 09:30" in markup
    assert "Monday 16 November 2026 to Sunday 22 November 2026" in markup
    # The text alternative is the same summary as the HTML, not every post in full.
    assert "Today's Topics:" in plain
    assert "End of demo Digest V3 Issue 12" not in plain


def test_html_member_links_are_escaped_and_checked() -> None:
    _msg, _plain, markup = _html()
    assert 'href="https://lists.example.org/u/ALICE-TOKEN?l=demo&amp;x=1"' in markup
    assert 'href="https://lists.example.org/d/ALICE-TOKEN"' in markup
    evil = MemberLinks("eve@example.org", "javascript:alert(1)", "https://x.example/d")
    _m, _p, markup = _html(evil)
    assert "javascript:" not in markup


# -- personalisation ----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["plain", "mime", "html"])
def test_personalise_replaces_every_placeholder(fmt: str) -> None:
    rendered = render(DIGEST, fmt)
    alice = personalise(rendered, ALICE, _headers())
    carol = personalise(rendered, CAROL, _headers())
    for data, links, other in ((alice, ALICE, CAROL), (carol, CAROL, ALICE)):
        assert b"%%" not in data
        assert b"\r" not in data
        msg = _parse(data)
        assert msg["To"] == links.email
        assert msg["List-Unsubscribe"] == f"<{links.unsubscribe_url}>, <mailto:demo-leave@lists.example.org>"
        assert msg["Precedence"] == "list"
        assert msg["Message-ID"] == "<digest-3-12@lists.example.org>"
        assert msg["Subject"] == "demo Digest, Vol 3, Issue 12"
        texts = [p.get_content() for p in msg.walk()
                 if p.get_content_maintype() == "text" and not p.is_multipart()]
        # Where the footer is, it has this member's links, never the other member's.
        joined = "\n".join(texts)
        assert links.delivery_url.replace("&", "&amp;") in joined or links.delivery_url in joined
        assert links.email in joined
        assert other.email not in joined
        assert other.unsubscribe_url.split("?")[0] not in joined
        assert not msg.defects
        for part in msg.walk():
            assert not part.defects
    assert alice != carol


def test_posts_mentioning_a_placeholder_are_not_personalised() -> None:
    post = _post(ANON, "Trick", f"Dear {MEMBER_EMAIL}, confirm at {UNSUBSCRIBE_URL}", 2, 20)
    t = DigestThread("Trick", "https://l.example/t", (ANON,), 1, True, "", (post,))
    d = Digest("demo", "demo@lists.example.org", "", T0, T0 + timedelta(days=7), 1, 1, (t,), (), 0, "")
    body = _parse(personalise(render(d, "plain"), ALICE, {})).get_content()
    assert f"Dear {MEMBER_EMAIL}, confirm at {UNSUBSCRIBE_URL}" in body
    assert f"Dear {ALICE.email}" not in body
    assert f"as {ALICE.email}." in body  # the real footer is personalised


def test_personalise_encodes_non_ascii_headers_and_allows_a_tagged_subject() -> None:
    headers = {"From": "Démo Digest <demo@lists.example.org>",
               "Subject": "[demo] demo Digest, Vol 3, Issue 12"}
    data = personalise(render(DIGEST, "plain"), ALICE, headers)
    head = data.split(b"\n\n", 1)[0]
    assert head.isascii()
    msg = _parse(data)
    assert str(msg["From"]) == "Démo Digest <demo@lists.example.org>"
    assert msg["Subject"] == "[demo] demo Digest, Vol 3, Issue 12"
    assert len(msg.get_all("Subject") or []) == 1


def test_personalise_refuses_header_injection_and_owned_headers() -> None:
    rendered = render(DIGEST, "plain")
    with pytest.raises(ValueError):
        personalise(rendered, MemberLinks("a@x.example\nBcc: all@x.example", "https://u", "https://d"), {})
    with pytest.raises(ValueError):
        personalise(rendered, ALICE, {"To": "someone@example.org"})
    with pytest.raises(ValueError):
        personalise(rendered, ALICE, {"X-Note": "a\r\nBcc: b@x.example"})


def test_long_lines_switch_that_part_to_base64() -> None:
    long_post = _post(JANE, "Long", "word " * 400, 2, 30)  # a 2,000-character paragraph
    t = DigestThread("Long", "https://l.example/t", (JANE,), 1, True, "", (long_post,))
    d = Digest("demo", "demo@lists.example.org", "", T0, T0 + timedelta(days=7), 1, 1, (t,), (), 0, "")
    data = personalise(render(d, "plain"), ALICE, {})
    assert b"Content-Transfer-Encoding: base64" in data
    assert all(len(line) <= 998 for line in data.split(b"\n"))
    body = _parse(data).get_content()
    assert ("word " * 400).strip() in body and ALICE.unsubscribe_url in body


def test_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError):
        render(DIGEST, "pdf")


@pytest.mark.parametrize("fmt", ["plain", "mime"])
def test_a_big_week_encloses_what_fits_and_says_what_is_left_out(fmt: str) -> None:
    budget = len(LMS_1.raw) + len(LMS_2.raw)  # room for the first two posts of the top thread
    msg = _parse(personalise(render(DIGEST, fmt, max_enclosed_bytes=budget), ALICE, _headers()))
    if fmt == "plain":
        body = msg.get_content()
        assert len(re.findall(r"(?m)^-{30}$", body)) == 3  # two posts and the footer
        enclosed = [m.strip("<>") for m in re.findall(r"(?m)^Message-ID: (\S+)$", body)]
    else:
        digest_part = next(p for p in msg.walk() if p.get_content_type() == "multipart/digest")
        enclosed = [str(p.get_payload(0)["Message-ID"]).strip("<>") for p in digest_part.iter_parts()]
        body = next(p for p in msg.walk() if p.get_content_type() == "text/plain").get_content()
    assert len(enclosed) == 2
    assert "3 more posts are not enclosed" in " ".join(body.split())
    # The summary still covers every thread.
    assert "Breakfast meeting in Ripley" in body and "Which LMS do you use?" in body
