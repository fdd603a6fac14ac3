"""What people type into the search box (``listserv.search_query``): a table of inputs and the
terms read from them, and the backend expressions written for them."""

from __future__ import annotations

import pytest

from listserv.search_query import MAX_TERMS, Query, Term, fts5, parse, websearch


def _q(groups: list[list[str]], excluded: list[str] = ()) -> Query:  # type: ignore[assignment]
    return Query(tuple(tuple(Term(t) for t in g) for g in groups), tuple(Term(t) for t in excluded))


CASES = [
    ("council website", _q([["council"], ["website"]])),
    ('"cloud tools" pricing', _q([["cloud tools"], ["pricing"]])),
    ("moodle -totara", _q([["moodle"]], ["totara"])),
    ('moodle -"totara learn"', _q([["moodle"]], ["totara learn"])),
    ("moodle OR totara hosting", _q([["moodle", "totara"], ["hosting"]])),
    ("moodle or totara", _q([["moodle"], ["or"], ["totara"]])),  # only upper-case OR is one
    ("OR moodle", _q([["moodle"]])),
    ("moodle OR", _q([["moodle"]])),
    ('"unclosed phrase', _q([["unclosed phrase"]])),
    ('foo" OR', _q([["foo"]])),
    ('say"what"now', _q([["say what now"]])),
    ("NEAR(a b) body:x ^start *", _q([["NEAR(a"], ["b)"], ["body:x"], ["^start"]])),
    ("- -- ---", _q([])),
    ("-only -exclusions", _q([], ["only", "exclusions"])),
    ("", _q([])),
    ("   \t\n ", _q([])),
    ("nul\x00byte", _q([["nul byte"]])),
    ("café Zürich", _q([["café"], ["Zürich"]])),
    ('"" ""', _q([])),
]


@pytest.mark.parametrize(("typed", "want"), CASES, ids=[repr(c[0]) for c in CASES])
def test_parse(typed: str, want: Query) -> None:
    assert parse(typed) == want


def test_terms_are_capped() -> None:
    assert len(parse(" ".join(f"w{i}" for i in range(100))).terms) == MAX_TERMS
    assert len(parse("x" * 5000).terms[0].text) == 100


def test_backend_expressions_quote_every_term() -> None:
    q = parse('council "web site" OR portal -"old site"')
    assert fts5(q) == '(("council") AND ("web site" OR "portal")) NOT "old site"'
    assert websearch(q) == '"council" "web site" or "portal" -"old site"'
    assert fts5(parse("")) == websearch(parse("")) == ""
