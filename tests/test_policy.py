"""The participation policy: real-looking posts from vendor staff, and the pieces it is built of."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from listserv.message import first_text
from listserv.policy import (
    COVERING_LINE_WORDS,
    Case,
    Decision,
    applies,
    classify,
    find_links,
    matches_source,
    parse_sources,
)

DATA = Path(__file__).parent / "data" / "policy"
SOURCES = parse_sources("gov.uk/government/news www.examplecouncil.gov.uk/news")

# The press release posted earlier from gov.uk (quoted_press_release.eml quotes it back).
PRESS_RELEASE = (
    "The government today published new guidance to help councils buy cloud services "
    "safely. The guidance sets out how to assess suppliers, how to plan an exit before "
    "signing a contract, and how to keep records accessible when a service ends. "
    "Councils are encouraged to share their experience through the local digital network."
)

P, L, N = Case.PUBLIC_DOMAIN, Case.POINTER, Case.NEW_CONTENT
EXPECTED: dict[str, Case] = {
    "press_release_forward.eml": P,  # covering line over a forwarded press release with a gov.uk link
    "bare_public_link.eml": P,
    "bare_vendor_link.eml": L,
    "bare_www_link.eml": L,  # "www." without a scheme is still a link
    "link_with_covering_line.eml": L,
    "council_news_covering_line.eml": P,  # <angle-bracketed> link under the council's newsroom
    "vendor_link_plus_opinion.eml": N,
    "public_link_plus_view.eml": N,  # a public link does not make a paragraph of view public
    "public_link_medium_line.eml": L,  # more than a covering line, less than the limit
    "top_posted_pointer.eml": L,  # short reply with a link over a long quote
    "top_posted_long_reply.eml": N,
    "bottom_posted_pointer.eml": L,
    "signature_links_public.eml": P,  # the signature's vendor links are stripped with it
    "signature_links_thanks.eml": N,  # ...so they do not make a "thanks" a pointer
    "html_only_visible_url.eml": P,
    # The link is only anchor text: html_to_text keeps its target, so the policy sees it.
    "html_only_anchor_text.eml": P,
    "multipart_alternative_pointer.eml": L,
    "quoted_press_release.eml": P,  # quotes a text already posted from a public source
    "german_header_pointer.eml": L,
    "french_nbsp_view.eml": N,  # quote header with no-break spaces; 66 words of view
    "short_no_link.eml": N,  # no link: the words are the poster's own
    "lookalike_domain.eml": L,  # gov.uk.evil.example is not gov.uk
    "lookalike_path.eml": L,  # /government/newsletters is not under /government/news
    "outlook_reply_pointer.eml": L,
    "mobile_signature_public.eml": P,
    "forward_not_public.eml": N,  # forwarding a vendor's own mail is new content
    "public_and_vendor_links.eml": L,  # not every link is public
    "list_footer_public.eml": P,  # the footer's list link goes with the footer
}


def _decide(name: str) -> Decision:
    text = first_text((DATA / name).read_bytes())
    return classify(text, public_sources=SOURCES, word_limit=60, known_public_texts=[PRESS_RELEASE])


def test_every_data_file_has_an_expectation() -> None:
    assert sorted(p.name for p in DATA.glob("*.eml")) == sorted(EXPECTED)
    assert len(EXPECTED) >= 22


@pytest.mark.parametrize(("name", "case"), sorted(EXPECTED.items()), ids=sorted(EXPECTED))
def test_posts(name: str, case: Case) -> None:
    decision = _decide(name)
    assert decision.case is case, decision.reason
    assert decision.accepted is (case is not Case.NEW_CONTENT)


def test_evidence_is_json_and_says_why() -> None:
    d = _decide("press_release_forward.eml")
    ev = json.loads(json.dumps(d.evidence()))
    assert ev == {
        "case": "public-domain",
        "own_words": 4,
        "links": ["https://www.gov.uk/government/news/new-guidance-on-buying-cloud-services"],
        "public_links": ["https://www.gov.uk/government/news/new-guidance-on-buying-cloud-services"],
        "quoted_public": True,
        "reason": "public domain: every link points to a public source (gov.uk/government/news) "
                  "and 4 own words",
    }


def test_reasons() -> None:
    assert _decide("link_with_covering_line.eml").reason == "pointer: 24 own words (limit 60) and a link"
    assert _decide("public_link_plus_view.eml").reason == "new guidance or a view: 85 own words (limit 60)"
    assert _decide("short_no_link.eml").reason == "new guidance or a view: no link: own words (3 own words)"
    assert _decide("quoted_press_release.eml").reason == (
        "public domain: quotes a text already posted from a public source and 6 own words")
    assert _decide("forward_not_public.eml").reason == (
        "new guidance or a view: no link: forwards a text not known to be public")


def test_urls_are_not_words_and_quotes_are_not_own_words() -> None:
    d = classify("See https://example.org/a/very/long/path/with/many/parts here.\n\n"
                 "On 1 Apr 2025, A <a@example.org> wrote:\n> one two three four five\n",
                 public_sources=())
    assert d.own_words == 2
    assert d.links == ("https://example.org/a/very/long/path/with/many/parts",)


def test_links_in_a_quoted_reply_do_not_count() -> None:
    d = classify("Thanks!\n\nOn 1 Apr 2025, A <a@example.org> wrote:\n> https://www.gov.uk/government/news/x\n",
                 public_sources=SOURCES)
    assert d.links == ()
    assert d.case is Case.NEW_CONTENT


def test_word_limits_are_inclusive() -> None:
    line = " ".join(["word"] * COVERING_LINE_WORDS)
    assert classify(f"{line}\nhttps://www.gov.uk/government/news/x", public_sources=SOURCES).case is P
    assert classify(f"{line} more\nhttps://www.gov.uk/government/news/x", public_sources=SOURCES).case is L
    sixty = " ".join(["word"] * 60)
    assert classify(f"{sixty} https://example.org/x", public_sources=SOURCES, word_limit=60).case is L
    assert classify(f"{sixty} one https://example.org/x", public_sources=SOURCES, word_limit=60).case is N


def test_known_text_by_opening_words_or_overlap() -> None:
    known = [PRESS_RELEASE]
    # Re-flowed and re-cased, without its last sentence: the opening 40 words are all there.
    body = "FYI\n\n" + PRESS_RELEASE.upper().rsplit("COUNCILS ARE", 1)[0].replace(" ", "\n", 3)
    assert classify(body, public_sources=(), known_public_texts=known).quoted_public
    assert not classify("FYI\n\nThe government today published", public_sources=(),
                        known_public_texts=known).quoted_public
    assert not classify("FYI", public_sources=(), known_public_texts=known).quoted_public


def test_parse_sources() -> None:
    assert parse_sources("gov.uk/government/news https://www.council.gov.uk/news example.org") == (
        "gov.uk/government/news", "council.gov.uk/news", "example.org")
    assert parse_sources(" HTTPS://WWW.Council.GOV.uk/news/ ,, gov.uk ,gov.uk\n") == (
        "council.gov.uk/news", "gov.uk")
    assert parse_sources("") == ()


@pytest.mark.parametrize(("url", "sources", "want"), [
    ("https://www.gov.uk/government/news/x", ("gov.uk/government/news",), True),
    ("http://gov.uk/government/news", ("gov.uk/government/news",), True),
    ("https://www.gov.uk/government/news/", ("gov.uk/government/news",), True),
    ("https://www.gov.uk/government/newsletters/x", ("gov.uk/government/news",), False),
    ("https://www.gov.uk/guidance/x", ("gov.uk/government/news",), False),
    ("https://assets.gov.uk/government/news/x", ("gov.uk/government/news",), False),
    ("https://gov.uk.evil.com/government/news/x", ("gov.uk/government/news",), False),
    ("https://evilgov.uk/government/news/x", ("gov.uk",), False),
    ("https://gov.uk.evil.com/", ("gov.uk",), False),
    ("https://www.gov.uk@evil.com/government/news/x", ("gov.uk/government/news",), False),
    ("https://news.example.org/a", ("example.org",), True),
    ("https://EXAMPLE.org:443/a", ("example.org",), True),
    ("www.examplecouncil.gov.uk/news/2025/x", ("examplecouncil.gov.uk/news",), True),
    ("https://example.org/a", (), False),
    ("https://[broken/a", ("example.org",), False),
])
def test_matches_source(url: str, sources: tuple[str, ...], want: bool) -> None:
    assert matches_source(url, sources) is want


def test_find_links() -> None:
    text = (
        "See https://a.example/x. And (https://b.example/y), <https://c.example/z>, 'https://d.example/q'!\n"
        "Bare www.e.example/path/; again https://a.example/x?\n"
        "Wiki https://en.example.org/wiki/Thing_(x) and [text](https://f.example/md)\n"
        "Not links: me@www.example.org, http://, www.\n"
        "> https://g.example/quoted>"
    )
    assert find_links(text) == [
        "https://a.example/x", "https://b.example/y", "https://c.example/z", "https://d.example/q",
        "www.e.example/path/", "https://en.example.org/wiki/Thing_(x)", "https://f.example/md",
        "https://g.example/quoted",
    ]
    assert find_links("no links here") == []


@pytest.mark.parametrize(("kind", "official", "scope", "want"), [
    ("vendor", False, "off", False),
    ("vendor", True, "off", False),
    ("vendor", False, "vendors", True),
    ("member", True, "vendors", True),
    ("member", False, "vendors", False),
    ("member", True, "vendors+official", True),
    ("vendor", False, "vendors+official", True),
    ("member", False, "everyone", True),
])
def test_applies(kind: str, official: bool, scope: str, want: bool) -> None:
    assert applies(kind, official, scope) is want


def test_applies_rejects_unknown_values() -> None:
    with pytest.raises(ValueError, match="scope"):
        applies("vendor", False, "vendor")
    with pytest.raises(ValueError, match="kind"):
        applies("staff", False, "everyone")
