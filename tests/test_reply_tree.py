"""The reply tree of a thread (listserv/reply_tree.py): parents from References, cycles cut."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from listserv.reply_tree import Post, build, flatten

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _posts(*specs: tuple[str, tuple[str, ...]]) -> list[Post]:
    return [Post(i + 1, mid, refs, T0 + timedelta(minutes=i)) for i, (mid, refs) in enumerate(specs)]


def _shape(posts: list[Post]) -> list[tuple[str, int]]:
    return [(n.post.message_id, n.depth) for n in flatten(build(posts))]


def test_replies_nest_under_their_nearest_known_ancestor() -> None:
    posts = _posts(("a", ()), ("b", ("a",)), ("c", ("a", "missing", "b")), ("d", ("a",)),
                   ("e", ("a", "gone")))
    assert _shape(posts) == [("a", 0), ("b", 1), ("c", 2), ("d", 1), ("e", 1)]


def test_posts_arrive_in_any_order() -> None:
    posts = _posts(("c", ("a", "b")), ("b", ("a",)), ("a", ()))
    assert _shape(posts) == [("a", 0), ("b", 1), ("c", 2)]


def test_subject_only_posts_are_roots_in_date_order() -> None:
    assert _shape(_posts(("x", ()), ("y", ()))) == [("x", 0), ("y", 0)]


def test_a_references_cycle_keeps_every_post_once() -> None:
    posts = _posts(("a", ("b",)), ("b", ("a",)), ("c", ("b",)))
    shape = _shape(posts)
    assert sorted(m for m, _ in shape) == ["a", "b", "c"]
    assert shape[0][1] == 0


def test_duplicate_message_ids_hang_under_the_first() -> None:
    posts = _posts(("a", ()), ("a", ()), ("b", ("a",)))
    roots = build(posts)
    assert next(n.post.pk for n in flatten(roots)) == 1
    assert {n.post.pk: n.parent for n in flatten(roots)}[3] == 1


def test_in_reply_to_wins_over_the_order_of_references() -> None:
    posts = [Post(1, "a", (), T0), Post(2, "b", ("a",), T0 + timedelta(minutes=1)),
             Post(3, "c", ("b", "a"), T0 + timedelta(minutes=2), in_reply_to="b")]
    assert _shape(posts) == [("a", 0), ("b", 1), ("c", 2)]
