"""A lean SMTP sink for the benchmarks: an asyncio Protocol that speaks just enough SMTP.

The benches' smarthost stands in for Postfix (C, on another core or machine): it should take as
little CPU as it can from the machine it shares with the App. aiosmtpd spends ~0.6 ms of CPU per
copy (a coroutine per command, a ``readuntil`` and a list append per line of DATA); this sink
works on whole reads instead: commands are split out of the buffer with ``find``, DATA ends at
the first ``CRLF.CRLF`` (found across reads by searching again from just before the new bytes),
and the message is unstuffed with one ``replace``. It stores nothing: each message is handed to
``on_message(rcpt_tos, content)``, with ``content`` exactly what aiosmtpd gives a handler as
``envelope.original_content`` (dot-unstuffed, CRLF line ends, the end marker left off) and the
recipients as aiosmtpd parses simple addresses (``<a@b>`` -> ``a@b``).

Speaks EHLO/HELO, MAIL (SIZE, BODY=7BIT|8BITMIME, SMTPUTF8), RCPT, DATA, RSET, NOOP, QUIT, and
advertises PIPELINING (RFC 2920): commands are answered in order from the buffer, and every
reply to one read goes out in one write at the end of it. Limits as aiosmtpd's defaults: 32 MiB
of DATA (552 after the end marker), 1001 bytes a DATA line with its CRLF (500), 512 bytes a
command line (500), so a message that one refuses, the other refuses too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

OnMessage = Callable[[list[str], bytes], None]

DATA_SIZE_LIMIT = 33_554_432  # aiosmtpd's DATA_SIZE_DEFAULT
LINE_LENGTH_LIMIT = 1001  # aiosmtpd's line_length_limit: a DATA line with its CRLF
COMMAND_SIZE_LIMIT = 512 + 26 + 10  # aiosmtpd's, with SIZE= and SMTPUTF8/BODY= on MAIL

_END = b"\r\n.\r\n"


def _address(arg: str, prefix: str) -> tuple[str | None, str]:
    """(address, parameters) of ``FROM:<a@b> PARAMS`` / ``TO:<a@b> PARAMS``; None if malformed."""
    if arg[:len(prefix)].upper() != prefix:
        return None, ""
    arg = arg[len(prefix):].lstrip()
    if arg.startswith("<"):
        close = arg.find(">")
        if close < 0:
            return None, ""
        address, rest = arg[1:close], arg[close + 1:]
        if rest and not rest.startswith(" "):
            return None, ""
    else:
        address, _, rest = arg.partition(" ")
        if not address:
            return None, ""
    if address.startswith("@") and ":" in address:  # an obsolete source route
        address = address.split(":", 1)[1]
    return address, rest.strip()


class LeanSMTP(asyncio.Protocol):
    """One connection. ``on_message`` is called once per accepted message, before the 250."""

    def __init__(self, on_message: OnMessage, hostname: str = "sink.example",
                 ident: str = "bench-sink") -> None:
        self.on_message = on_message
        self.hostname = hostname
        self.ident = ident
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.helo = False
        self.esmtp = False
        self.mail_from: str | None = None
        self.rcpt_tos: list[str] = []
        self.in_data = False
        self.scan = 0  # in DATA: where to search for the end marker next
        self.discarded = 0  # in DATA over the size limit: bytes already thrown away

    # --- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(f"220 {self.hostname} ESMTP {self.ident}\r\n".encode())

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.buf.clear()

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        replies: list[bytes] = []
        while self.transport is not None:
            if self.in_data:
                if not self._data(replies):
                    break
                continue
            nl = buf.find(b"\r\n")
            if nl < 0:
                if len(buf) > COMMAND_SIZE_LIMIT:
                    replies.append(b"500 Error: line too long\r\n")
                    buf.clear()
                break
            line = bytes(buf[:nl])
            del buf[:nl + 2]
            if len(line) + 2 > COMMAND_SIZE_LIMIT:
                replies.append(b"500 Error: line too long\r\n")
                continue
            reply = self._command(line.decode("utf-8", "surrogateescape"))
            replies.append(reply.encode("utf-8", "surrogateescape") + b"\r\n")
            if reply.startswith("221"):
                break
        if replies and self.transport is not None:
            self.transport.write(b"".join(replies))
            if replies[-1].startswith(b"221"):
                self.transport.close()

    # --- DATA ---------------------------------------------------------------------------------

    def _data(self, replies: list[bytes]) -> bool:
        """Consume DATA from the buffer; True once the end marker was found (and answered).
        The buffer starts with a CRLF of our own, so an empty message's ``.CRLF`` is found too."""
        buf = self.buf
        end = buf.find(_END, self.scan)
        if end < 0:
            if len(buf) + self.discarded > DATA_SIZE_LIMIT + 2:  # keep only a marker's worth
                self.discarded += len(buf) - 4
                del buf[:-4]
            self.scan = max(len(buf) - 4, 0)
            return False
        stuffed = buf[:end + 2]  # our CRLF, the message, its last CRLF
        del buf[:end + 5]
        self.in_data = False
        self.scan = 0
        size = len(stuffed) - 2 + self.discarded
        if size > DATA_SIZE_LIMIT or self.discarded:
            reply = b"552 Error: Too much mail data\r\n"
        elif size > LINE_LENGTH_LIMIT - 2 and _longest_line(stuffed) > LINE_LENGTH_LIMIT:
            reply = b"500 Line too long (see RFC5321 4.5.3.1.6)\r\n"
        else:
            content = (bytes(stuffed).replace(b"\r\n.", b"\r\n") if b"\r\n." in stuffed
                       else bytes(stuffed))[2:]
            self.on_message(self.rcpt_tos, content)
            reply = b"250 2.0.0 OK\r\n"
        self.discarded = 0
        self.mail_from, self.rcpt_tos = None, []
        replies.append(reply)
        return True

    # --- commands -----------------------------------------------------------------------------

    def _command(self, line: str) -> str:
        verb, _, arg = line.partition(" ")
        verb = verb.upper()
        arg = arg.strip()
        if verb == "MAIL":
            return self._mail(arg)
        if verb == "RCPT":
            return self._rcpt(arg)
        if verb == "DATA":
            if not self.helo:
                return "503 Error: send HELO first"
            if not self.rcpt_tos:
                return "503 Error: need RCPT command"
            if arg:
                return "501 Syntax: DATA"
            self.in_data = True
            self.scan = 0
            self.buf[0:0] = b"\r\n"
            return "354 End data with <CR><LF>.<CR><LF>"
        if verb == "EHLO" or verb == "HELO":
            if not arg:
                return f"501 Syntax: {verb} hostname"
            self.helo, self.esmtp = True, verb == "EHLO"
            self.mail_from, self.rcpt_tos = None, []
            if verb == "HELO":
                return f"250 {self.hostname}"
            return (f"250-{self.hostname}\r\n250-SIZE {DATA_SIZE_LIMIT}\r\n250-8BITMIME\r\n"
                    "250-SMTPUTF8\r\n250-PIPELINING\r\n250 HELP")
        if verb == "RSET":
            if arg:
                return "501 Syntax: RSET"
            self.mail_from, self.rcpt_tos = None, []
            return "250 OK"
        if verb == "NOOP":
            return "250 OK"
        if verb == "QUIT":
            if arg:
                return "501 Syntax: QUIT"
            return "221 Bye"
        return f'500 Error: command "{verb}" not recognized'

    def _mail(self, arg: str) -> str:
        if not self.helo:
            return "503 Error: send HELO first"
        address, params = _address(arg, "FROM:")
        if address is None or (params and not self.esmtp):
            return "501 Syntax: MAIL FROM: <address>" + (" [SP <mail-parameters>]"
                                                          if self.esmtp else "")
        if self.mail_from is not None:
            return "503 Error: nested MAIL command"
        for param in params.upper().split():
            name, eq, value = param.partition("=")
            if not name.isalnum() or (eq and not value):
                return "501 Syntax: MAIL FROM: <address> [SP <mail-parameters>]"
            if (name == "BODY" and value in ("7BIT", "8BITMIME")) or (name == "SMTPUTF8"
                                                                      and not eq):
                continue
            if name == "BODY":
                return "501 Error: BODY can only be one of 7BIT, 8BITMIME"
            if name == "SMTPUTF8":
                return "501 Error: SMTPUTF8 takes no arguments"
            if name == "SIZE" and value.isdigit():
                if int(value) > DATA_SIZE_LIMIT:
                    return "552 Error: message size exceeds fixed maximum message size"
                continue
            if name == "SIZE":
                return "501 Syntax: MAIL FROM: <address> [SP <mail-parameters>]"
            return "555 MAIL FROM parameters not recognized or not implemented"
        self.mail_from = address
        return "250 OK"

    def _rcpt(self, arg: str) -> str:
        if not self.helo:
            return "503 Error: send HELO first"
        if self.mail_from is None:
            return "503 Error: need MAIL command"
        address, params = _address(arg, "TO:")
        if address is None or not address:
            return "501 Syntax: RCPT TO: <address>"
        if params:
            return "555 RCPT TO parameters not recognized or not implemented"
        self.rcpt_tos.append(address)
        return "250 OK"


def _longest_line(stuffed: bytearray) -> int:
    """The longest line of DATA, with its CRLF (``stuffed`` starts with a CRLF of our own)."""
    return max(map(len, bytes(stuffed).split(b"\r\n"))) + 2


async def serve(on_message: OnMessage, host: str = "127.0.0.1", port: int = 0,
                hostname: str = "sink.example", ident: str = "bench-sink") -> asyncio.Server:
    """A listening lean sink; its port is ``server.sockets[0].getsockname()[1]``."""
    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: LeanSMTP(on_message, hostname, ident),
                                    host=host, port=port)
