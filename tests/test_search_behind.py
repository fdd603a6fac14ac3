"""PostgreSQL's search index filled behind the posts (``listserv.search_behind``, migration
0024): a post is found from its commit and after indexing alike, the indexer writes only the
rows not yet indexed, a batch a transaction, and ``serve`` runs it once the pipeline is idle."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import text

from listserv import config as config_mod
from listserv import search_behind, search_index
from listserv.search_behind import Indexer, due, index_pending
from listserv.store import Store
from tests.harness import mail, make_list, running, wait_until
from tests.test_search import _downgrade_to, _find, _post


def _pg_only(store_or_url: Store | str) -> None:
    url = store_or_url if isinstance(store_or_url, str) else str(store_or_url.engine.url)
    if url.startswith("sqlite"):
        pytest.skip("SQLite indexes in the post's transaction (FTS5 triggers): nothing behind")


def _tsv(store: Store) -> dict[int, str | None]:
    with store.engine.connect() as conn:
        rows = conn.execute(text("SELECT message_pk, tsv::text FROM search_text"))
        return {int(pk): tsv for pk, tsv in rows}


def _consistent(store: Store) -> bool:
    """Every filled tsv is search_tsv of its row's text."""
    with store.engine.connect() as conn:
        return bool(conn.execute(text(
            "SELECT coalesce(bool_and(tsv = search_tsv(subject, author, body)), true) "
            "FROM search_text WHERE tsv IS NOT NULL")).scalar_one())


@pytest.fixture
def ranked(store: Store) -> dict[str, int]:
    """Posts that match "moodle hosting" with different ranks, accents and folded letters."""
    _pg_only(store)
    make_list(store, "demo", members=("ann@example.org", "jose@example.org"))
    return {
        "subject": _post(store, "Ann Archer <ann@example.org>", "Moodle hosting costs",
                         "We moved our learning platform to a hosted Moodle last spring.\n"
                         ).message_pk,
        "body": _post(store, "ann@example.org", "Platforms",
                      "Hosting for Moodle: three quotes, one from Tromsø.\n").message_pk,
        "accents": _post(store, "José Núñez <jose@example.org>", "Café notes",
                         "A naïve résumé of moodle hosting on the Große Straße.\n").message_pk,
        "other": _post(store, "ann@example.org", "Unrelated", "Nothing to see.\n").message_pk,
    }


QUERIES = ("moodle hosting", "moodle", "tromso", "strasse", "Archer", "resume", '"moodle hosting"')


def test_a_post_is_found_before_and_after_indexing_with_the_same_rank_and_snippet(
        store: Store, ranked: dict[str, int]) -> None:
    assert set(_tsv(store).values()) == {None}  # the posts' transactions left tsv to the indexer
    before = [_find(store, q, "demo") for q in QUERIES]
    assert {h.message_pk for h in before[0].hits} == {ranked["subject"], ranked["accents"],
                                                      ranked["body"]}
    with store.engine.begin() as conn:  # half indexed: both kinds of rows in one ranking
        assert search_behind.index_batch(conn, 2) == 2
    mixed = [_find(store, q, "demo") for q in QUERIES]
    index_pending(store)
    assert None not in _tsv(store).values() and _consistent(store)
    after = [_find(store, q, "demo") for q in QUERIES]
    assert all(r.hits for r in before)
    assert before == mixed == after  # same posts, same order (rank), same snippets


def test_the_indexer_writes_only_rows_not_yet_indexed_in_batches_and_once(store: Store) -> None:
    _pg_only(store)
    make_list(store, "demo", members=("ann@example.org",))
    pks = [_post(store, "ann@example.org", f"Topic {i}", f"Words about item{i}.\n").message_pk
           for i in range(5)]
    with store.engine.begin() as conn:  # not search_tsv's: a rewrite of an indexed row shows
        conn.execute(text("UPDATE search_text SET tsv = to_tsvector('sentinel') "
                          "WHERE message_pk = :pk"), {"pk": pks[2]})
    done = index_pending(store, batch=2)
    assert (done.rows, done.batches, done.more) == (4, 3, False)  # 2 + 2 + 0
    tsv = _tsv(store)
    assert tsv[pks[2]] == "'sentinel':1" and None not in tsv.values()
    assert index_pending(store, batch=2).rows == 0  # idempotent
    new = [_post(store, "ann@example.org", f"Later {i}").message_pk for i in range(3)]
    paused = index_pending(store, batch=2, keep_going=lambda: False)
    assert (paused.rows, paused.batches, paused.more) == (2, 1, True)
    assert [pk for pk in new if _tsv(store)[pk] is None] == [new[2]]  # oldest first


def test_an_edit_of_a_posts_text_unindexes_it_and_it_is_still_found(store: Store) -> None:
    _pg_only(store)
    make_list(store, "demo", members=("ann@example.org",))
    pk = _post(store, "ann@example.org", "Meetup", "In Tromsø.\n").message_pk
    index_pending(store)
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE search_text SET tsv = tsv WHERE message_pk = :pk"), {"pk": pk})
        assert _tsv(store)[pk] is not None  # not the text: kept
        conn.execute(text("UPDATE search_text SET body = 'Næstved' WHERE message_pk = :pk"),
                     {"pk": pk})
    assert _tsv(store)[pk] is None
    assert [h.message_pk for h in _find(store, "naestved", "demo").hits] == [pk]
    assert _find(store, "tromso", "demo").hits == ()
    assert search_index.rebuild(store) == 1  # reindex-search indexes it before its REINDEX
    assert _tsv(store)[pk] is not None and _consistent(store)
    assert [h.message_pk for h in _find(store, "naestved", "demo").hits] == [pk]


def test_0024_keeps_each_tsv_and_its_downgrade_restores_the_generated_column(
        db_url: str) -> None:
    _pg_only(db_url)
    store = Store(db_url)

    def column() -> tuple[str, str | None]:
        with store.engine.connect() as conn:
            return tuple(conn.execute(text(  # type: ignore[return-value]
                "SELECT is_generated, generation_expression FROM information_schema.columns "
                "WHERE table_name = 'search_text' AND column_name = 'tsv'")).one())

    try:
        store.upgrade()
        make_list(store, "demo", members=("jose@example.org", "ann@example.org"))
        _post(store, "Þórður Núñez <jose@example.org>", "Café in Tromsø",
              "A naïve résumé on the Große Straße, cœur léger.\n")
        _post(store, "ann@example.org", "The cafe at noon", "Plain letters only: resume.\n")
        assert column() == ("NEVER", None)
        _downgrade_to(store, "0023")
        assert column()[0] == "ALWAYS" and "octet_length" in str(column()[1])
        generated = _tsv(store)
        assert None not in generated.values()
        store.upgrade()
        assert column() == ("NEVER", None)
        assert _tsv(store) == generated  # kept, not emptied nor recomputed
        assert _consistent(store)  # search_tsv is the generated expression
        with store.engine.connect() as conn:
            assert conn.execute(text(
                "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_search_text_unindexed'"
            )).scalar_one().endswith("WHERE (tsv IS NULL)")
        assert len(_find(store, "tromso strasse", "demo").hits) == 1
    finally:
        store.dispose()


def test_due_only_once_the_pipeline_is_quiet_and_there_may_be_rows() -> None:
    look = {"handled": 5, "seen": 4, "more": False, "since_look": 0.0, "quiet": 1.0,
            "sweep": 60.0}
    assert not due(idle_for=None, **look)  # busy
    assert not due(idle_for=0.5, **look)  # idle, not yet quiet
    assert due(idle_for=1.0, **look)  # handled posts since the last look
    assert not due(idle_for=1.0, **{**look, "seen": 5})  # nothing new
    assert due(idle_for=1.0, **{**look, "seen": 5, "more": True})  # the last look paused
    assert due(idle_for=9.0, **{**look, "seen": 5, "since_look": 60.0})  # a sweep
    assert not due(idle_for=None, **{**look, "since_look": 59.0, "more": True})  # busy
    # Busy for longer than a sweep: a batch all the same (the backlog cannot grow unbounded).
    assert due(idle_for=None, **{**look, "since_look": 60.0})


def test_the_indexer_waits_while_the_pipeline_is_busy(store: Store) -> None:
    _pg_only(store)
    make_list(store, "demo", members=("ann@example.org",))
    pk = _post(store, "ann@example.org", "Waiting").message_pk
    state: dict[str, float | None] = {"idle_since": None}

    async def run() -> int:
        indexer = Indexer(store, lambda: state["idle_since"], lambda: 1, quiet=0.0,
                          tick=0.01)
        await indexer.start()
        try:
            for _ in range(20):  # twenty looks while busy
                await asyncio.sleep(0.01)
            assert indexer.indexed == 0 and _tsv(store)[pk] is None
            state["idle_since"] = 0.0
            async with asyncio.timeout(10):
                while indexer.indexed == 0:
                    await asyncio.sleep(0.01)
        finally:
            await indexer.stop()
        return indexer.indexed

    assert asyncio.run(run()) == 1
    assert _tsv(store)[pk] is not None


def test_serve_indexes_new_posts_once_the_pipeline_is_idle(store: Store,
                                                           config_path: Path) -> None:
    _pg_only(store)
    make_list(store, "demo", members=("ann@example.org",))
    cfg = config_mod.load(config_path, env={})
    with running(cfg, store) as server:
        assert server.app.indexer is not None
        to = f"demo@{cfg.server.domain}"
        server.send("ann@example.org", to,
                    mail("ann@example.org", to, "Found at once", "Tromsø notes.\n"))
        [hit] = _find(store, "tromso", "demo").hits  # handled: found, indexed or not
        wait_until(lambda: _tsv(store)[hit.message_pk] is not None, 15, "the indexer")
        assert _find(store, "tromso", "demo").hits == (hit,)
