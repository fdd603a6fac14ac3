"""How one finished message leaves: to the smarthost over SMTP, or into a Maildir.

The outbox worker owns the decisions (retry when, give up when); a transport only sends and
says what happened, as a ``SendResult`` value. Expected failures never raise.

Invariants:
- ``send`` returns SENT only when the receiver took responsibility for the message (a 250
  to DATA, or the file is in the Maildir's ``new/``).
- Every reply is classified by its first digit: 2xx SENT, 4xx RETRY, 5xx BOUNCE. Trouble
  with the connection itself (refused, dropped, timed out, a bad greeting or EHLO) is RETRY
  with ``code`` 0, whatever the server said: it says nothing about the recipient.
- ``SmtpTransport`` keeps one connection and reuses it for every message; after a refused
  transaction it sends RSET so the connection stays usable, and after any connection
  trouble it drops the connection and dials again on the next ``send``.
- When the smarthost advertises PIPELINING (RFC 2920), MAIL, RCPT and DATA go out in one
  write and their replies are read in order: the outcome is the first refusal among them (a
  DATA refused after a refused MAIL or RCPT says nothing of its own), and a DATA accepted
  anyway gets an empty message (".") before the RSET. The bytes sent are the same commands
  and message as without PIPELINING, where each command waits for its reply.
- Chaining (RFC 2920 3.1, ``send_then``): when the caller already has the next copy, its MAIL,
  RCPT and DATA follow this copy's message and end-of-data dot in the same write, and the
  replies are read in order (250 for this message, then the next copy's three). A copy is
  SENT only on its own 250 after its message, and each copy's outcome is the one it has
  unchained; the only differences on the wire are that a refused message is not followed by
  RSET (its transaction ended with that reply; an RSET would end the next one), and that a
  transport closed with a copy announced closes the connection without QUIT (the server is
  in DATA: closing aborts it, nothing is delivered). A connection found lost before any reply
  to an announced copy is dialled again for it (its message was never written).
- A transport is used by one task at a time (the worker gives each sender task its own).
"""

from __future__ import annotations

import asyncio
import collections
import enum
import functools
import importlib
import inspect
import logging
import mailbox
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import aiosmtplib

log = logging.getLogger("commonroom.transports")


class Outcome(enum.StrEnum):
    SENT = "sent"
    RETRY = "retry"
    BOUNCE = "bounce"


@dataclass(frozen=True, slots=True)
class SendResult:
    outcome: Outcome
    code: int  # the SMTP reply code; 0 when there was no usable reply
    detail: str

    @property
    def status(self) -> str:
        """The reply as a person reads it: ``"550 5.1.1 No such user"``."""
        return f"{self.code} {self.detail}".strip() if self.code else self.detail


class Transport(Protocol):
    async def send(self, sender: str, recipient: str, data: bytes) -> SendResult: ...

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Copy:
    """One copy to send: what ``Transport.send`` takes."""

    sender: str
    recipient: str
    data: bytes


@runtime_checkable
class Chaining(Protocol):
    """A transport that can start the next copy's transaction with this one's message
    (``SmtpTransport``): the caller's next call must be for ``then`` (any other call, or
    ``close``, abandons it safely, at the cost of the connection)."""

    async def send_then(self, sender: str, recipient: str, data: bytes,
                        then: Copy | None) -> SendResult: ...


def classify(code: int, detail: str) -> SendResult:
    """The outcome an SMTP reply code means for this message."""
    if 200 <= code < 300:
        return SendResult(Outcome.SENT, code, detail)
    if 500 <= code < 600:
        return SendResult(Outcome.BOUNCE, code, detail)
    return SendResult(Outcome.RETRY, code, detail)


class SmtpTransport:
    """One reusable aiosmtplib connection to the smarthost."""

    def __init__(self, host: str, port: int, timeout: float = 30.0, *,
                 local_hostname: str | None = None, start_tls: bool | None = False) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        # None would make aiosmtplib call getfqdn() in a thread on every connect.
        self.local_hostname = local_hostname or "localhost"
        # The smarthost is our own MTA, usually on loopback or a private network: no TLS
        # unless asked (None means "when offered"), so a self-signed certificate cannot stall
        # delivery.
        self.start_tls = start_tls
        self._smtp: aiosmtplib.SMTP | None = None
        self._announced: _Announced | None = None  # the next copy's group, written with a message

    async def send(self, sender: str, recipient: str, data: bytes) -> SendResult:
        return await self.send_then(sender, recipient, data, None)

    async def send_then(self, sender: str, recipient: str, data: bytes,
                        then: Copy | None) -> SendResult:
        """``send``; on a pipelining connection ``then``'s MAIL, RCPT and DATA may go in the
        write of this copy's message, and the next call must be for ``then``."""
        announced, self._announced = self._announced, None
        if announced is not None and not announced.is_for(self._smtp, sender, recipient, data):
            self._drop()  # not the copy announced: closing aborts the DATA the server is in
            announced = None
        result = await self._send(sender, recipient, data, then, announced)
        if result is None:  # the connection was gone before any reply to the announced copy
            result = await self._send(sender, recipient, data, then, None)
        assert result is not None  # only an announced copy's transaction gives None
        return result

    async def _send(self, sender: str, recipient: str, data: bytes, then: Copy | None,
                    announced: _Announced | None) -> SendResult | None:
        """One copy's transaction; None when it was announced and the connection was lost
        before any reply to it (its message was never written: dialling again is safe)."""
        smtp = self._smtp
        try:
            if smtp is None or (announced is None and not smtp.is_connected):
                smtp = await self._connect()
        except (aiosmtplib.SMTPException, OSError) as e:  # TimeoutError is an OSError
            self._drop()
            return SendResult(Outcome.RETRY, 0, f"cannot connect to {self.host}:{self.port}: {e}")
        try:
            return await self._transaction(smtp, sender, recipient, data, then, announced)
        except aiosmtplib.SMTPResponseException as e:
            await self._reset(smtp)
            return classify(e.code, e.message)
        except ValueError as e:  # an address aiosmtplib refuses to put on the wire
            await self._reset(smtp)
            return SendResult(Outcome.BOUNCE, 553, f"5.1.3 unusable address: {e}")
        except (aiosmtplib.SMTPException, OSError) as e:
            self._drop()
            if (announced is not None and announced.unanswered()
                    and isinstance(e, aiosmtplib.SMTPServerDisconnected)):
                return None
            return SendResult(Outcome.RETRY, 0, f"connection to {self.host}:{self.port} lost: {e}")

    async def _connect(self) -> aiosmtplib.SMTP:
        self._drop()
        smtp = aiosmtplib.SMTP(hostname=self.host, port=self.port, timeout=self.timeout,
                               local_hostname=self.local_hostname, start_tls=self.start_tls)
        self._smtp = smtp
        await smtp.connect()
        await smtp.ehlo()
        return smtp

    async def _transaction(self, smtp: aiosmtplib.SMTP, sender: str, recipient: str,
                           data: bytes, then: Copy | None,
                           announced: _Announced | None) -> SendResult:
        if announced is not None:  # its MAIL, RCPT and DATA went with the last message
            return await self._pipelined(smtp, announced.pipe, data, _group_of(smtp, then))
        options: list[str] = []
        encoding = "ascii"
        if not (sender.isascii() and recipient.isascii()):
            if not smtp.supports_extension("smtputf8"):
                return SendResult(Outcome.BOUNCE, 553,
                                  "5.6.7 non-ASCII address and the smarthost lacks SMTPUTF8")
            options.append("SMTPUTF8")
            encoding = "utf-8"
        options += _body_option(smtp, data)
        if smtp.supports_extension("pipelining") and pipelining():
            mail_from, rcpt_to = envelope_address(sender), envelope_address(recipient)
            if mail_from is not None and rcpt_to is not None:  # else aiosmtplib parses them
                pipe = _Pipe(smtp)
                pipe.transport.write(_group(mail_from, rcpt_to, options))
                return await self._pipelined(smtp, pipe, data, _group_of(smtp, then))
        await _mail(smtp, sender, options, encoding)
        await _rcpt(smtp, recipient, encoding)
        reply = await _data(smtp, data)
        return SendResult(Outcome.SENT, reply.code, reply.message)

    async def _reset(self, smtp: aiosmtplib.SMTP) -> None:
        # A refused MAIL, RCPT or DATA leaves a half-open transaction on the server.
        if not smtp.is_connected:
            self._drop()
            return
        try:
            await smtp.rset()
        except (aiosmtplib.SMTPException, OSError):
            self._drop()

    async def _pipelined(self, smtp: aiosmtplib.SMTP, pipe: _Pipe, data: bytes,
                         then: tuple[Copy, bytes] | None) -> SendResult:
        """The rest of a pipelined transaction whose MAIL, RCPT and DATA are written: their
        replies, then the message, with ``then``'s group after it when given (it is then
        announced, and the pipe stays in place for its replies). A refusal raises as
        ``_mail``, ``_rcpt`` and ``_data`` do, with the connection back in aiosmtplib's hands
        for the RSET, except a refused message when the next group went with it (returned:
        no RSET); any other trouble raises with the connection closed."""
        transport, replies = pipe.transport, pipe.replies
        chained = False
        try:
            refused = await _refusal(replies, transport)
            if refused is None:
                message = data if wire_ready(data) else _wire(data)
                chained = then is not None
                transport.write(b"".join((message, b".\r\n", then[1])) if then is not None
                                else message + b".\r\n")
                reply = await replies.next()
                if reply.code != aiosmtplib.SMTPStatus.completed:
                    refused = aiosmtplib.SMTPDataError(reply.code, reply.message)
                    if chained and reply.code == aiosmtplib.SMTPStatus.domain_unavailable:
                        chained = False  # the server is closing: the next copy dials again
                        transport.close()
        except BaseException:  # out of step with the server, or cancelled: dial afresh
            chained = False
            smtp.close()
            raise
        finally:
            if not chained:
                pipe.give_back()  # aiosmtplib sees the connection closed, if it is
        if chained:
            assert then is not None
            self._announced = _Announced(smtp, pipe, then[0], replies.taken)
            if refused is not None:
                # That transaction ended with this reply; an RSET would end the next one.
                return classify(refused.code, refused.message)
        if refused is not None:
            raise refused
        return SendResult(Outcome.SENT, reply.code, reply.message)

    def _drop(self) -> None:
        self._announced = None
        if self._smtp is not None:
            self._smtp.close()
            self._smtp = None

    async def close(self) -> None:
        announced, self._announced = self._announced, None
        smtp, self._smtp = self._smtp, None
        if smtp is None or not smtp.is_connected:
            return
        if announced is not None:  # the server is in DATA: no QUIT, the close aborts it
            smtp.close()
            return
        try:
            await smtp.quit(timeout=min(self.timeout, 5.0))
        except (aiosmtplib.SMTPException, OSError):
            smtp.close()


# A dot-atom local part and a dot-separated host name, ASCII: what email.utils.parseaddr gives
# back unchanged and aiosmtplib's address check lets through (tests/test_transport_addresses.py).
_PLAIN = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
                    r"@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*")


def envelope_address(address: str) -> bytes | None:
    """``<address>`` as aiosmtplib's ``quote_address`` would put it on the wire, when the
    address is plain; None for any other (left to aiosmtplib, which parses and checks it)."""
    return b"<" + address.encode("ascii") + b">" if _PLAIN.fullmatch(address) else None


# aiosmtplib's mail() and rcpt() parse every address with email.utils.parseaddr, a third of the
# client's Python time per copy; a plain address (every member's and VERP return path, nearly
# always) goes through the same execute_command with the bytes that parse would have given.
# The connection has had its EHLO (_connect), which is all mail() and rcpt() add besides.

async def _mail(smtp: aiosmtplib.SMTP, sender: str, options: list[str], encoding: str) -> None:
    quoted = envelope_address(sender)
    if quoted is None:
        await smtp.mail(sender, options=options, encoding=encoding)
        return
    reply = await smtp.execute_command(b"MAIL", b"FROM:" + quoted,
                                       *(option.encode("ascii") for option in options))
    if reply.code != aiosmtplib.SMTPStatus.completed:
        raise aiosmtplib.SMTPSenderRefused(reply.code, reply.message, sender)


async def _rcpt(smtp: aiosmtplib.SMTP, recipient: str, encoding: str) -> None:
    quoted = envelope_address(recipient)
    if quoted is None:
        await smtp.rcpt(recipient, encoding=encoding)
        return
    reply = await smtp.execute_command(b"RCPT", b"TO:" + quoted)
    if reply.code not in (aiosmtplib.SMTPStatus.completed, aiosmtplib.SMTPStatus.will_forward):
        raise aiosmtplib.SMTPRecipientRefused(reply.code, reply.message, recipient)


class WireReady(bytes):
    """Bytes their maker found ``wire_ready`` more cheaply than by scanning them all (a
    rendered copy: a post checked once, then each copy's personal lines)."""

    __slots__ = ()


def wire_ready(data: bytes) -> bool:
    """Whether aiosmtplib's DATA would send ``data`` as it is, then ".\r\n": every line ends
    in CRLF (no lone CR or LF, and a CRLF at the end) and no line starts with a dot (nothing to
    stuff). Pure; a few scans in C, where aiosmtplib runs two regex substitutions over every
    line of every copy (7-15 % of a delivery process's CPU). Rendered copies are always ready:
    the generator writes CRLF (``decorate.WIRE``) and dot-stuffing is rare. A ``WireReady``
    is taken at its word (the scans cost ~15 us for 4 KB)."""
    if type(data) is WireReady:
        return True
    crlf = data.count(b"\r\n")
    return (data.endswith(b"\r\n") and data.count(b"\n") == crlf and data.count(b"\r") == crlf
            and not data.startswith(b".") and b"\n." not in data)


def _has_internals(check: Callable[[], bool], lacking: str) -> bool:
    """Whether ``check`` finds the aiosmtplib internals a shortcut borrows (not its public
    API); when not (or when looking raises), says once what every copy does instead."""
    try:
        usable = check()
    except (ImportError, AttributeError, TypeError, ValueError):
        usable = False
    if not usable:
        log.warning("aiosmtplib %s lacks the internals %s (same bytes, more CPU)",
                    getattr(aiosmtplib, "__version__", "?"), lacking)
    return usable


@functools.cache
def data_shortcut() -> bool:
    """Whether this aiosmtplib has the internals ``_data``'s shortcut writes through (not its
    public API): ``SMTP().protocol``, and ``SMTPProtocol.write(bytes)`` and
    ``read_response(timeout=)``. Checked once, said once; without them every copy takes
    ``smtp.data``, the same bytes at some CPU (pyproject.toml bounds the versions tested)."""

    def check() -> bool:
        protocol_class = importlib.import_module("aiosmtplib.protocol").SMTPProtocol
        read_response = protocol_class.read_response
        return (hasattr(aiosmtplib.SMTP(), "protocol") and callable(protocol_class.write)
                and inspect.iscoroutinefunction(read_response)
                and "timeout" in inspect.signature(read_response).parameters)

    return _has_internals(check, "of the DATA shortcut: every copy goes through aiosmtplib's "
                                 "own DATA")


async def _data(smtp: aiosmtplib.SMTP, data: bytes) -> aiosmtplib.SMTPResponse:
    """DATA as ``smtp.data`` sends it, the same bytes on the wire; a wire-ready message skips
    its regexes. The transport is used by one task at a time and writes nothing else between
    the message and its reply, as ``execute_data_command`` does under its lock."""
    if not data_shortcut() or not wire_ready(data):
        return await smtp.data(data)
    protocol = smtp.protocol
    if protocol is None:  # not connected: smtp.data raises as it should
        return await smtp.data(data)
    reply = await smtp.execute_command(b"DATA")
    if reply.code != aiosmtplib.SMTPStatus.start_input:
        raise aiosmtplib.SMTPDataError(reply.code, reply.message)
    try:
        protocol.write(data + b".\r\n")
        reply = await protocol.read_response(timeout=smtp.timeout)
    except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError):
        smtp.close()  # as smtp.data does: the connection is out of step
        raise
    if reply.code != aiosmtplib.SMTPStatus.completed:
        raise aiosmtplib.SMTPDataError(reply.code, reply.message)
    return reply


def _wire(data: bytes) -> bytes:
    """``data`` as aiosmtplib's DATA sends it, without the end marker (for a message that is
    not ``wire_ready``): lone CR or LF made CRLF, a CRLF at the end, leading dots doubled."""
    data = _LINE_ENDS.sub(b"\r\n", data)
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return _LEADING_DOT.sub(b"..", data)


_LINE_ENDS = re.compile(rb"(?:\r\n|\n|\r(?!\n))")  # aiosmtplib's LINE_ENDINGS_REGEX
_LEADING_DOT = re.compile(rb"(?m)^\.")  # aiosmtplib's PERIOD_REGEX


# --- PIPELINING (RFC 2920) ---------------------------------------------------------------------

@functools.cache
def pipelining() -> bool:
    """Whether this aiosmtplib has what ``_pipelined`` borrows (not its public API): the
    connection's asyncio transport as ``SMTP().transport`` beside its ``protocol``; each
    transaction checks that the one is the other's (``get_protocol``). Checked once, said
    once; without them every copy waits for each reply in turn (same bytes, more CPU)."""

    def check() -> bool:
        smtp = aiosmtplib.SMTP()
        return hasattr(smtp, "transport") and hasattr(smtp, "protocol")

    return _has_internals(check, "PIPELINING takes: every copy waits for the replies to MAIL, "
                                 "RCPT and DATA in turn")


MAX_REPLY = 32_768  # bytes of one reply, as aiosmtplib's MAX_RESPONSE_LENGTH


def parse_replies(buf: bytes | bytearray) -> tuple[list[aiosmtplib.SMTPResponse], int]:
    """The complete replies at the start of ``buf``, and how many bytes they take, as
    aiosmtplib's reader makes them: the code, and each line's text stripped and joined with
    LF. Pure; ValueError on a line that does not start with a code (aiosmtplib refuses it)."""
    replies: list[aiosmtplib.SMTPResponse] = []
    used = offset = 0
    lines: list[bytes] = []
    while (end := buf.find(b"\n", offset)) >= 0:
        line = bytes(buf[offset:end + 1])
        offset = end + 1
        if not lines and (known := _ONE_LINE.get(line)) is not None:
            replies.append(known)  # a server's replies repeat (250 OK, 354 ...): no parse
            used = offset
            continue
        code = int(line[:3])
        lines.append(line[4:].strip(b" \t\r\n"))
        if line[3:4] != b"-":
            reply = aiosmtplib.SMTPResponse(
                code, b"\n".join(lines).decode("utf-8", "surrogateescape"))
            if len(lines) == 1 and len(_ONE_LINE) < ONE_LINE_CACHE:
                _ONE_LINE[line] = reply
            replies.append(reply)
            lines = []
            used = offset
    return replies, used


# One-line replies already parsed, by their bytes (SMTPResponse is an immutable tuple): a
# chained copy reads four, and they are nearly always the same four. Bounded: replies that
# differ every time (a queue id in the 250) stop being added once it is full.
ONE_LINE_CACHE = 256
_ONE_LINE: dict[bytes, aiosmtplib.SMTPResponse] = {}


class _Replies(asyncio.Protocol):
    """Holds an aiosmtplib connection's transport while a pipelined group's replies come in,
    and keeps every one: aiosmtplib's own reader holds one reply at a time and drops what
    arrives before its caller took that one, and a pipelining server answers a group in one
    write. Trouble (the connection lost, a malformed reply, a timeout) is raised by ``next``
    once the replies that came before it were taken; it is connection trouble (aiosmtplib
    raises a malformed reply as one with code -1)."""

    def __init__(self, timeout: float | None) -> None:
        self.timeout = timeout
        self._buf = bytearray()
        self._replies: collections.deque[aiosmtplib.SMTPResponse] = collections.deque()
        self._error: aiosmtplib.SMTPException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self.taken = 0  # replies handed out by next

    def data_received(self, data: bytes) -> None:
        if self._error is not None:
            return
        buf = self._buf
        buf += data
        try:
            replies, used = parse_replies(buf)
        except ValueError:
            self._fail(aiosmtplib.SMTPException(f"malformed reply: {bytes(buf[:80])!r}"))
            return
        if used:
            del buf[:used]
            self._replies.extend(replies)
            self._wake()
        if len(buf) > MAX_REPLY:
            self._fail(aiosmtplib.SMTPException("reply too long"))

    def eof_received(self) -> bool:
        self._fail(aiosmtplib.SMTPServerDisconnected("Unexpected EOF received"))
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(aiosmtplib.SMTPServerDisconnected("Connection lost"))

    def _fail(self, error: aiosmtplib.SMTPException) -> None:
        if self._error is None:
            self._error = error
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def next(self) -> aiosmtplib.SMTPResponse:
        """The next reply, in order, waiting up to ``timeout`` for it to come."""
        if not self._replies and self._error is None:
            loop = asyncio.get_running_loop()
            self._waiter = loop.create_future()
            timer = None if self.timeout is None else loop.call_later(
                self.timeout, self._fail,
                aiosmtplib.SMTPTimeoutError("Timed out waiting for server response"))
            try:
                await self._waiter
            finally:
                self._waiter = None
                if timer is not None:
                    timer.cancel()
        if self._replies:
            self.taken += 1
            return self._replies.popleft()
        assert self._error is not None
        raise self._error


def _group(mail_from: bytes, rcpt_to: bytes, options: list[str]) -> bytes:
    """MAIL, RCPT and DATA as ``_mail``, ``_rcpt`` and ``_data`` would send them one by one."""
    mail = b" ".join((b"MAIL", b"FROM:" + mail_from, *(o.encode("ascii") for o in options)))
    return b"%s\r\nRCPT TO:%s\r\nDATA\r\n" % (mail, rcpt_to)


def _body_option(smtp: aiosmtplib.SMTP, data: bytes) -> list[str]:
    return ["BODY=8BITMIME"] if not data.isascii() and smtp.supports_extension("8bitmime") else []


def _group_of(smtp: aiosmtplib.SMTP, then: Copy | None) -> tuple[Copy, bytes] | None:
    """``then`` and the group that announces it, when it can be chained: plain (so ASCII)
    addresses, which are all the options but the body's; else None (it goes on its own)."""
    if then is None:
        return None
    mail_from, rcpt_to = envelope_address(then.sender), envelope_address(then.recipient)
    if mail_from is None or rcpt_to is None:
        return None
    return then, _group(mail_from, rcpt_to, _body_option(smtp, then.data))


class _Pipe:
    """An aiosmtplib connection with a ``_Replies`` in place of its own protocol, from a
    group's write until the last reply of its chain is read (``give_back``)."""

    def __init__(self, smtp: aiosmtplib.SMTP) -> None:
        transport, protocol = smtp.transport, smtp.protocol
        if (not isinstance(transport, asyncio.Transport) or protocol is None
                or transport.is_closing() or transport.get_protocol() is not protocol):
            smtp.close()
            raise aiosmtplib.SMTPServerDisconnected("Connection lost")
        self.transport: asyncio.Transport = transport
        self._protocol = protocol
        self.replies = _Replies(smtp.timeout)
        transport.set_protocol(self.replies)

    def give_back(self) -> None:
        self.transport.set_protocol(self._protocol)


@dataclass(frozen=True, slots=True)
class _Announced:
    """A copy whose MAIL, RCPT and DATA went with the last message, replies not yet read."""

    smtp: aiosmtplib.SMTP
    pipe: _Pipe
    copy: Copy
    taken: int  # replies taken from the pipe when it was announced

    def is_for(self, smtp: aiosmtplib.SMTP | None, sender: str, recipient: str,
               data: bytes) -> bool:
        copy = self.copy
        return (smtp is self.smtp and copy.sender == sender and copy.recipient == recipient
                and copy.data == data)  # the same object in practice: no compare

    def unanswered(self) -> bool:
        """Whether no reply to it came (none was taken since)."""
        return self.pipe.replies.taken == self.taken


async def _refusal(replies: _Replies, transport: asyncio.Transport
                   ) -> aiosmtplib.SMTPResponseException | None:
    """The first refusal among the replies to a pipelined MAIL, RCPT and DATA, as ``_mail``,
    ``_rcpt`` and ``_data`` raise it; None when the message may follow (354). A 421 closes
    the connection, as aiosmtplib does on one. A DATA accepted after a refused MAIL or RCPT
    gets an empty message, so RSET can follow (RFC 2920 3.1). Trouble after a refusal
    closes the connection, and the refusal stands."""
    refused: aiosmtplib.SMTPResponseException | None = None
    try:
        for accepted, refusal in _GROUP:
            reply = await replies.next()
            if reply.code not in accepted:
                refused = refused or refusal(reply.code, reply.message)
                if reply.code == aiosmtplib.SMTPStatus.domain_unavailable:
                    transport.close()
                    return refused
        if refused is not None and reply.code == aiosmtplib.SMTPStatus.start_input:
            # DATA was accepted after all: end it empty
            transport.write(b".\r\n")
            await replies.next()
    except aiosmtplib.SMTPException:
        if refused is None:
            raise
        transport.close()
    return refused


def _refused_mail(code: int, message: str) -> aiosmtplib.SMTPResponseException:
    return aiosmtplib.SMTPSenderRefused(code, message, "")


def _refused_rcpt(code: int, message: str) -> aiosmtplib.SMTPResponseException:
    return aiosmtplib.SMTPRecipientRefused(code, message, "")


# What each reply of a pipelined group accepts, and what it raises otherwise (as _mail, _rcpt
# and _data do).
_GROUP: tuple[tuple[tuple[int, ...],
                    Callable[[int, str], aiosmtplib.SMTPResponseException]], ...] = (
    ((aiosmtplib.SMTPStatus.completed,), _refused_mail),
    ((aiosmtplib.SMTPStatus.completed, aiosmtplib.SMTPStatus.will_forward), _refused_rcpt),
    ((aiosmtplib.SMTPStatus.start_input,), aiosmtplib.SMTPDataError),
)


class MaildirTransport:
    """Development delivery: every message becomes a file in a Maildir, as a local MDA would."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._box: mailbox.Maildir | None = None

    async def send(self, sender: str, recipient: str, data: bytes) -> SendResult:
        try:
            name = await asyncio.to_thread(self._write, sender, recipient, data)
        except (OSError, mailbox.Error) as e:  # a full disk clears up: keep the message
            return SendResult(Outcome.RETRY, 0, f"cannot write to {self.path}: {e}")
        return SendResult(Outcome.SENT, 250, f"2.0.0 delivered to maildir as {name}")

    def _write(self, sender: str, recipient: str, data: bytes) -> str:
        if self._box is None:
            # Several transports (one per sender task) may start at once: mailbox's own
            # create=True races on mkdir, makedirs(exist_ok=True) does not.
            for sub in ("tmp", "new", "cur"):
                (self.path / sub).mkdir(parents=True, exist_ok=True)
            self._box = mailbox.Maildir(self.path, factory=None, create=False)
        # Maildir files use bare LF, as a local delivery agent writes them.
        header = f"Return-Path: <{sender}>\nDelivered-To: {recipient}\n".encode()
        return self._box.add(header + data.replace(b"\r\n", b"\n"))

    async def close(self) -> None:
        self._box = None
