"""The stored form of a rendered digest (``DigestCopy.rendered``): versioned JSON, not a pickle.

A digest is rendered once per format and kept until every member's copy has gone out, which
can span an upgrade. A pickle ties the stored bytes to the classes of the code that wrote them
(and unpickling runs whatever code the bytes name); this form holds only data:

    {"version": 1, "fmt": "plain|mime|html", "subject": str, "text": str,
     "items": [{"bytes": base64} | {"part": "plain|html", "text": str,
                                    "tokens": [[token, placeholder], ...], "description": str}]}

``items`` is the message from MIME-Version on: ready-made bytes, and text parts holding the
per-member placeholder tokens. A text part's derived fields (chunks, line sizes, 8bit or
base64) are computed again on load by ``render.text_part``, so stored digests follow any change
in how those are computed.

Invariants:
- ``load(dump(r)) == r`` for every ``Rendered`` that ``render.render`` makes.
- ``load`` reads every version ``dump`` has written (so far only 1); anything else, including
  an old pickle, raises ``StoredDigestError`` saying what it found.
- Migration 0007 writes version 1 itself, without importing this module.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from digests.render import Rendered, TextPart, text_part

VERSION = 1


class StoredDigestError(ValueError):
    """The stored bytes are not a digest this code can read."""


def dump(rendered: Rendered) -> bytes:
    doc = {"version": VERSION, "fmt": rendered.fmt, "subject": rendered.subject,
           "text": rendered.text, "items": [_dump_item(i) for i in rendered.items]}
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _dump_item(item: bytes | TextPart) -> dict[str, Any]:
    if isinstance(item, bytes):
        return {"bytes": base64.b64encode(item).decode("ascii")}
    return {"part": item.subtype, "text": item.text, "tokens": [list(t) for t in item.tokens],
            "description": item.description}


def load(data: bytes) -> Rendered:
    try:
        doc = json.loads(bytes(data).decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        kind = "a pickle (written before migration 0007)" if data[:1] == b"\x80" else "not JSON"
        raise StoredDigestError(f"the stored digest is {kind}; it cannot be sent") from None
    if not isinstance(doc, dict) or doc.get("version") != VERSION:
        found = doc.get("version") if isinstance(doc, dict) else type(doc).__name__
        raise StoredDigestError(f"the stored digest has version {found!r}; this code reads "
                                f"version {VERSION}")
    try:
        return Rendered(fmt=doc["fmt"], subject=doc["subject"], text=doc["text"],
                        items=tuple(_load_item(i) for i in doc["items"]))
    except (KeyError, TypeError, ValueError, binascii.Error) as e:
        raise StoredDigestError(f"the stored digest is damaged: {e!r}") from None


def _load_item(item: dict[str, Any]) -> bytes | TextPart:
    if "bytes" in item:
        return base64.b64decode(item["bytes"], validate=True)
    tokens = {placeholder: token for token, placeholder in item["tokens"]}
    return text_part(item["part"], item["text"], tokens, item.get("description", ""))
