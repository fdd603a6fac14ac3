"""Logging set-up: one line per event, with the structured fields (list, message, member…)
that the code passes as ``extra=`` appended as ``key=value`` so they can be grepped and parsed.
"""

from __future__ import annotations

import logging

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
# uvicorn's "color_message" repeats the message with terminal colour codes.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "color_message"}


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = {k: v for k, v in vars(record).items() if k not in _STANDARD}
        if fields:
            line += " " + " ".join(f"{k}={_quote(v)}" for k, v in sorted(fields.items()))
        return line


def _quote(value: object) -> str:
    text = str(value)
    return f'"{text}"' if (not text or any(c.isspace() or c == '"' for c in text)) else text


def configure(verbose: bool = False, *, level: int = logging.INFO) -> None:
    """``level`` when not ``verbose`` (debug): INFO for the server, WARNING for one-shot commands,
    whose output is for the person at the terminal."""
    handler = logging.StreamHandler()
    handler.setFormatter(KeyValueFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else level)
    # Library chatter (every SMTP session) drowns the list server's own events.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("apscheduler.executors").setLevel(logging.WARNING)  # a line per job run
