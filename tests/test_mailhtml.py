"""Mail bodies as HTML (listserv/mailhtml.py): hostile HTML made inert, plain text readable."""

from __future__ import annotations

from pathlib import Path

import pytest

from listserv import mailparts
from listserv.mailhtml import linkify, plain_to_html, sanitise_html
from tests.inert import problems

HOSTILE = Path(__file__).parent / "data" / "hostile"
OWN = "/lists/demo/messages/5/attachments/1"


def _html_bodies() -> list[Path]:
    return sorted(p for p in HOSTILE.glob("*.eml") if mailparts.body(p.read_bytes()).is_html)


@pytest.mark.parametrize("path", _html_bodies(), ids=lambda p: p.name)
def test_hostile_html_is_inert(path: Path) -> None:
    body = mailparts.body(path.read_bytes())
    out = sanitise_html(body.text, lambda cid: OWN)
    assert problems(str(out)) == []
    lowered = str(out).lower()
    for needle in ("<script", "javascript:", "vbscript:", "data:", "onerror", "onload", "style=",
                   "<iframe", "<form", "<base", "<meta", "evil.example/x.css", "srcset", "<svg",
                   "tracker.example/pixel.gif\"", "class=\"skip-link", "id=\"main\""):
        if needle == "tracker.example/pixel.gif\"":
            # only as a link the reader may click, never as an image the browser fetches
            assert "<img src=\"https://tracker" not in lowered
            continue
        assert needle not in lowered, needle


def test_the_ietf_archives_unsafe_sample_is_inert(corpus: Path) -> None:
    raw = (corpus / "ietf-mailarchive" / "mail_html_unsafe.1").read_bytes()
    out = str(sanitise_html(mailparts.body(raw).text))
    assert problems(out) == []
    assert "Hello World" not in out and "background-color" not in out
    assert 'class="remote-image"' in out and "livefilestore.com" in out  # click to load


def test_markup_cannot_leave_its_box() -> None:
    out = str(sanitise_html("<div>x</article></main></body></html><h1>y"))
    assert out.startswith('<div class="mail-html">') and out.endswith("</div>")
    assert out.count("<div") == out.count("</div>")
    assert "</main>" not in out and "</article>" not in out


def test_links_get_rel_and_remote_images_become_links() -> None:
    out = str(sanitise_html('<a href="https://ok.example/">ok</a>'
                            '<img src="https://img.example/a.png" alt="A chart">'))
    assert 'href="https://ok.example/" rel="noopener noreferrer nofollow"' in out
    assert "<img" not in out
    assert ('<a class="remote-image" href="https://img.example/a.png" '
            'rel="noopener noreferrer nofollow">Load image “A chart” from img.example</a>') in out


def test_inline_images_point_at_our_attachment_urls() -> None:
    out = str(sanitise_html('<img src="cid:logo@x" alt="Logo"><img src="cid:unknown">',
                            lambda cid: OWN if cid == "logo@x" else None))
    assert f'<img src="{OWN}" alt="Logo">' in out
    assert out.count("<img") == 1


def test_blockquotes_fold() -> None:
    out = str(sanitise_html("<p>Yes.</p><blockquote><p>Is it?</p></blockquote>"))
    assert ('<details class="quote"><summary>Quoted text</summary><blockquote><p>Is it?</p>'
            '</blockquote></details>') in out


@pytest.mark.parametrize("text,html", [
    ("a <b> & c", "a &lt;b&gt; &amp; c"),
    ("see https://example.org/x.", 'see <a href="https://example.org/x" '
     'rel="noopener noreferrer nofollow">https://example.org/x</a>.'),
    ("(https://en.wikipedia.org/wiki/Foo_(bar))", '(<a href="https://en.wikipedia.org/wiki/Foo_(bar)"'
     ' rel="noopener noreferrer nofollow">https://en.wikipedia.org/wiki/Foo_(bar)</a>)'),
    ('https://x.example/"><script>', '<a href="https://x.example/" rel="noopener noreferrer '
     'nofollow">https://x.example/</a>&#34;&gt;&lt;script&gt;'),
    ("javascript:alert(1) data:text/html,x", "javascript:alert(1) data:text/html,x"),
    ("<https://a.example/p?q=1&r=2>", '&lt;<a href="https://a.example/p?q=1&amp;r=2" '
     'rel="noopener noreferrer nofollow">https://a.example/p?q=1&amp;r=2</a>&gt;'),
])
def test_linkify(text: str, html: str) -> None:
    assert str(linkify(text)) == html


def test_plain_text_keeps_lines_and_folds_quotes_signatures_and_footers() -> None:
    text = ("Yes, we do.\nSecond line.\n\nOn Mon, 3 Jan 2011, Ann <ann@example.org> wrote:\n"
            "> Do you?\n>\n> Really?\n\nMore below.\n-- \nBob\n")
    out = str(plain_to_html(text))
    assert out.startswith('<div class="mail-text">Yes, we do.\nSecond line.</div>')
    assert ('<details class="quote"><summary>Quoted text (4 lines)</summary>'
            '<div class="mail-text">On Mon, 3 Jan 2011, Ann &lt;ann@example.org&gt; wrote:\n'
            '&gt; Do you?\n&gt;\n&gt; Really?</div></details>') in out
    assert '<div class="mail-text">More below.</div>' in out
    assert '<details class="signature"><summary>Signature (2 lines)</summary>' in out
    footer = "Hi.\n_______________________________________________\nfedora-devel-list mailing list\n"
    assert '<details class="footer"><summary>List footer' in str(plain_to_html(footer))


def test_plain_text_hostile_sample_is_inert() -> None:
    raw = (HOSTILE / "05-plain.eml").read_bytes()
    out = str(plain_to_html(mailparts.body(raw).text))
    assert problems(out) == []
    assert "&lt;script&gt;alert(&#39;plain&#39;)&lt;/script&gt;" in out


def test_mail_headings_sit_below_the_pages_own() -> None:
    out = str(sanitise_html("<h1>Big</h1><h2>Less</h2><h6>Least</h6>"))
    assert "<h3>Big</h3><h4>Less</h4><h6>Least</h6>" in out
