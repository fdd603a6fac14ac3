"""Quote stripping on the discourse answer key (email_reply_trimmer's 64 replies).

Prints ``quotes discourse_exact=N/64 f1=F us_per_message=U`` for ``listserv.quotes.trim`` (the
answer key keeps interleaved quotes, as ``trim`` does), then the same figures for ``own_words``
(which also drops them). Exact = equal after normalising line ends, trailing spaces and runs of
blank lines; F1 over lower-cased word tokens (notes/quote-stripping.md). Run from the root:

    PYTHONPATH=. python bench/quotes.py [--misses]
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


@dataclass(frozen=True)
class Figures:
    exact: int
    total: int
    f1: float
    us_per_message: float
    misses: tuple[str, ...]


def measure(fn: Callable[[str], str], root: Path = DISCOURSE, repeat: int = 5) -> Figures:
    data = cases(root)
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
    for label, fn in (("quotes", trim), ("quotes own_words", own_words)):
        fig = measure(fn)
        print(f"{label} discourse_exact={fig.exact}/{fig.total} f1={fig.f1:.3f} "
              f"us_per_message={fig.us_per_message:.0f}")
        if args.misses:
            for name in fig.misses:
                print(f"  miss {name}")


if __name__ == "__main__":
    main()
