"""One member's copy of a rendered digest: substitute the member's links, write the header
block, choose each text part's transfer encoding. Joins bytes; renders no template."""

from __future__ import annotations

import base64
import email.policy
import functools
import html
import re
from collections.abc import Mapping

from digests.render.core import MAX_LINE, MEMBER_EMAIL, MemberLinks, Rendered, TextPart, safe_url

# Headers personalise() writes itself; a caller passing one of them is a bug.
_OWNED_HEADERS = frozenset({"to", "mime-version", "content-type", "content-transfer-encoding",
                            "content-description", "content-disposition", "content-id"})
_HEADER_NAME = re.compile(r"[!-9;-~]+")  # RFC 5322 ftext


def _fold_ascii(name: str, value: str) -> str:
    """Fold at spaces to keep lines near 78 characters; a long word stays whole (<= 998)."""
    line = f"{name}:"
    lines: list[str] = []
    for word in value.split(" "):
        piece = f" {word}"
        if word and line != f"{name}:" and len(line) + len(piece) > 78:
            lines.append(line)
            line = piece
        else:
            line += piece
    lines.append(line)
    if any(len(x) > MAX_LINE for x in lines):
        raise ValueError(f"header {name} has a word longer than {MAX_LINE} characters")
    return "\n".join(lines) + "\n"


_POLICY = email.policy.default.clone(linesep="\n")


@functools.lru_cache(maxsize=4096)
def _header(name: str, value: str) -> bytes:
    """One header field, folded; non-ASCII values are RFC 2047-encoded (display names in
    address headers included). Cached: most header values are the same for every member."""
    if not _HEADER_NAME.fullmatch(name):
        raise ValueError(f"bad header name {name!r}")
    if any(c in value for c in "\r\n\0"):
        raise ValueError(f"line break or NUL in header {name}: {value!r}")
    if value.isascii():
        return _fold_ascii(name, value).encode("ascii")
    try:
        folded = str(_POLICY.header_factory(name, value).fold(policy=_POLICY))
        return folded.encode("ascii")
    except (UnicodeError, ValueError, IndexError, TypeError):
        # e.g. an internationalised address: needs SMTPUTF8 and goes as UTF-8 (RFC 6532).
        utf8 = _POLICY.clone(utf8=True)
        return str(utf8.header_factory(name, value).fold(policy=utf8)).encode("utf-8")


def _substitute(value: str, values: Mapping[str, str]) -> str:
    if "%%" in value:
        for ph, v in values.items():
            value = value.replace(ph, v)
    return value


def _part_pieces(part: TextPart, values: Mapping[str, bytes]) -> list[bytes]:
    """One member's copy of a text part, as pieces to join once (the body is not copied here:
    a digest body can be megabytes and every member gets one)."""
    eightbit = part.eightbit and all(
        size + sum(len(values[k]) for k in keys) <= MAX_LINE for size, keys in part.token_lines)
    pieces: list[bytes]
    if eightbit:
        pieces = [part.chunks[0]]
        for key, chunk in zip(part.keys, part.chunks[1:], strict=True):
            pieces += (values[key], chunk)
        ascii_ = part.ascii and all(values[k].isascii() for k in set(part.keys))
        cte = "7bit" if ascii_ else "8bit"
    else:
        text = part.text
        for tok, ph in part.tokens:
            text = text.replace(tok, values[ph].decode("utf-8"))
        pieces = [base64.encodebytes(text.encode("utf-8"))]
        cte = "base64"
    head = f'Content-Type: text/{part.subtype}; charset="utf-8"\nContent-Transfer-Encoding: {cte}\n'
    if part.description:
        head += f"Content-Description: {part.description}\n"
    return [head.encode("ascii"), b"\n", *pieces]


def personalise(rendered: Rendered, links: MemberLinks, headers: Mapping[str, str]) -> bytes:
    """One member's copy: full RFC 5322 message bytes with LF line ends.

    The header block is ``headers`` in the given order (the list's From, List-Id,
    List-Unsubscribe, List-Unsubscribe-Post, List-Post, List-Help, List-Archive, Precedence,
    Message-ID, Date, ...), with the public placeholders in their values replaced by the
    member's links, then ``To: <member>``, ``Subject`` (unless ``headers`` has one, e.g. with
    a list tag) and the MIME headers. ``headers`` must not hold To, MIME-Version or Content-*.
    No template is rendered here: the cost is joining bytes.
    """
    raw_values = links.values()
    out: list[bytes] = []
    seen: set[str] = set()
    for name, value in headers.items():
        lower = name.lower()
        if lower in _OWNED_HEADERS:
            raise ValueError(f"personalise() writes {name} itself; do not pass it in headers")
        seen.add(lower)
        out.append(_header(name, _substitute(value, raw_values)))
    out.append(_header("To", links.email))
    if "subject" not in seen:
        out.append(_header("Subject", rendered.subject))
    text_values = {ph: v.encode("utf-8") for ph, v in raw_values.items()}
    html_values = {ph: html.escape(v if ph == MEMBER_EMAIL else safe_url(v), quote=True).encode("utf-8")
                   for ph, v in raw_values.items()}
    for item in rendered.items:
        if isinstance(item, bytes):
            out.append(item)
        else:
            out += _part_pieces(item, html_values if item.subtype == "html" else text_values)
    return b"".join(out)
