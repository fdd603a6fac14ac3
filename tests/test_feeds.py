"""The Atom feed (listserv/web/feeds.py): well-formed whatever the mail holds."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime

from listserv.archive import Author, ThreadRow
from listserv.models import MailingList, Message
from listserv.web.feeds import atom

NS = {"a": "http://www.w3.org/2005/Atom"}
T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def test_hostile_subjects_names_and_bodies_stay_text_in_well_formed_xml() -> None:
    row = ThreadRow(7, "<script>alert(1)</script> \x00\x1b & ]]>", T0, T0, 1, ("M",), 1)
    raw = (b"From: m@x\r\nSubject: x\r\nContent-Type: text/plain\r\n\r\n"
           b"Body with <b>tags</b> & \x07 a bell.\r\n")
    opening = Message(id=3, list_id=1, message_id="a@x", raw=raw)
    ml = MailingList(id=1, name="demo", description="Demo & <friends>")
    xml = atom("https://lists.example.org", ml, [(row, opening)],
               {3: Author("Eve <eve@x>", "Acme", True)}, T0)
    root = ET.fromstring(xml)
    entry = root.find("a:entry", NS)
    assert entry is not None
    assert entry.findtext("a:title", namespaces=NS) == "<script>alert(1)</script>  & ]]>"
    assert entry.findtext("a:author/a:name", namespaces=NS) == "Eve <eve@x> (Acme, vendor)"
    assert entry.findtext("a:summary", namespaces=NS) == "Body with <b>tags</b> & a bell."
    assert root.findtext("a:subtitle", namespaces=NS) == "Demo & <friends>"
    assert b"<script>" not in xml  # escaped as text, never markup


def test_an_empty_list_has_a_valid_feed() -> None:
    root = ET.fromstring(atom("https://x", MailingList(id=1, name="demo"), [], {}, T0))
    assert root.findall("a:entry", NS) == []
    assert root.findtext("a:updated", namespaces=NS) == T0.isoformat()
