"""Every real post of the fedora-devel month can be decorated for delivery, and a wrapped
8-bit body (mislabelled charsets included) reaches members byte for byte."""

from __future__ import annotations

import email
import email.generator
import email.policy
import random
from pathlib import Path

import pytest

from listserv import decorate
from listserv.decorate import STRIPPED, Author, ListInfo, prepare, strip
from tests.test_threads_corpus import FEDORA, read_mbox

INFO = ListInfo("demo", "lists.example.org", "Demo list", "https://lists.example.org")


def test_every_fedora_post_can_be_prepared_for_delivery(corpus: Path) -> None:
    posts = read_mbox(corpus / FEDORA / "2010-January.txt.gz")
    wrapped_8bit = 0
    for post in posts:
        out = prepare(post.raw, INFO, Author("a@example.org", "Ann"), munge_from=False).for_recipient(
            "https://lists.example.org/u/x", "demo-leave@lists.example.org")
        original = email.message_from_bytes(post.raw, policy=email.policy.compat32)
        if not original.is_multipart() and original.get("Content-Disposition") and \
                original.get("Content-Transfer-Encoding", "").lower() == "8bit":
            wrapped_8bit += 1
            body = original.get_payload(decode=True)
            assert isinstance(body, bytes) and body.strip() in out.replace(b"\r\n", b"\n"), post.message_id
    assert wrapped_8bit >= 6  # the posts that crashed delivery before


def test_a_multipart_mixed_without_parts_is_wrapped_not_refused() -> None:
    """Three corpus messages say multipart/mixed but give no boundary: decorating one raised,
    so the post was retried at every delivery attempt and never sent."""
    raw = (b"From: Ann <ann@example.org>\r\nTo: demo@lists.example.org\r\nSubject: Odd\r\n"
           b"Message-ID: <odd@example.org>\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: multipart/mixed\r\n\r\nJust some text, no parts at all.\r\n")
    info = ListInfo("demo", "lists.example.org", "Demo", "https://lists.example.org")
    out = prepare(raw, info, Author("ann@example.org", "Ann"), munge_from=False).body
    msg = email.message_from_bytes(out, policy=email.policy.default)
    assert msg.is_multipart() and "<demo.lists.example.org>" in msg["List-Id"]
    first, footer = msg.get_payload()  # type: ignore[misc]
    assert b"Just some text, no parts at all." in first.as_bytes()
    assert "demo@lists.example.org" in footer.get_content()


def test_stripping_leaves_the_headers_deleting_each_name_left(corpus: Path) -> None:
    """``strip`` deletes only the names a post has: the headers left, and their order, are
    those of ``del msg[name]`` for every name (what ``prepare`` did before)."""
    posts = [p.raw for p in read_mbox(corpus / FEDORA / "2010-January.txt.gz")]
    posts += [p.read_bytes() for p in sorted((corpus / "cpython-test_email").glob("msg_*.txt"))]
    posts.append(b"List-Id: a\r\nlist-ID: b\r\nSubject: x\r\nPRECEDENCE: bulk\r\nX-A: 1\r\n"
                 b"Sender: s\r\nsender: t\r\nX-B: 2\r\n\r\nbody\r\n")
    stripped_some = 0
    for raw in posts:
        fast = email.message_from_bytes(raw, policy=email.policy.compat32)
        slow = email.message_from_bytes(raw, policy=email.policy.compat32)
        strip(fast, STRIPPED)
        for name in STRIPPED:
            del slow[name]
        assert fast.items() == slow.items()
        original = email.message_from_bytes(raw, policy=email.policy.compat32)
        stripped_some += len(fast.items()) < len(original.items())
    assert stripped_some > 100


def test_prepared_posts_are_the_bytes_of_the_email_package_s_own_calls(
        corpus: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``set_ascii_text``, ``content_charset``, the cached list headers and the one-write
    generator change no byte: every corpus post (and made-up ones, Content-Type varied)
    prepared with them and with the email package's ``set_payload(text, "us-ascii")``,
    ``get_content_charset`` and ``BytesGenerator`` is the same, or fails the same."""
    rng = random.Random()
    monkeypatch.setattr(email.generator, "random", rng)  # MIME boundaries: the same on both
    posts = [p.raw for p in read_mbox(corpus / FEDORA / "2010-January.txt.gz")]
    posts += [p.read_bytes() for p in sorted((corpus / "cpython-test_email").glob("msg_*.txt"))]
    posts += [p.read_bytes() for p in sorted(corpus.rglob("*.eml"))[:150]]
    base = b"From: a@example.org\r\nSubject: x\r\nX-A: 1\r\n"
    for ctype in (None, b"text/plain", b"TEXT/Plain; Charset=US-ASCII", b"text/plain; format=flowed",
                  b'text/plain; charset="utf-8"; delsp=yes', b"text/plain;charset=iso-8859-1",
                  b"text/plain; name*=us-ascii''a%20b", b"text/plain; charset",
                  b"text/plain; charset*=utf-8''UTF-8", b'text/plain; charset="x-unknown"'):
        head = base + (b"Content-Type: " + ctype + b"\r\n" if ctype else b"")
        posts += [head + b"\r\nhello\r\n", head + b"Content-Type: text/html\r\n\r\nhi\n\rthere",
                  head + b"MIME-Version: 1.0\r\nContent-Transfer-Encoding: 7bit\r\n\r\n"]
    fast: list[bytes | type] = []
    for step in ("fast", "stdlib"):
        if step == "stdlib":
            monkeypatch.setattr(decorate, "_Generator", email.generator.BytesGenerator)
            monkeypatch.setattr(decorate, "set_ascii_text",
                                lambda msg, text: msg.set_payload(text, "us-ascii"))
            monkeypatch.setattr(decorate, "content_charset", lambda msg: msg.get_content_charset())
            monkeypatch.setattr(decorate, "_list_headers", decorate.list_headers)
        for i, raw in enumerate(posts):
            rng.seed(i)
            try:
                out: bytes | type = prepare(raw, INFO, Author("a@example.org", "Ann"),
                                            munge_from=i % 2 == 0).body
            except Exception as e:
                out = type(e)
            if step == "fast":
                fast.append(out)
            else:
                assert out == fast[i], i
    assert len(posts) > 400 and sum(isinstance(out, bytes) for out in fast) > 400
