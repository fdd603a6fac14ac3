"""A real SMTP sink for tests: aiosmtpd on 127.0.0.1, a free port, in its own thread.

It plays the smarthost (or any SMTP server a test talks to) and records every message it
accepts. Replies can be scripted, so tests exercise retries, bounces and dropped connections
through real sockets instead of mocks.

    with SmtpSink() as sink:                      # sink.host, sink.port
        sink.script_data(451, 250)                # 1st DATA -> 451, 2nd -> 250, then 250s
        sink.rcpt_replies["gone@example.org"] = 550
        sink.mail_replies["odd@example.org"] = 553   # MAIL FROM that sender
        sink.script_data(DROP)                    # next DATA: close the connection, no reply
        ...
        await sink.wait_for(3)                    # from async tests (polls, never blocks)
        assert [m.rcpt_tos for m in sink.messages] == [...]
        assert len(sink.sessions) <= 4            # connections that reached the sink

Invariants:
- ``messages`` holds only messages answered with 250, in the order they were accepted, each
  with the number of the connection (``session``) it came over; connections are numbered from
  1 in the order they were opened. Aiosmtpd's own start-up probe connection is not counted.
- A scripted reply is consumed by exactly one command; when the DATA script is empty the answer
  is ``250``. ``rcpt_replies`` is a standing per-address answer (an address is compared
  case-insensitively) and is used for every RCPT to that address until removed.
- A reply may be an int (a default text is added), a full ``"451 4.3.0 text"`` string, or
  ``DROP``, which closes the connection instead of answering.
- ``mail_replies`` is the same for MAIL, by sender address.
- ``SmtpSink(pipelining=True)`` advertises PIPELINING (RFC 2920; aiosmtpd reads one command
  line at a time from a buffered stream, so a pipelined group is answered in order), and
  ``wire[n]`` keeps every chunk connection n's client sent, as it was read.
- ``SmtpSink(tls_context=ctx)`` offers STARTTLS with that server context.
- All attributes may be changed from the test's thread while the sink runs; the sink's own
  loop runs in a separate thread, so the test's event loop is never blocked by it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ssl
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session


class _Drop:
    def __repr__(self) -> str:
        return "DROP"


DROP: Final = _Drop()
"""A scripted "reply" that closes the connection without answering."""

Reply = int | str | _Drop

_TEXT = {250: "2.0.0 OK", 421: "4.3.2 Service shutting down", 450: "4.2.0 Mailbox busy",
         451: "4.3.0 Try again later", 452: "4.3.1 Insufficient storage",
         550: "5.1.1 No such user", 552: "5.3.4 Message too big", 554: "5.7.1 Rejected"}


def _reply_text(reply: int | str) -> str:
    if isinstance(reply, int):
        return f"{reply} {_TEXT.get(reply, 'scripted reply')}"
    return reply


@dataclass(frozen=True)
class Received:
    """One accepted message: the envelope, the bytes as sent, and its connection number."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    session: int


class _SinkSMTP(SMTP):
    """aiosmtpd's SMTP with connection tracking, so the sink can count and drop connections."""

    def __init__(self, sink: SmtpSink, number: int, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sink = sink
        self.number = number

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.sink._opened(self)

    def connection_lost(self, error: Exception | None) -> None:
        self.sink._closed(self)
        super().connection_lost(error)

    def data_received(self, data: bytes) -> None:
        if self.number:
            self.sink.wire.setdefault(self.number, []).append(data)
        super().data_received(data)


class _Controller(Controller):
    def __init__(self, sink: SmtpSink) -> None:
        super().__init__(sink, hostname=sink.host, port=sink.port, tls_context=sink.tls_context)
        self.sink = sink
        self._probed = False

    def factory(self) -> SMTP:
        # The first connection is aiosmtpd's own probe from start(): number 0, never recorded.
        number = self.sink._next_number() if self._probed else 0
        self._probed = True
        return _SinkSMTP(self.sink, number, self.handler, **self.SMTP_kwargs)

    def _trigger_server(self) -> None:
        # Bound to port 0 the first time: learn the real port before aiosmtpd probes it.
        assert isinstance(self.server, asyncio.Server)
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()  # type: ignore[no-untyped-call]


class SmtpSink:
    """The sink itself: it is also the aiosmtpd handler (``handle_RCPT``, ``handle_DATA``)."""

    def __init__(self, *, host: str = "127.0.0.1", delay: float = 0.0,
                 data_replies: Iterable[Reply] = (),
                 rcpt_replies: dict[str, Reply] | None = None,
                 mail_replies: dict[str, Reply] | None = None,
                 pipelining: bool = False, tls_context: ssl.SSLContext | None = None) -> None:
        self.host = host
        self.pipelining = pipelining
        self.tls_context = tls_context  # offers STARTTLS with it
        self.mail_replies: dict[str, Reply] = dict(mail_replies or {})
        self.wire: dict[int, list[bytes]] = {}  # connection number -> chunks the client sent
        self.port = 0
        self.delay = delay  # seconds to wait before answering each DATA
        self.rcpt_replies: dict[str, Reply] = dict(rcpt_replies or {})
        self.messages: list[Received] = []
        self.sessions: list[int] = []  # numbers of the connections opened, in order
        self.data_commands = 0  # every DATA answered or dropped, accepted or not
        self._data_script: collections.deque[Reply] = collections.deque(data_replies)
        self._open: set[_SinkSMTP] = set()
        self._lock = threading.Lock()
        self._numbers = 0
        self._controller: _Controller | None = None

    # --- running --------------------------------------------------------------------------

    def start(self) -> SmtpSink:
        """Listen (again): after ``stop`` the sink comes back on the same port, as a
        restarted smarthost would; recorded messages and sessions are kept."""
        if self._controller is None:
            self._controller = _Controller(self)
            self._controller.start()
            self.port = self._controller.port
        return self

    def stop(self) -> None:
        """Stop listening and close every connection (idempotent)."""
        controller, self._controller = self._controller, None
        if controller is not None:
            # Connections closed, and closed through (connection_lost), while the loop runs:
            # a transport left "closing" on a stopped loop is collected later as an unclosed
            # one, a ResourceWarning (an error here) in whichever test runs then.
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self._close_all(), controller.loop).result(5)
            controller.stop()

    async def _close_all(self) -> None:
        with self._lock:
            servers = list(self._open)
        for server in servers:
            _close(server)
        for _ in range(3):  # close() calls connection_lost on the loop's next turn
            await asyncio.sleep(0)

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- scripting ------------------------------------------------------------------------

    def script_data(self, *replies: Reply) -> None:
        """Answer the next DATA commands with these replies, in order (then 250 again)."""
        with self._lock:
            self._data_script.extend(replies)

    def drop_connections(self) -> None:
        """Close every open connection now, but keep listening."""
        with self._lock:
            servers = list(self._open)
        for server in servers:
            server.loop.call_soon_threadsafe(_close, server)

    @property
    def open_connections(self) -> int:
        with self._lock:
            return len(self._open)

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """Wait (without blocking the caller's loop) until ``count`` messages were accepted."""
        deadline = time.monotonic() + timeout
        while len(self.messages) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"sink got {len(self.messages)} of {count} messages")
            await asyncio.sleep(0.01)
        return list(self.messages)

    # --- aiosmtpd hooks (run in the sink's thread) ----------------------------------------

    async def handle_EHLO(self, server: SMTP, session: Session, envelope: Envelope,
                          hostname: str, responses: list[str]) -> list[str]:
        session.host_name = hostname  # defining this hook turns off the default
        if self.pipelining:
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, mail_options: list[str]) -> str | None:
        wanted = address.lower()
        reply = next((r for a, r in list(self.mail_replies.items()) if a.lower() == wanted), None)
        if reply is None:
            envelope.mail_from = address  # defining this hook turns off the default
            envelope.mail_options.extend(mail_options)
            return "250 OK"
        return _answer(server, reply)

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str | None:
        wanted = address.lower()
        reply = next((r for a, r in list(self.rcpt_replies.items()) if a.lower() == wanted), None)
        if reply is None:
            envelope.rcpt_tos.append(address)  # defining this hook turns off the default
            return "250 OK"
        return _answer(server, reply)

    async def handle_DATA(self, server: SMTP, session: Session,
                          envelope: Envelope) -> str | None:
        if self.delay:
            await asyncio.sleep(self.delay)
        with self._lock:
            self.data_commands += 1
            reply: Reply = self._data_script.popleft() if self._data_script else 250
        if reply == 250 or (isinstance(reply, str) and reply.startswith("250")):
            assert isinstance(server, _SinkSMTP)
            content = envelope.original_content or b""
            self.messages.append(Received(
                mail_from=envelope.mail_from or "", rcpt_tos=tuple(envelope.rcpt_tos),
                data=content, session=server.number))
        return _answer(server, reply)

    # --- connection tracking (called by _SinkSMTP in the sink's thread) -------------------

    def _next_number(self) -> int:
        with self._lock:
            self._numbers += 1
            return self._numbers

    def _opened(self, server: _SinkSMTP) -> None:
        if server.number == 0:
            return
        with self._lock:
            self._open.add(server)
            self.sessions.append(server.number)

    def _closed(self, server: _SinkSMTP) -> None:
        with self._lock:
            self._open.discard(server)


def _close(server: SMTP) -> None:
    if server.transport is not None:
        server.transport.close()


def _answer(server: SMTP, reply: Reply) -> str | None:
    if isinstance(reply, _Drop):
        _close(server)
        # aiosmtpd writes this reply to the closed transport, where it goes nowhere.
        return "421 4.3.2 Connection dropped"
    return _reply_text(reply)
