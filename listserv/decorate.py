"""Turn a stored post into what members receive: list headers, subject tag, footer, From.

Invariants:
- The heavy work (parsing, re-encoding the body, adding the footer) happens once per post in
  ``prepare``; ``PreparedPost.for_recipient`` only prepends the two personal header lines, so a
  fan-out to 100,000 members costs one parse, not 100,000.
- The subject tag is added once: never doubled on replies ("Re: [demo] x" stays as is).
- Headers that would mislead a receiver about this hop (old List-* headers, Return-Path,
  DKIM signatures that our changes break) are removed, never kept alongside ours.
- Vendor staff are named as such in the From display name.
"""

from __future__ import annotations

import email
import email.charset
import email.policy
import functools
import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from email.generator import BytesGenerator
from email.header import Header, decode_header, make_header
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

from listserv import links, names
from listserv.addresses import Kind, list_address

# A header value compat32 writes as it is (no folding, no encoded words): printable ASCII and
# tabs on a line that fits (tests/test_decorate_fold.py compares every such value).
_PLAIN_HEADER = re.compile(r"[\t\x20-\x7e]*")


class _Wire(type(email.policy.compat32)):  # type: ignore[misc]
    """compat32 with CRLF line ends and 78 columns, whose ``fold_binary`` writes a header
    that needs no folding as ``name: value``: the bytes compat32 gives it, without the
    ``email.header.Header`` it builds for every header (half of ``prepare``'s time)."""

    def fold_binary(self, name: str, value: str) -> bytes:
        limit = self.max_line_length
        if (isinstance(value, str) and limit and len(name) + 2 + len(value) <= limit
                and name.isascii() and _PLAIN_HEADER.fullmatch(value)):
            return f"{name}: {value}{self.linesep}".encode("ascii")
        return super().fold_binary(name, value)  # type: ignore[no-any-return]


WIRE = _Wire(linesep="\r\n", max_line_length=78)

# Headers a list replaces or must not pass on (Mailman's cook-headers does the same).
STRIPPED = ("list-id", "list-post", "list-help", "list-subscribe", "list-unsubscribe",
            "list-unsubscribe-post", "list-archive", "list-owner", "precedence", "return-path",
            "dkim-signature", "x-original-to", "delivered-to", "errors-to", "sender",
            "x-commonroom-role")
_QP_UTF8 = email.charset.Charset("utf-8")
_QP_UTF8.body_encoding = email.charset.QP


@dataclass(frozen=True)
class ListInfo:
    name: str
    domain: str
    description: str
    web_base_url: str
    subject_prefix: str = ""

    @property
    def post_address(self) -> str:
        return list_address(self.name, self.domain)

    def address(self, kind: Kind, extra: str | None = None) -> str:
        """The list's ``kind`` address (``addresses.list_address``); ``extra`` is the CONFIRM
        token or VERP subscriber."""
        return list_address(self.name, self.domain, kind, extra)

    @property
    def list_id(self) -> str:
        return f"{self.name}.{self.domain}"

    @property
    def tag(self) -> str:
        return self.subject_prefix or f"[{self.name}]"


@dataclass(frozen=True)
class Author:
    address: str
    name: str = ""
    organisation: str = ""
    is_vendor: bool = False
    official: bool = False  # posts on this list in an official capacity


def role_header(author: Author) -> str:
    """X-Commonroom-Role: what digests, the bot and the archive read to mark vendor staff."""
    role = "vendor" if author.is_vendor else "member"
    if author.is_vendor and author.organisation:
        org = author.organisation.replace("\\", "").replace('"', "'")
        role += f'; org="{org}"'
    if author.official:
        role += "; official"
    return role


def display_name(author: Author) -> str:
    """ "Jane Doe (Acme Ltd, vendor)": vendor staff are recognisable wherever they post."""
    name = author.name or author.address.split("@", 1)[0]
    if author.is_vendor:
        org = f"{author.organisation}, vendor" if author.organisation else "vendor"
        return f"{name} ({org})"
    return name


def tagged_subject(subject: str, tag: str) -> str:
    if tag.casefold() in subject.casefold():
        return subject
    match = re.match(r"^((?:\s*(?:re|aw|fwd?|sv)\s*:\s*)+)", subject, re.IGNORECASE)
    if match:  # keep "Re:" first, as Mailman does, so clients still see a reply
        return f"{match.group(1).strip()} {tag} {subject[match.end():]}".rstrip()
    return f"{tag} {subject}".rstrip()


def footer_text(info: ListInfo) -> str:
    return (f"\n-- \nYou are subscribed to {info.post_address} ({info.description or info.name}).\n"
            f"To leave, write to {info.address(Kind.LEAVE)} or use the unsubscribe link in the "
            f"List-Unsubscribe header.\nArchive: {links.archive_url(info.web_base_url, info.name)}\n")


def _decoded(value: str | None) -> str:
    if not value:
        return ""
    try:
        return str(make_header(decode_header(value)))
    except (UnicodeDecodeError, LookupError, ValueError, email.errors.HeaderParseError):
        return value


def _header(text: str) -> str | Header:
    return text if text.isascii() else Header(text, "utf-8")


def set_ascii_text(msg: Message, text: str) -> None:
    """``msg.set_payload(text, "us-ascii")`` for ASCII ``text``, on a message without a
    Content-Transfer-Encoding (``_add_footer`` deleted it): the same payload and headers, in
    the same order, but the charset parameter is written once per distinct Content-Type
    (``set_param`` parses the header twice and rebuilds it: half of ``set_payload``)."""
    msg.set_payload(text)
    msg._charset = email.charset.Charset("us-ascii")  # type: ignore[attr-defined]
    if "MIME-Version" not in msg:
        msg.add_header("MIME-Version", "1.0")
    ctype = msg.get("Content-Type")
    if ctype is None:
        msg.add_header("Content-Type", "text/plain", charset="us-ascii")
    elif not isinstance(ctype, str):  # a Header object: as set_payload does it
        msg.set_param("charset", "us-ascii")
    elif (charset_set := _with_ascii_charset(ctype)) != ctype:
        del msg["Content-Type"]
        msg["Content-Type"] = charset_set
    msg["Content-Transfer-Encoding"] = "7bit"  # encode_7or8bit's answer for ASCII text


@functools.lru_cache(maxsize=512)
def _with_ascii_charset(ctype: str) -> str:
    """The Content-Type ``set_param("charset", "us-ascii")`` makes of ``ctype`` (it reads
    the first Content-Type alone)."""
    scratch = Message()
    scratch["Content-Type"] = ctype
    scratch.set_param("charset", "us-ascii")
    return str(scratch["Content-Type"])


_NLCRE = re.compile(r"\r\n|\r|\n")  # email.generator's NLCRE


def content_charset(msg: Message) -> str | None:
    """``msg.get_content_charset()``, computed once per distinct Content-Type (it parses the
    header's parameters every time; it reads the first Content-Type alone)."""
    ctype = msg.get("Content-Type")
    if not isinstance(ctype, str):  # none (its answer is None), or a Header object
        return msg.get_content_charset()
    return _charset_of(ctype)


@functools.lru_cache(maxsize=512)
def _charset_of(ctype: str) -> str | None:
    scratch = Message()
    scratch["Content-Type"] = ctype
    return scratch.get_content_charset()


class _Generator(BytesGenerator):
    """``BytesGenerator`` writing a text's lines in one write instead of two per line: the
    same bytes (joining with the line end what it writes line, line end, line, ...; the
    split's last item is empty exactly when the text ended in a line end)."""

    def _write_lines(self, lines: str) -> None:
        if lines:
            self.write(self._NL.join(_NLCRE.split(lines)))  # type: ignore[attr-defined]


def _add_footer(msg: Message, footer: str) -> Message:
    """Append the footer where clients will show it; returns the (possibly new) top message."""
    ctype = msg.get_content_type()
    if not msg.is_multipart() and ctype == "text/plain" and not msg.get("Content-Disposition"):
        charset = content_charset(msg) or "us-ascii"
        raw = msg.get_payload(decode=True)
        try:
            text = bytes(raw or b"").decode(charset, errors="replace")
        except LookupError:  # unknown charset: leave the body alone, wrap instead
            pass
        else:
            text = text.rstrip("\n") + "\n" + footer
            del msg["Content-Transfer-Encoding"]
            if text.isascii():
                set_ascii_text(msg, text)
            else:
                msg.set_payload(text, _QP_UTF8)
            return msg
    footer_part = MIMEText(footer, "plain", "utf-8" if not footer.isascii() else "us-ascii")
    footer_part["Content-Disposition"] = "inline"
    if ctype == "multipart/mixed" and msg.is_multipart():
        msg.attach(footer_part)
        return msg
    # A multipart/mixed whose parts could not be parsed (no boundary, or none found) is
    # wrapped like anything else, its body kept as it came.
    # Anything else (alternative, related, signed, html-only, attachments) is wrapped, so the
    # original part stays byte-for-byte intact (a signed part still verifies).
    outer = MIMEMultipart("mixed")
    inner = Message()
    for key, value in list(msg.items()):
        if key.lower().startswith("content-") or key.lower() == "mime-version":
            if key.lower() != "mime-version":
                inner[key] = value
            del msg[key]
    # The payload as parsed, untouched: get_payload() would re-decode 8-bit text with
    # "replace" (mislabelled charsets become U+FFFD) and the generator could not write it.
    inner.set_payload(msg._payload if not msg.is_multipart() else msg.get_payload())  # type: ignore[attr-defined]
    for key, value in msg.items():
        outer[key] = value
    outer.attach(inner)
    outer.attach(footer_part)
    return outer


_MARKER = re.compile(rb"@@member-token:([a-z0-9-]{1,40})@@")


def member_token_marker(purpose: str) -> str:
    """Stands for each member's own signed token for ``purpose`` in a post the list itself
    wrote (an event announcement); delivery swaps it per member. Ignored in anyone else's post,
    so a poster cannot make members' tokens appear in links of their choosing."""
    return f"@@member-token:{purpose}@@"


@dataclass(frozen=True)
class PreparedPost:
    """A post ready to go, but for the lines that differ per member."""

    list_name: str
    body: bytes  # every header but the personal ones, then the body, CRLF line ends
    purposes: tuple[str, ...] = ()  # member-token markers to swap (``member_token_marker``)

    def for_recipient(self, unsubscribe_url: str, leave_address: str,
                      token_for: Callable[[str], str] | None = None) -> bytes:
        before, after = personal_lines(unsubscribe_url, leave_address)
        personal = before + after
        body = self.body
        if token_for is not None:
            for purpose in self.purposes:
                body = body.replace(member_token_marker(purpose).encode(),
                                    token_for(purpose).encode())
        return personal + body


def personal_lines(unsubscribe_url: str, leave_address: str) -> tuple[bytes, bytes]:
    """A copy's personal header lines (``for_recipient``'s), cut at the end of the unsubscribe
    URL: a renderer that puts the member's token there makes them once per post. Pure."""
    return (f"List-Unsubscribe: <{unsubscribe_url}".encode(),
            f">,\r\n <mailto:{leave_address}>\r\n"
            "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n".encode())


def strip(msg: Message, names: tuple[str, ...]) -> None:
    """``del msg[name]`` for each of ``names`` (lower case) that ``msg`` has: the same
    headers left, in the same order, without a pass over all of them for each name (a
    fifth of ``prepare``'s time when most are absent, as they usually are)."""
    present = {key.lower() for key in msg}  # its header names
    for name in names:
        if name in present:
            del msg[name]


def prepare(raw: bytes, info: ListInfo, author: Author, *, munge_from: bool,
            personalise: bool = False) -> PreparedPost:
    """``personalise``: the list itself wrote ``raw``; its member-token markers are swapped."""
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    strip(msg, STRIPPED)
    subject = _decoded(msg.get("Subject"))
    del msg["Subject"]
    msg["Subject"] = _header(tagged_subject(" ".join(subject.split()), info.tag))  # type: ignore[assignment]

    shown = display_name(author)
    del msg["From"]
    if munge_from:
        # DMARC: the author's domain forbids others to send as it; send as the list instead.
        msg["From"] = names.mailbox(f"{shown} via {info.name}", info.post_address)
        if not msg.get("Reply-To"):
            msg["Reply-To"] = names.mailbox(shown, author.address)
    else:
        msg["From"] = names.mailbox(shown, author.address)

    msg = _add_footer(msg, footer_text(info))
    for key, value in {**_list_headers(info), "X-Commonroom-Role": role_header(author)}.items():
        msg[key] = _header(value)  # type: ignore[assignment]
    if msg.get("MIME-Version") is None:
        msg["MIME-Version"] = "1.0"
    out = io.BytesIO()
    _Generator(out, mangle_from_=False, policy=WIRE).flatten(msg)
    body = out.getvalue()
    purposes = tuple(sorted({m.decode() for m in _MARKER.findall(body)})) if personalise else ()
    return PreparedPost(info.name, body, purposes)


def list_headers(info: ListInfo) -> dict[str, str]:
    """The RFC 2369/2919 headers every list mail carries (posts and digests), but for the
    personal List-Unsubscribe pair."""
    return {
        "List-Id": f"{_header_safe(info.description or info.name)} <{info.list_id}>",
        "List-Post": f"<mailto:{info.post_address}>",
        "List-Help": f"<mailto:{info.address(Kind.REQUEST)}?subject=help>",
        "List-Subscribe": f"<mailto:{info.address(Kind.JOIN)}>",
        "List-Archive": f"<{links.archive_url(info.web_base_url, info.name)}>",
        "Precedence": "list",
    }


@functools.lru_cache(maxsize=64)
def _list_headers(info: ListInfo) -> dict[str, str]:
    """``list_headers``, made once per list (``prepare`` only reads it)."""
    return list_headers(info)


def _header_safe(text: str) -> str:
    """A quoted phrase safe inside List-Id (RFC 2919): ASCII, no brackets, quotes or breaks."""
    cleaned = re.sub(r"[<>\r\n\"\\]", "", text).strip()
    return '"' + (cleaned.encode("ascii", "replace").decode() or "list") + '"'
