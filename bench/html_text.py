"""HTML to text on the corpus, with the senders' own plain text as the answer key.

Every multipart/alternative part in the shared corpus that holds both text/plain and text/html
is a pair: the HTML goes through ``listserv.bodytext.html_to_text`` (and, when they are
installed, inscriptis and html2text for comparison), the output is scored against the plain
alternative by word F1 (the tokens of notes/quote-stripping.md), and the http(s) links of the
HTML are looked for in the output (the participation policy counts links, so losing one
matters). Prints one line per converter, ``html_to_text lib=NAME pairs=N f1=F links=K/L
us_per_part=U``. Run from the root:

    PYTHONPATH=. .venv/bin/python bench/html_text.py
"""

from __future__ import annotations

import gzip
import mailbox
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from email import message_from_bytes
from email.message import Message
from email.policy import compat32
from pathlib import Path

from bench.quotes import _corpus, f1
from listserv.bodytext import decode_bytes, html_to_text

_HREF = re.compile(r"""href\s*=\s*["']?(https?://[^"'\s>]+)""", re.IGNORECASE)
_MAX_FILE = 4_000_000


def _mbox_bytes(path: Path) -> Iterator[bytes]:
    if path.suffix == ".gz":
        with tempfile.NamedTemporaryFile(suffix=".mbox") as tmp:
            tmp.write(gzip.decompress(path.read_bytes()))
            tmp.flush()
            yield from (m.as_bytes() for m in mailbox.mbox(tmp.name))
    else:
        yield from (m.as_bytes() for m in mailbox.mbox(str(path)))


def _messages(root: Path) -> Iterator[bytes]:
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.stat().st_size > _MAX_FILE:
            continue
        head = path.read_bytes()[:5]
        if head.startswith(b"From ") or path.name.endswith(".txt.gz"):
            try:
                yield from _mbox_bytes(path)
            except (OSError, EOFError, ValueError):
                continue
        elif path.suffix not in (".xml", ".json", ".gz", ".html", ".py"):
            yield path.read_bytes()


def _text(part: Message) -> str | None:
    payload = part.get_payload(decode=True)
    return decode_bytes(payload, part.get_content_charset()) if isinstance(payload, bytes) else None


def pairs(root: Path) -> list[tuple[str, str]]:
    """(plain, html) of every distinct multipart/alternative with both."""
    seen: set[tuple[str, str]] = set()
    out: list[tuple[str, str]] = []
    for raw in _messages(root):
        try:
            msg = message_from_bytes(raw, policy=compat32)
            for part in msg.walk():
                subs = part.get_payload()
                if part.get_content_type() != "multipart/alternative" or not isinstance(subs, list):
                    continue
                plain = next((_text(p) for p in subs if p.get_content_type() == "text/plain"), None)
                html = next((_text(p) for p in subs if p.get_content_type() == "text/html"), None)
                if plain is not None and html is not None and (plain, html) not in seen:
                    seen.add((plain, html))
                    out.append((plain, html))
        except Exception:  # hostile MIME: not a pair
            continue
    return out


def _converters() -> dict[str, Callable[[str], str]]:
    found: dict[str, Callable[[str], str]] = {"commonroom": html_to_text}
    try:
        import inscriptis  # type: ignore[import-not-found, unused-ignore]
        from inscriptis.model.config import ParserConfig  # type: ignore[import-not-found, unused-ignore]

        found["inscriptis"] = inscriptis.get_text
        found["inscriptis_links"] = lambda h: inscriptis.get_text(h, ParserConfig(display_links=True))
    except ImportError:
        pass
    try:
        import html2text  # type: ignore[import-not-found, unused-ignore]

        def _h2t(h: str) -> str:
            conv = html2text.HTML2Text()
            conv.body_width = 0
            return str(conv.handle(h))

        found["html2text"] = _h2t
    except ImportError:
        pass
    return found


def main() -> None:
    data = pairs(_corpus())
    for name, fn in _converters().items():
        start = time.perf_counter()
        outs = [fn(html) for _, html in data]
        seconds = time.perf_counter() - start
        score = sum(f1(out, plain) for out, (plain, _) in zip(outs, data, strict=True)) / len(data)
        links = [(set(_HREF.findall(html)), out) for out, (_, html) in zip(outs, data, strict=True)]
        kept = sum(sum(1 for u in hrefs if u in out) for hrefs, out in links)
        total = sum(len(hrefs) for hrefs, _ in links)
        print(f"html_to_text lib={name} pairs={len(data)} f1={score:.3f} links={kept}/{total} "
              f"us_per_part={seconds / len(data) * 1e6:.0f}")


if __name__ == "__main__":
    main()
