"""A long thread's pages (listserv/thread_pages.py): runs of the reply order, where a post is."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from listserv.reply_tree import Post, build, flatten
from listserv.thread_pages import page, page_count, page_of

AT = datetime(2026, 12, 6, tzinfo=UTC)


@pytest.mark.parametrize("total,per_page,pages", [(0, 50, 1), (1, 50, 1), (50, 50, 1),
                                                   (51, 50, 2), (120, 50, 3)])
def test_page_count(total: int, per_page: int, pages: int) -> None:
    assert page_count(total, per_page) == pages


def test_pages_cut_the_reply_order_and_know_where_parents_are() -> None:
    # 1 <- 2 <- 3 <- 4, 1 <- 5 <- 6: reply order 1 2 3 4 5 6.
    posts = [Post(1, "a", (), AT), Post(2, "b", ("a",), AT), Post(3, "c", ("a", "b"), AT),
             Post(4, "d", ("c",), AT), Post(5, "e", ("a",), AT), Post(6, "f", ("e",), AT)]
    order = flatten(build(posts))
    second = page(order, 2, per_page=2)
    assert second is not None
    assert [n.post.pk for n in second.nodes] == [3, 4]
    assert (second.number, second.count, second.first, second.last, second.total) == (2, 3, 3, 4, 6)
    assert second.opening_depth == 2  # opens inside 1 > 2
    assert second.parent_page == {2: 1, 3: 2}
    third = page(order, 3, per_page=2)
    assert third is not None and third.parent_page == {1: 1, 5: 3}
    assert page(order, 0, per_page=2) is None and page(order, 4, per_page=2) is None
    assert [page_of(order, pk, per_page=2) for pk in (1, 2, 3, 4, 5, 6, 99)] == \
        [1, 1, 2, 2, 3, 3, None]
