"""The schema's revision: the newest migration's, and the one a database is at.

Read without Alembic, so that a server checking its schema at start-up does not keep Alembic
(and Mako, and Pygments through it: ~11 MB) loaded for the rest of its life. Alembic remains
what writes the schema (``Store.upgrade``); tests/test_idle_imports.py checks that ``head``
agrees with Alembic's.
"""

from __future__ import annotations

import ast
from pathlib import Path

from sqlalchemy import Engine, inspect, text

VERSION_TABLE = "alembic_version"  # Alembic's default, which migrations/env.py keeps


def _revisions(path: Path) -> tuple[str, tuple[str, ...]]:
    """A migration file's ``revision`` and its ``down_revision`` (none, one, or a merge's)."""
    found: dict[str, object] = {}
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if (isinstance(node, (ast.Assign, ast.AnnAssign))
                and isinstance(target := (node.targets[0] if isinstance(node, ast.Assign)
                                          else node.target), ast.Name)
                and target.id in ("revision", "down_revision") and node.value is not None):
            found[target.id] = ast.literal_eval(node.value)
    down = found.get("down_revision")
    downs = () if down is None else (down,) if isinstance(down, str) else tuple(down)  # type: ignore[arg-type]
    return str(found["revision"]), downs


def head(versions: Path) -> str:
    """The one revision no other migration follows."""
    revisions = dict(_revisions(p) for p in sorted(versions.glob("*.py")))
    followed = {d for downs in revisions.values() for d in downs}
    heads = sorted(set(revisions) - followed)
    if len(heads) != 1:
        raise RuntimeError(f"the migrations in {versions} have {len(heads)} heads: {heads}")
    return heads[0]


def current(engine: Engine) -> str | None:
    """The revision the database is at; None when it was never migrated."""
    with engine.connect() as conn:
        if not inspect(conn).has_table(VERSION_TABLE):
            return None
        return conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()
