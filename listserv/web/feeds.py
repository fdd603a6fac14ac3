"""The Atom feed of a list's new threads (RFC 4287).

Pure: data in, bytes or text out. The feed is built with ElementTree, so every title, name and
summary is escaped as XML text; links are absolute (``web_base_url``), as feed readers need.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime

from listserv import bodytext, links, quotes
from listserv.archive import Author, ThreadRow
from listserv.models import MailingList, Message

ATOM = "http://www.w3.org/2005/Atom"
SUMMARY_CHARS = 400


def _text(parent: ET.Element, tag: str, text: str, **attrs: str) -> ET.Element:
    el = ET.SubElement(parent, f"{{{ATOM}}}{tag}", attrs)
    el.text = text
    return el


def _summary(msg: Message) -> str:
    words = " ".join(_clean_xml(quotes.trim(bodytext.first_text(msg.raw))).split())
    return words if len(words) <= SUMMARY_CHARS else words[:SUMMARY_CHARS - 1].rstrip() + "…"


def _clean_xml(text: str) -> str:
    # XML 1.0 forbids most control characters; mail can hold them.
    return "".join(ch for ch in text if ch in "\t\n\r" or ord(ch) >= 32)


def atom(base: str, ml: MailingList, entries: list[tuple[ThreadRow, Message | None]],
         authors: dict[int, Author], now: datetime) -> bytes:
    """The feed of ``entries`` (newest first) for ``ml``."""
    ET.register_namespace("", ATOM)
    feed = ET.Element(f"{{{ATOM}}}feed")
    home = links.archive_url(base, ml.name)
    _text(feed, "id", home)
    _text(feed, "title", _clean_xml(f"{ml.name}: new threads"))
    if ml.description:
        _text(feed, "subtitle", _clean_xml(ml.description))
    _text(feed, "updated", (entries[0][0].started if entries else now).isoformat())
    ET.SubElement(feed, f"{{{ATOM}}}link", {"rel": "alternate", "type": "text/html", "href": home})
    ET.SubElement(feed, f"{{{ATOM}}}link", {"rel": "self", "type": "application/atom+xml",
                                            "href": f"{home}feed.atom"})
    for row, opening in entries:
        entry = ET.SubElement(feed, f"{{{ATOM}}}entry")
        url = links.thread_url(base, ml.name, row.id)
        _text(entry, "id", url)
        _text(entry, "title", _clean_xml(row.subject or "(no subject)"))
        _text(entry, "updated", row.started.isoformat())
        _text(entry, "published", row.started.isoformat())
        ET.SubElement(entry, f"{{{ATOM}}}link", {"rel": "alternate", "type": "text/html",
                                                 "href": url})
        author = authors.get(opening.id) if opening is not None and opening.id else None
        who = ET.SubElement(entry, f"{{{ATOM}}}author")
        name = author.name if author else (row.participants[0] if row.participants else ml.name)
        if author and author.badge:
            name = f"{name} ({author.badge})"
        _text(who, "name", _clean_xml(name))
        if opening is not None:
            _text(entry, "summary", _clean_xml(_summary(opening)), type="text")
    body: bytes = ET.tostring(feed, encoding="utf-8", xml_declaration=False)
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + body
