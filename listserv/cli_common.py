"""What every ``commonroom`` command shares: the configuration and store it opens, and the
lookups that turn a bad list name or address into a message saying what to do."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click
from sqlmodel import Session

from listserv import config as config_mod
from listserv import lists, subscriptions
from listserv.config import Config, ConfigError
from listserv.models import MailingList
from listserv.store import Store


class Ctx:
    def __init__(self, config_path: str | None) -> None:
        self.config_path = config_path
        self.verbose = False
        self._cfg: Config | None = None

    @property
    def cfg(self) -> Config:
        if self._cfg is None:
            try:
                self._cfg = config_mod.load(self.config_path)
            except ConfigError as e:
                raise click.ClickException(f"configuration: {e}") from None
        return self._cfg

    def store(self) -> Store:
        return Store(self.cfg.database_url)

    @contextmanager
    def open_store(self) -> Iterator[Store]:
        """The store, checked to be at the current schema; closed afterwards."""
        from listserv.serve import schema_problem

        store = self.store()
        try:
            problem = schema_problem(store)
            if problem:
                raise click.ClickException(problem)
            yield store
        finally:
            store.dispose()

    @contextmanager
    def session(self) -> Iterator[tuple[Store, Session]]:
        with self.open_store() as store, store.session() as s:
            yield store, s


pass_ctx = click.make_pass_decorator(Ctx)


def list_or_fail(s: Session, name: str) -> MailingList:
    ml = lists.find(s, name)
    if ml is None:
        names = ", ".join(lists.all_names(s))
        raise click.ClickException(f"there is no list called '{name}' "
                                   f"(lists: {names or 'none yet; create one with lists create'})")
    return ml


def address_or_fail(text: str) -> str:
    email = subscriptions.canonical(text)
    if email is None:
        raise click.ClickException(f"'{text}' is not an email address")
    return email
