"""Ban patterns (issue 7.23): globs are matched with fnmatch.fnmatchcase, never by editing
fnmatch.translate's output, and a pattern that cannot be matched is refused when added."""

from __future__ import annotations

import fnmatch
from datetime import UTC, datetime

import pytest

from listserv.bans import BanProblem, normalise_pattern
from listserv.rules import Ban

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("typed,address,banned", [
    ("*@spam.example", "anyone@spam.example", True),
    ("*@spam.example", "Anyone@SPAM.Example", True),
    ("*@SPAM.example", "anyone@spam.example", True),
    ("*@spam.example", "anyone@spam.example.org", False),
    ("*@spam.example", "anyone@notspam.example", False),
    ("*@*.spam.example", "x@mail.spam.example", True),
    ("*@*.spam.example", "x@spam.example", False),
    ("bot?@lists.example", "bot7@lists.example", True),
    ("bot?@lists.example", "bot77@lists.example", False),
    ("[ab]*@x.example", "bob@x.example", True),
    ("[ab]*@x.example", "carl@x.example", False),
    ("^.*@spam\\.example$", "a@spam.example", True),  # a regular expression, as before
    ("dan@elsewhere.example", "DAN@elsewhere.example", True),
    ("dan@elsewhere.example", "dana@elsewhere.example", False),
])
def test_glob_regex_and_address_bans(typed: str, address: str, banned: bool) -> None:
    assert Ban(normalise_pattern(typed)).matches(address, NOW) is banned


def test_globs_do_not_depend_on_the_form_of_fnmatch_translate(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Python 3.14's translate ends in \\z, not \\Z: a ban made by editing its output then never
    matched (and the re.error was swallowed), so nobody was banned."""
    original = fnmatch.translate
    monkeypatch.setattr(fnmatch, "translate",
                        lambda pat: original(pat).removesuffix("\\Z") + "\\z")
    ban = Ban(normalise_pattern("*@spam.example"))
    assert ban.matches("anyone@spam.example", NOW)
    assert not ban.matches("anyone@ham.example", NOW)


@pytest.mark.parametrize("typed", ["^(unclosed", "^[z-a]@x.example"])
def test_a_pattern_that_cannot_compile_is_refused_when_added(typed: str) -> None:
    with pytest.raises(BanProblem, match="not a valid"):
        normalise_pattern(typed)


def test_an_expired_glob_bans_nobody() -> None:
    ban = Ban(normalise_pattern("*@spam.example"), expires_at=NOW)
    assert not ban.matches("anyone@spam.example", NOW)
