"""DMARC: pure parsing tables, then the resolver against a real UDP DNS double."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import dns.asyncresolver
import dns.resolver
import pytest

from listserv.dmarc import (
    DmarcResolver,
    Policy,
    needs_munging,
    organisational_domain,
    parse_dmarc_record,
)
from tests.dnsdouble import DnsDouble, dns_double

# Generous bound: these tests prove "does not hang", not how fast DNS is.
HANG = 10.0


@pytest.mark.parametrize(
    ("txt", "expected"),
    [
        ("v=DMARC1; p=reject", Policy.REJECT),
        ("v=DMARC1; p=reject;", Policy.REJECT),
        ("v=DMARC1;p=quarantine;pct=100", Policy.QUARANTINE),
        ("v=DMARC1; p=none; rua=mailto:d@example.org", Policy.NONE),
        ("  v = DMARC1 ;  p = Reject ;  ", Policy.REJECT),
        ("V=dmarc1; P=QUARANTINE", Policy.QUARANTINE),
        ("v=DMARC1; p=none; sp=reject", Policy.NONE),  # sp is for subdomains only
        ("v=DMARC1; sp=reject; p=quarantine", Policy.QUARANTINE),
        ("v=DMARC1; p=reject; p=none", Policy.REJECT),  # first occurrence wins
        ("v=DMARC1; p=bogus", Policy.NONE),
        ("v=DMARC1; rua=mailto:d@example.org", Policy.NONE),
        ("v=DMARC1", Policy.NONE),
        ("v=spf1 include:_spf.example.org -all", None),
        ("p=reject; v=DMARC1", None),  # v must come first
        ("v=DMARC2; p=reject", None),
        ("", None),
        ("google-site-verification=abc", None),
    ],
)
def test_parse_dmarc_record(txt: str, expected: Policy | None) -> None:
    assert parse_dmarc_record(txt) is expected


@pytest.mark.parametrize(
    ("domain", "expected"),
    [
        ("example.org", "example.org"),
        ("mail.example.org", "example.org"),
        ("a.b.c.example.com", "example.com"),
        ("derbyshire.gov.uk", "derbyshire.gov.uk"),
        ("mail.derbyshire.gov.uk", "derbyshire.gov.uk"),
        ("lists.vendor.co.uk", "vendor.co.uk"),
        ("x.uni.ac.uk", "uni.ac.uk"),
        ("charity.org.uk", "charity.org.uk"),
        ("shop.example.com.au", "example.com.au"),
        ("Mail.Example.ORG.", "example.org"),
        ("localhost", "localhost"),
        ("co.uk", "co.uk"),
    ],
)
def test_organisational_domain(domain: str, expected: str) -> None:
    assert organisational_domain(domain) == expected


@pytest.mark.parametrize(
    ("policy", "setting", "expected"),
    [
        (Policy.REJECT, "auto", True),
        (Policy.QUARANTINE, "auto", True),
        (Policy.NONE, "auto", False),
        (Policy.NONE, "always", True),
        (Policy.REJECT, "always", True),
        (Policy.REJECT, "never", False),
        (Policy.QUARANTINE, "never", False),
        (Policy.NONE, "never", False),
    ],
)
def test_needs_munging(policy: Policy, setting: str, expected: bool) -> None:
    assert needs_munging(policy, setting) is expected


def test_needs_munging_rejects_unknown_setting() -> None:
    with pytest.raises(ValueError, match="dmarc_mitigation"):
        needs_munging(Policy.REJECT, "sometimes")


RECORDS = {
    "_dmarc.reject.example": ["v=DMARC1; p=reject; rua=mailto:d@reject.example"],
    "_dmarc.quarantine.example": ["v=DMARC1; p=quarantine"],
    "_dmarc.none.example": ["v=DMARC1; p=none"],
    "_dmarc.spf-only.example": ["v=spf1 -all"],
    "_dmarc.mixed.example": ["some-verification=xyz", "v=DMARC1; p=reject"],
    "_dmarc.twice.example": ["v=DMARC1; p=reject", "v=DMARC1; p=none"],
    "_dmarc.long.example": ["v=DMARC1; p=quarantine; rua=mailto:" + "r" * 300 + "@long.example"],
    "_dmarc.council.gov.uk": ["v=DMARC1; p=none; sp=reject"],
    "_dmarc.vendor.co.uk": ["v=DMARC1; p=quarantine"],
    "_dmarc.own.vendor.co.uk": ["v=DMARC1; p=none"],
}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def resolver_for(
    port: int,
    host: str,
    *,
    timeout: float = 1.0,
    ttl: float = 3600.0,
    failure_ttl: float = 60.0,
    clock: Callable[[], float] = time.monotonic,
) -> DmarcResolver:
    return DmarcResolver(
        nameservers=[host],
        port=port,
        timeout=timeout,
        ttl=ttl,
        failure_ttl=failure_ttl,
        clock=clock,
    )


@pytest.mark.parametrize(
    ("domain", "expected"),
    [
        ("reject.example", Policy.REJECT),
        ("quarantine.example", Policy.QUARANTINE),
        ("none.example", Policy.NONE),
        ("unpublished.example", Policy.NONE),
        ("spf-only.example", Policy.NONE),
        ("mixed.example", Policy.REJECT),
        ("twice.example", Policy.NONE),  # RFC 7489: several records means no policy
        ("long.example", Policy.QUARANTINE),
        ("REJECT.Example.", Policy.REJECT),
        # organisational fallback: sp= when the org record has one, else p=
        ("mail.council.gov.uk", Policy.REJECT),
        ("council.gov.uk", Policy.NONE),
        ("lists.vendor.co.uk", Policy.QUARANTINE),
        ("own.vendor.co.uk", Policy.NONE),  # its own record wins over the org's
    ],
)
async def test_policy_from_dns(domain: str, expected: Policy) -> None:
    async with dns_double(RECORDS) as (host, port, double):
        resolver = resolver_for(port, host)
        assert await asyncio.wait_for(resolver.policy(domain), HANG) is expected
    # NONE is also what a failure gives: prove these came from real answers.
    assert double.query_count >= 1
    assert double.answered == double.query_count


async def test_fallback_queries_subdomain_then_organisational_domain() -> None:
    async with dns_double(RECORDS) as (host, port, double):
        assert await resolver_for(port, host).policy("mail.council.gov.uk") is Policy.REJECT
    assert [name for name, _ in double.queries] == [
        "_dmarc.mail.council.gov.uk",
        "_dmarc.council.gov.uk",
    ]
    assert {kind for _, kind in double.queries} == {"TXT"}


async def test_no_fallback_for_an_organisational_domain() -> None:
    async with dns_double(RECORDS) as (host, port, double):
        assert await resolver_for(port, host).policy("unpublished.example") is Policy.NONE
    assert double.query_count == 1


async def test_timeout_is_unknown_not_no_policy() -> None:
    """Issue 7.18: a failed lookup is UNKNOWN (looked up again at delivery), never NONE."""
    async with dns_double(RECORDS, silent=True) as (host, port, double):
        resolver = resolver_for(port, host, timeout=0.3)
        assert await asyncio.wait_for(resolver.policy("reject.example"), HANG) is Policy.UNKNOWN
        assert double.query_count >= 1  # it did ask; nobody answered


async def test_unreachable_nameserver_is_unknown() -> None:
    async with dns_double() as (host, port, _double):
        pass  # closed again: nothing listens on the port any more
    resolver = resolver_for(port, host, timeout=0.3)
    assert await asyncio.wait_for(resolver.policy("reject.example"), HANG) is Policy.UNKNOWN


async def test_unreadable_system_config_counts_as_no_policy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_config(*_a: object, **_kw: object) -> dns.asyncresolver.Resolver:
        raise dns.resolver.NoResolverConfiguration

    monkeypatch.setattr(dns.asyncresolver, "Resolver", no_config)
    assert await DmarcResolver().policy("reject.example") is Policy.NONE


async def test_answers_and_negative_answers_are_cached_until_ttl() -> None:
    clock = Clock()
    async with dns_double(RECORDS) as (host, port, double):
        resolver = resolver_for(port, host, ttl=600.0, clock=clock)
        for domain in ("reject.example", "unpublished.example"):
            assert double.queries_for(f"_dmarc.{domain}") == 0
            first = await resolver.policy(domain)
            clock.now += 599.0
            assert await resolver.policy(domain) is first
            assert double.queries_for(f"_dmarc.{domain}") == 1
            clock.now += 2.0
            assert await resolver.policy(domain) is first
            assert double.queries_for(f"_dmarc.{domain}") == 2


async def test_cache_expiry_picks_up_a_changed_policy() -> None:
    clock = Clock()
    async with dns_double(RECORDS) as (host, port, double):
        resolver = resolver_for(port, host, ttl=600.0, clock=clock)
        assert await resolver.policy("none.example") is Policy.NONE
        double.records["_dmarc.none.example"] = ["v=DMARC1; p=reject"]
        assert await resolver.policy("none.example") is Policy.NONE
        clock.now += 601.0
        assert await resolver.policy("none.example") is Policy.REJECT


async def test_failures_are_cached_briefly() -> None:
    clock = Clock()
    async with dns_double(RECORDS, silent=True) as (host, port, double):
        resolver = resolver_for(port, host, timeout=0.3, failure_ttl=30.0, clock=clock)
        assert await asyncio.wait_for(resolver.policy("reject.example"), HANG) is Policy.UNKNOWN
        asked = double.query_count
        # Within the failure window a burst of posts costs no further timeouts.
        assert await asyncio.wait_for(resolver.policy("reject.example"), HANG) is Policy.UNKNOWN
        assert double.query_count == asked
        # After it, the nameserver is back and the real policy is found.
        double.silent = False
        clock.now += 31.0
        assert await asyncio.wait_for(resolver.policy("reject.example"), HANG) is Policy.REJECT


async def test_concurrent_lookups_share_one_query() -> None:
    async with dns_double(RECORDS, delay=0.1) as (host, port, double):
        resolver = resolver_for(port, host)
        burst = [resolver.policy("reject.example") for _ in range(20)]
        results = await asyncio.wait_for(asyncio.gather(*burst), HANG)
    assert results == [Policy.REJECT] * 20
    assert double.query_count == 1


async def test_a_cancelled_caller_does_not_cancel_the_shared_lookup() -> None:
    async with dns_double(RECORDS, delay=0.2) as (host, port, double):
        resolver = resolver_for(port, host)
        impatient = asyncio.create_task(resolver.policy("reject.example"))
        patient = asyncio.create_task(resolver.policy("reject.example"))
        await asyncio.sleep(0.05)
        impatient.cancel()
        assert await asyncio.wait_for(patient, HANG) is Policy.REJECT
        with pytest.raises(asyncio.CancelledError):
            await impatient
    assert double.query_count == 1


async def test_double_answers_nxdomain_and_nodata() -> None:
    async with dns_double({"known.example": ["hello"]}) as (host, port, double):
        resolver = dns.asyncresolver.Resolver(configure=False)
        resolver.nameservers = [host]
        resolver.port = port
        resolver.lifetime = 2.0
        answer = await resolver.resolve("Known.Example.", "TXT")
        assert [b"".join(r.strings) for r in answer] == [b"hello"]
        with pytest.raises(dns.resolver.NoAnswer):
            await resolver.resolve("known.example.", "A")
        with pytest.raises(dns.resolver.NXDOMAIN):
            await resolver.resolve("unknown.example.", "TXT")
    assert double.queries == [
        ("known.example", "TXT"),
        ("known.example", "A"),
        ("unknown.example", "TXT"),
    ]
    assert isinstance(double, DnsDouble)
