"""Quote stripping on the answer keys found in the shared corpus.

Keys (each reported when its folder is there):

- ``discourse``: email_reply_trimmer's 64 replies with the expected trimmed reply. Prints
  ``quotes discourse_exact=N/64 f1=F us_per_message=U`` for ``listserv.quotes.trim`` (the key
  keeps interleaved quotes, as ``trim`` does), then the same figures for ``own_words``.
- ``crisp``: crisp-oss/email-reply-parser's replies from many clients and languages. Its
  expectations live in that project's test.js (not in the corpus); they are restated here as
  data: the files whose first fragment must be the lorem paragraph that opens email_7.txt, the
  few whose reply is spelled out there, and the false-positive cases where a phrase of the
  author's must survive. Measured on ``own_words``; ends with
  ``quotes key=crisp exact=N/M kept=K/L f1=F us_per_message=U``.

Exact = equal after normalising line ends, trailing spaces and runs of blank lines; F1 over
lower-cased word tokens (notes/quote-stripping.md). Run from the root:

    PYTHONPATH=. .venv/bin/python bench/quotes.py [--misses]
"""

from __future__ import annotations

import argparse
import os
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from listserv.quotes import own_words, trim, word_tokens


def _corpus() -> Path:
    """The shared corpus: $COMMONROOM_CORPUS, ../shared/corpus beside the checkout, or /work's."""
    for c in (os.environ.get("COMMONROOM_CORPUS", ""),
              str(Path(__file__).resolve().parents[2] / "shared" / "corpus"), "/work/shared/corpus"):
        if c and Path(c).is_dir():
            return Path(c)
    return Path("/work/shared/corpus")


DISCOURSE = _corpus() / "email_reply_trimmer-discourse"
CRISP = _corpus() / "email-reply-parser-crisp"

# crisp's test.js, restated as data. The files whose first fragment is the lorem paragraph
# (COMMON_FIRST_FRAGMENT there, the opening paragraph of email_7.txt here).
CRISP_LOREM = (
    "email_7", "email_8", "email_9", "email_10", "email_11", "email_12", "email_13", "email_14",
    "email_15", "email_16", "email_17", "email_18", "email_22", "email_23", "email_24", "email_25",
    "email_26", "email_portuguese", "email_german", "email_german_2", "email_german_3",
    "email_german_outlook", "email_norwegian_gmail", "email_finnish", "email_italian",
    "email_russian", "email_outlook_split_line_from", "email_gmail_split_line_from",
    "email_ios_outlook_fr", "email_ios_outlook", "email_msn", "email_fr_multiline",
    "email_french_2", "email_en_multiline_2", "email_original_message", "email_original_message_2",
    "email_danish_dash_separator", "email_french_dash_separator", "email_tricky_5_mixed_languages",
    "email_tricky_10_special_chars_in_name", "email_tricky_12_no_space_after_header",
    "email_tricky_14_long_quote_header", "email_tricky_15_original_message_variations",
)
# Files whose expected reply test.js spells out: (file, first line, last line) of that reply.
CRISP_SPELLED = (
    ("email_1", "Hi folks", "-Abhishek Kona"),
    ("email_3", "Oh thanks.", "-Abhishek Kona"),
    ("email_sent_from", "Hi it can happen", "in between words or paragraphs."),
    ("email_zoho", "What is the best way", "running a test?"),
    ("email_with_regards", "Hi,", "Can you help?"),
)
# False positives: a phrase of the author's that must be kept.
CRISP_KEPT = (
    ("email_tricky_1_on_false_positive", "."),
    ("email_tricky_2_url_with_wrote", "https://example.com"),
    ("email_tricky_3_code_block", "function sendEmail"),
    ("email_tricky_6_regards_in_sentence", "with regards to the payment"),
    ("email_tricky_7_multiple_dashes", "Key Points"),
    ("email_tricky_8_sent_from_in_content", "sent from my iPhone app"),
    ("email_tricky_9_nested_quotes", "I agree with the points"),
    ("email_tricky_11_double_signature", "Thanks for your help"),
    ("email_tricky_13_timestamp_variations", "different timestamp formats"),
    ("email_tricky_16_unicode_signatures", "Thanks for the update"),
    ("email_tricky_17_forward_header", "See the forwarded message"),
    ("email_tricky_19_quote_without_header", "I wanted to respond"),
    ("email_tricky_20_html_entities", "&gt; 100 and &lt; 200"),
)


def normalise(text: str) -> str:
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def f1(got: str, want: str) -> float:
    g, w = Counter(word_tokens(got)), Counter(word_tokens(want))
    if not g and not w:
        return 1.0
    common = sum((g & w).values())
    if common == 0:
        return 0.0
    precision, recall = common / sum(g.values()), common / sum(w.values())
    return 2 * precision * recall / (precision + recall)


def cases(root: Path = DISCOURSE) -> list[tuple[str, str, str]]:
    """(name, email, expected trimmed reply) for every answer in the key."""
    out = []
    for path in sorted((root / "emails").glob("*.txt")):
        want = root / "trimmed" / path.name
        out.append((path.name, path.read_text(encoding="utf-8"), want.read_text(encoding="utf-8")))
    return out


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _first_paragraph(text: str) -> str:
    return normalise(text).split("\n\n", 1)[0]


def _between(text: str, first: str, last: str) -> str:
    """The lines of ``text`` from the one starting with ``first`` to the one ending with ``last``."""
    lines = normalise(text).split("\n")
    start = next(i for i, line in enumerate(lines) if line.startswith(first))
    end = next(i for i in range(start, len(lines)) if lines[i].endswith(last))
    return "\n".join(lines[start:end + 1])


def crisp_cases(root: Path = CRISP) -> list[tuple[str, str, str]]:
    """(name, email, expected own words) for crisp's replies whose reply test.js states."""
    lorem = _first_paragraph(_read(root / "email_7.txt"))
    out = [(f"{name}.txt", _read(root / f"{name}.txt"), lorem) for name in CRISP_LOREM]
    for name, first, last in CRISP_SPELLED:
        email = _read(root / f"{name}.txt")
        out.append((f"{name}.txt", email, _between(email, first, last)))
    return out


def crisp_kept(fn: Callable[[str], str], root: Path = CRISP) -> tuple[int, int, tuple[str, ...]]:
    """How many false-positive cases keep the author's phrase: (kept, total, misses)."""
    misses = tuple(f"{name}.txt" for name, phrase in CRISP_KEPT
                   if phrase not in fn(_read(root / f"{name}.txt")))
    return len(CRISP_KEPT) - len(misses), len(CRISP_KEPT), misses


@dataclass(frozen=True)
class Figures:
    exact: int
    total: int
    f1: float
    us_per_message: float
    misses: tuple[str, ...]


def measure(fn: Callable[[str], str], root: Path = DISCOURSE, repeat: int = 5,
            data: list[tuple[str, str, str]] | None = None) -> Figures:
    data = cases(root) if data is None else data
    exact, scores, misses = 0, [], []
    for name, email, want in data:
        got = fn(email)
        if normalise(got) == normalise(want):
            exact += 1
        else:
            misses.append(name)
        scores.append(f1(got, want))
    best = float("inf")  # best of several rounds: the figure is the code's, not the machine's load
    for _ in range(repeat):
        start = time.perf_counter()
        for _, email, _ in data:
            fn(email)
        best = min(best, time.perf_counter() - start)
    us = best / len(data) * 1e6
    return Figures(exact, len(data), sum(scores) / len(scores), us, tuple(misses))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--misses", action="store_true", help="list the answers missed")
    args = parser.parse_args()
    if DISCOURSE.is_dir():
        for label, fn in (("quotes", trim), ("quotes own_words", own_words)):
            fig = measure(fn)
            if args.misses:
                for name in fig.misses:
                    print(f"  miss {name}")
            print(f"{label} discourse_exact={fig.exact}/{fig.total} f1={fig.f1:.3f} "
                  f"us_per_message={fig.us_per_message:.0f}")
    if CRISP.is_dir():
        fig = measure(own_words, data=crisp_cases())
        kept, total, lost = crisp_kept(own_words)
        if args.misses:
            for name in fig.misses:
                print(f"  miss {name}")
            for name in lost:
                print(f"  lost {name}")
        print(f"quotes key=crisp exact={fig.exact}/{fig.total} kept={kept}/{total} f1={fig.f1:.3f} "
              f"us_per_message={fig.us_per_message:.0f}")


if __name__ == "__main__":
    main()
