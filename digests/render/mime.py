"""The MIME digest (RFC 2046): multipart/mixed holding the preamble, a multipart/digest of
the posts exactly as received (``message/rfc822`` parts) and the member's footer."""

from __future__ import annotations

from digests.render.core import MIME, Frame, Rendered, TextPart, boundary, enclosed_posts, plural, text_part


def _lf(raw: bytes) -> bytes:
    return raw.replace(b"\r\n", b"\n")


def render_mime(frame: Frame) -> Rendered:
    """multipart/mixed: Today's Topics, the multipart/digest of the posts, the footer."""
    tokens, preamble, footer = frame.tokens, frame.preamble, frame.footer
    posts = [_lf(p.raw) for _t, p in enclosed_posts(frame.digest, frame.budget)[0]]
    outer = boundary([*posts, preamble.encode(), footer.encode()])
    inner = boundary([*posts, outer.encode()])
    n = len(posts)
    items: list[bytes | TextPart] = []
    items.append(
        f'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="{outer}"\n'
        f"Content-Transfer-Encoding: 8bit\n\n"
        f"This is a MIME digest of {plural(n, 'post', 'posts')}; your mail program shows each "
        f"post as an attached message.\n\n--{outer}\n".encode())
    items.append(text_part("plain", preamble, tokens, description="Today's Topics"))
    digest_head = (f'\n--{outer}\nContent-Type: multipart/digest; boundary="{inner}"\n'
                   f"Content-Transfer-Encoding: 8bit\n"
                   f"Content-Description: {plural(n, 'post', 'posts')}\n\n")
    body = bytearray(digest_head.encode())
    for raw in posts:
        body += f"--{inner}\nContent-Type: message/rfc822\n\n".encode()
        body += raw + b"\n"
    if not posts:  # a multipart needs at least one part
        body += f"--{inner}\nContent-Type: text/plain; charset=\"us-ascii\"\n\nNo posts.\n\n".encode()
    body += f"--{inner}--\n--{outer}\n".encode()
    items.append(bytes(body))
    items.append(text_part("plain", footer, tokens, description="Digest footer"))
    items.append(f"\n--{outer}--\n".encode())
    return frame.rendered(MIME, items, preamble + "\n" + footer)
