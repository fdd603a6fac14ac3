"""A tiny authoritative DNS server double for tests, on 127.0.0.1 over UDP.

It answers TXT questions from a dict ``{name: [txt, ...]}`` and NXDOMAIN for any
name not in it (NOERROR with no answer for a known name asked about another type).
Every query is recorded and every answer counted, so tests can assert how many
lookups reached "the network", and that a NONE came from an answer, not a timeout.
``silent=True`` receives and counts queries but never answers, to exercise timeouts;
``delay`` holds each answer back, to let concurrent callers pile up.

``other`` answers other types from zone-file text: ``{("example.org", "MX"): ["10 mx.example.org."],
("mx.example.org", "A"): ["127.0.0.1"]}`` (a name there is known, as in ``records``).

Names are matched case-insensitively and with or without the trailing dot. The
double's attributes (``records``, ``silent``, ``delay``) may be changed mid-test.

    async with dns_double({"_dmarc.example.org": ["v=DMARC1; p=reject"]}) as (host, port, double):
        ...  # point a resolver at host:port
        assert double.query_count == 1
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import cast

import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TXT
import dns.rrset


def _key(name: str) -> str:
    return name.strip().rstrip(".").lower()


def _txt_rdata(text: str) -> dns.rdtypes.ANY.TXT.TXT:
    # One TXT string holds at most 255 bytes; longer records go out as several
    # strings that the client joins, as real zones publish long DMARC/SPF records.
    raw = text.encode()
    chunks = [raw[i : i + 255] for i in range(0, len(raw), 255)] or [b""]
    return dns.rdtypes.ANY.TXT.TXT(dns.rdataclass.IN, dns.rdatatype.TXT, chunks)


class DnsDouble(asyncio.DatagramProtocol):
    def __init__(
        self, records: Mapping[str, Sequence[str]], *, silent: bool = False, delay: float = 0.0,
        other: Mapping[tuple[str, str], Sequence[str]] | None = None,
    ) -> None:
        self.records: dict[str, list[str]] = {_key(k): list(v) for k, v in records.items()}
        self.other = {(_key(n), t.upper()): list(v) for (n, t), v in (other or {}).items()}
        self.silent = silent
        self.delay = delay
        self.queries: list[tuple[str, str]] = []  # (name without trailing dot, type)
        self.answered = 0
        self._transport: asyncio.DatagramTransport | None = None

    @property
    def query_count(self) -> int:
        return len(self.queries)

    def queries_for(self, name: str) -> int:
        return sum(1 for q, _ in self.queries if q == _key(name))

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # The selector loop's datagram transport does not subclass DatagramTransport.
        self._transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        try:
            query = dns.message.from_wire(data)
        except dns.exception.DNSException:
            return  # garbage in, silence out, like a real server under attack
        if not query.question:
            return
        question = query.question[0]
        name = _key(question.name.to_text())
        self.queries.append((name, dns.rdatatype.to_text(question.rdtype)))
        if self.silent:
            return
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        rdtype = dns.rdatatype.to_text(question.rdtype)
        if (name, rdtype) in self.other:
            rrset = dns.rrset.from_text_list(question.name, 300, "IN", rdtype,
                                             self.other[(name, rdtype)])
            response.answer.append(rrset)
        elif name not in self.records and not any(n == name for n, _ in self.other):
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif question.rdtype == dns.rdatatype.TXT and self.records.get(name):
            rrset = dns.rrset.RRset(question.name, dns.rdataclass.IN, dns.rdatatype.TXT)
            for text in self.records[name]:
                rrset.add(_txt_rdata(text), ttl=300)
            response.answer.append(rrset)
        wire = response.to_wire()
        if self.delay > 0:
            asyncio.get_running_loop().call_later(self.delay, self._send, wire, addr)
        else:
            self._send(wire, addr)

    def _send(self, wire: bytes, addr: tuple[str | int, ...]) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.sendto(wire, addr)
            self.answered += 1


@contextlib.asynccontextmanager
async def dns_double(
    records: Mapping[str, Sequence[str]] | None = None,
    *,
    silent: bool = False,
    delay: float = 0.0,
    other: Mapping[tuple[str, str], Sequence[str]] | None = None,
) -> AsyncIterator[tuple[str, int, DnsDouble]]:
    """Serve ``records`` on an ephemeral UDP port; yields (host, port, double)."""
    double = DnsDouble(records or {}, silent=silent, delay=delay, other=other)
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(lambda: double, local_addr=("127.0.0.1", 0))
    try:
        host, port = transport.get_extra_info("sockname")[:2]
        yield host, port, double
    finally:
        transport.close()
