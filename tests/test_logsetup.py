"""Structured log lines: extra fields come out as key=value."""

from __future__ import annotations

import logging

from listserv.logsetup import KeyValueFormatter


def test_extra_fields_are_appended() -> None:
    record = logging.LogRecord("commonroom.posting", logging.INFO, "x.py", 1, "post %s", ("m1",),
                               None)
    record.list = "demo"
    record.sender = "ann@council.gov.uk"
    record.reason = "not a member"
    line = KeyValueFormatter("%(name)s %(message)s").format(record)
    assert line == ('commonroom.posting post m1 list=demo reason="not a member" '
                    "sender=ann@council.gov.uk")


def test_uvicorns_coloured_copy_of_the_message_is_left_out() -> None:
    record = logging.LogRecord("uvicorn.error", logging.INFO, "", 0, "Started server process [%d]",
                               (42,), None)
    record.color_message = "Started server process [\x1b[36m%d\x1b[0m]"
    line = KeyValueFormatter("%(message)s").format(record)
    assert line == "Started server process [42]"
