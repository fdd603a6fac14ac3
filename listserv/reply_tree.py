"""The reply tree of one thread, from the posts' own Message-ID and References (JWZ's parent
links): which post answers which, for the archive's thread page.

Pure: posts in, a tree out. ``threads.assign_thread`` decides which posts share a thread; this
decides their shape inside it.

Rules:
- A post's parent is its In-Reply-To when that is a post of this thread, else the nearest id in
  its References that is; a parent that never arrived is skipped over to the next ancestor, as
  JWZ's algorithm prunes empty containers.
- A post with no such parent is a root; a thread joined by subject alone has several roots.
- Two posts with the same Message-ID: the earlier one is the parent others point at.
- A link that would make a cycle (References lie) is dropped: every post appears exactly once.
- Siblings, and roots, are in date order (then storage order).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class Post:
    pk: int
    message_id: str
    references: tuple[str, ...]
    date: datetime
    in_reply_to: str | None = None


@dataclass
class Node:
    post: Post
    depth: int = 0
    parent: int | None = None  # the parent post's pk
    children: list[Node] = field(default_factory=list)


def build(posts: Sequence[Post]) -> list[Node]:
    """The roots of the thread's reply tree (see the module docstring)."""
    ordered = sorted(posts, key=lambda p: (p.date, p.pk))
    by_id: dict[str, Post] = {}
    for p in ordered:
        by_id.setdefault(p.message_id, p)
    parent: dict[int, int] = {}

    def ancestors_include(start: int, target: int) -> bool:
        seen: set[int] = set()
        node: int | None = start
        while node is not None and node not in seen:
            if node == target:
                return True
            seen.add(node)
            node = parent.get(node)
        return False

    for p in ordered:
        wanted = (p.in_reply_to,) if p.in_reply_to in by_id else ()
        for ref in (*wanted, *reversed(p.references)):
            candidate = by_id.get(ref)
            if candidate is None or candidate.pk == p.pk:
                continue
            if not ancestors_include(candidate.pk, p.pk):
                parent[p.pk] = candidate.pk
            break
    nodes = {p.pk: Node(p, parent=parent.get(p.pk)) for p in ordered}
    roots: list[Node] = []
    for p in ordered:
        node = nodes[p.pk]
        (nodes[node.parent].children if node.parent is not None else roots).append(node)
    stack = [(r, 0) for r in roots]
    while stack:
        node, depth = stack.pop()
        node.depth = depth
        stack.extend((c, depth + 1) for c in node.children)
    return roots


def flatten(roots: Sequence[Node]) -> list[Node]:
    """Every node in reply order: depth first, each post followed by its answers."""
    out: list[Node] = []
    stack = list(reversed(roots))
    while stack:
        node = stack.pop()
        out.append(node)
        stack.extend(reversed(node.children))
    return out
