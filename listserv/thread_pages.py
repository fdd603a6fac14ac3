"""A long thread's pages: which posts of the reply order a page shows, and where a post is.

Pure: the flattened reply tree in, a page out. ``archive.thread`` builds the tree; the web door
renders the page.

Invariants:
- Pages cut the reply order (depth first, ``reply_tree.flatten``) into runs of ``PER_PAGE``
  posts, numbered from 1; every post is on exactly one page, and the order across pages is the
  order of the whole thread, so reading page after page reads the thread.
- A page's depths are relative to the tree, not the page: a page may open deep inside a
  subtree, and the renderer nests it from there (``opening_depth``).
- ``parent_page`` says where each shown post's parent is, so "in reply to" can link across
  pages.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from listserv.reply_tree import Node

PER_PAGE = 50


@dataclass(frozen=True)
class Page:
    number: int  # from 1
    count: int  # pages in the thread
    nodes: tuple[Node, ...]  # the posts shown, in reply order
    first: int  # the position in the thread (from 1) of the first post shown
    total: int  # posts in the thread
    parent_page: dict[int, int]  # a shown post's parent pk -> the page it is on

    @property
    def last(self) -> int:
        return self.first + len(self.nodes) - 1

    @property
    def opening_depth(self) -> int:
        """The tree depth the page starts at (0 unless it opens inside a subtree)."""
        return self.nodes[0].depth if self.nodes else 0


def page_count(total: int, per_page: int = PER_PAGE) -> int:
    return max(1, -(-total // per_page))


def page_of(order: Sequence[Node], pk: int, per_page: int = PER_PAGE) -> int | None:
    """The page showing post ``pk``, or None if it is not in the thread."""
    for i, node in enumerate(order):
        if node.post.pk == pk:
            return i // per_page + 1
    return None


def page(order: Sequence[Node], number: int, per_page: int = PER_PAGE) -> Page | None:
    """Page ``number`` of a thread whose reply order is ``order``; None past the last page."""
    count = page_count(len(order), per_page)
    if not 1 <= number <= count:
        return None
    start = (number - 1) * per_page
    shown = tuple(order[start:start + per_page])
    where = {n.post.pk: i // per_page + 1 for i, n in enumerate(order)}
    parents = {n.parent: where[n.parent] for n in shown
               if n.parent is not None and n.parent in where}
    return Page(number, count, shown, start + 1, len(order), parents)
