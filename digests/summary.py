"""The short summary of a sent digest that is posted in Discord (``[discord]
digest_channel_id``): a count line and one line per thread with its archive link. Pure.

Invariants: the text fits one Discord message (``LIMIT``, below Discord's 2000 characters),
with the threads that do not fit counted and pointed to the archive; subjects are one line with
Discord's markdown characters escaped, so a subject cannot format or fake a link.
"""

from __future__ import annotations

import re

from digests.model import Digest
from digests.render.core import one_line, plural

LIMIT = 1900
_MARKDOWN = re.compile(r"([\\*_~`|>\[\]()#<@:-])")


def escape(text: str) -> str:
    return _MARKDOWN.sub(r"\\\1", one_line(text))


def summary_text(digest: Digest, limit: int = LIMIT) -> str:
    posts = sum(t.new_posts for t in digest.threads)
    head = (f"**{escape(digest.list_name)}** weekly digest (vol {digest.volume}, issue "
            f"{digest.number}): {plural(len(digest.threads), 'thread', 'threads')}, "
            f"{plural(posts, 'post', 'posts')}")
    lines = [head]
    for n, thread in enumerate(digest.threads):
        line = (f"- [{escape(thread.subject) or '(no subject)'}](<{thread.url}>) · "
                f"{plural(thread.new_posts, 'post', 'posts')}{' · new' if thread.is_new else ''}")
        rest = len(digest.threads) - n
        tail = f"… and {plural(rest, 'more thread', 'more threads')}: <{digest.archive_url}>"
        room = len(line) + (len(tail) + 1 if rest > 1 else 0)  # the tail, if more will follow
        if sum(len(x) + 1 for x in lines) + room > limit:
            lines.append(tail)
            break
        lines.append(line)
    return "\n".join(lines)
