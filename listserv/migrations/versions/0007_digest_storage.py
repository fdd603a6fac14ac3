"""digest storage: rendered digests are kept as versioned JSON, not as pickles

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01

No schema change: digest_copy.rendered keeps its type and now holds digests/stored.py's
version 1 JSON. Rows pickled by the earlier code are converted here. The conversion is written
out in this file (it does not import digests/) so that it keeps working whatever that code
becomes, and it never runs code a pickle names: only digests.render.Rendered and TextPart are
recognised, read as plain field values. A row that is not such a pickle is left as it was and
logged; sending it then fails with a message saying so.
"""
from __future__ import annotations

import base64
import io
import json
import logging
import pickle
from typing import Any

import sqlalchemy as sa
from alembic import op


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")


class _Fields:
    """What an old pickled object becomes here: its field values, no behaviour."""


class _Rendered(_Fields):
    pass


class _TextPart(_Fields):
    pass


class _DigestUnpickler(pickle.Unpickler):
    _KNOWN = {("digests.render", "Rendered"): _Rendered, ("digests.render", "TextPart"): _TextPart}

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._KNOWN[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"{module}.{name} is not part of a stored digest") from None


def _as_version_1(pickled: bytes) -> bytes:
    rendered = _DigestUnpickler(io.BytesIO(pickled)).load()
    if not isinstance(rendered, _Rendered):
        raise pickle.UnpicklingError(f"a {type(rendered).__name__}, not a rendered digest")
    r = vars(rendered)
    items: list[dict[str, Any]] = []
    for item in r["items"]:
        if isinstance(item, bytes):
            items.append({"bytes": base64.b64encode(item).decode("ascii")})
        elif isinstance(item, _TextPart):
            part = vars(item)
            items.append({"part": part["subtype"], "text": part["text"],
                          "tokens": [[str(tok), str(ph)] for tok, ph in part["tokens"]],
                          "description": part.get("description", "")})
        else:
            raise pickle.UnpicklingError(f"an item of type {type(item).__name__}")
    doc = {"version": 1, "fmt": r["fmt"], "subject": r["subject"], "text": r["text"],
           "items": items}
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _rows(conn: sa.Connection) -> list[int]:
    return list(conn.execute(sa.text("SELECT id FROM digest_copy ORDER BY id")).scalars())


def _convert(change: Any, *, skip_prefix: bytes) -> None:
    conn = op.get_bind()
    # One row at a time: a MIME digest can be megabytes.
    for copy_id in _rows(conn):
        data = conn.execute(sa.text("SELECT rendered FROM digest_copy WHERE id = :id"),
                            {"id": copy_id}).scalar_one()
        data = bytes(data)
        if data.startswith(skip_prefix):
            continue
        try:
            new = change(data)
        except Exception as e:  # a damaged row must not stop the upgrade of everything else
            log.warning("digest_copy %s left as it was: %s", copy_id, e)
            continue
        conn.execute(sa.text("UPDATE digest_copy SET rendered = :data WHERE id = :id"),
                     {"data": new, "id": copy_id})


def upgrade() -> None:
    _convert(_as_version_1, skip_prefix=b"{")  # already JSON (a re-run)


def downgrade() -> None:
    # The earlier code unpickles digests.render.Rendered: give it that, made by this code.
    from digests import stored

    _convert(lambda data: pickle.dumps(stored.load(data)), skip_prefix=b"\x80")
