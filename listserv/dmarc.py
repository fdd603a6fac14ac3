"""DMARC policy lookup for From-munging (Mailman's ``dmarc_mitigate``).

When a list redistributes a post whose author's domain publishes ``p=reject`` or
``p=quarantine``, receivers would bounce or junk the copy (the list's servers fail
the author's DMARC alignment), so the list rewrites From to "Name via LIST" and puts
the author in Reply-To. This module answers one question: what policy does a domain
publish? The rewriting itself belongs to the decoration step.

Invariants:

- ``parse_dmarc_record``, ``organisational_domain`` and ``needs_munging`` are pure.
- ``DmarcResolver.policy`` never raises and never waits longer than ``timeout``
  (plus scheduling slack): a DNS failure or timeout answers ``Policy.UNKNOWN``, never
  ``NONE``: a post stored with "unknown" is looked up again when it is delivered
  (``lookup_from_thread``), and is sent unmunged only if it is still unknown then,
  because holding up a delivery is worse than an occasional unmunged copy.
- Answers, including "no record", are cached per domain for ``ttl``; failures are
  cached for the shorter ``failure_ttl`` so a dead nameserver costs one timeout per
  window, not one per post, yet a blip does not disable munging for an hour.
- At most one query per domain is in flight: concurrent callers share it.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Callable

import dns.asyncresolver
import dns.exception
import dns.resolver

from listserv.config import Config

log = logging.getLogger(__name__)


class Policy(enum.Enum):
    NONE = "none"
    QUARANTINE = "quarantine"
    REJECT = "reject"
    UNKNOWN = "unknown"  # the lookup failed or timed out: ask again later


_PUBLISHED = (Policy.NONE, Policy.QUARANTINE, Policy.REJECT)


_POLICY_BY_NAME = {p.value: p for p in _PUBLISHED}


def _parse_tags(txt: str) -> tuple[Policy, Policy | None] | None:
    """(p, sp) of a DMARC record, or None when ``txt`` is not one."""
    tags: dict[str, str] = {}
    for i, part in enumerate(txt.split(";")):
        key, eq, value = part.partition("=")
        key, value = key.strip().lower(), value.strip()
        if i == 0:
            # RFC 7489 6.3: v=DMARC1 must be the first tag; that is what tells a
            # DMARC record apart from any other TXT record at the same name.
            if not eq or key != "v" or value.upper() != "DMARC1":
                return None
            continue
        if eq and key not in tags:
            tags[key] = value.lower()
    # RFC 7489 6.6.3: a record with a missing or invalid p= is treated as p=none
    # at best; for our purposes (munge or not) "none" is the safe reading either way.
    p = _POLICY_BY_NAME.get(tags.get("p", ""), Policy.NONE)
    sp = _POLICY_BY_NAME.get(tags.get("sp", ""))
    return p, sp


def parse_dmarc_record(txt: str) -> Policy | None:
    """The ``p=`` policy of a DMARC TXT record; None if ``txt`` is not a DMARC record."""
    parsed = _parse_tags(txt)
    return None if parsed is None else parsed[0]


# A simplification of the Public Suffix List: the handful of two-label public
# suffixes our community's mail actually comes from. A domain under a suffix not
# listed here gets the wrong organisational domain, which only costs a missed
# fallback lookup (treated as no policy), never a wrong munge of an unrelated domain.
# fmt: off
_TWO_LABEL_SUFFIXES = frozenset({
    "co.uk", "org.uk", "gov.uk", "ac.uk", "ltd.uk", "plc.uk", "me.uk", "net.uk", "police.uk",
    "com.au", "net.au", "org.au", "gov.au", "edu.au",
    "co.nz", "org.nz", "govt.nz", "co.za", "co.jp", "com.br", "co.in",
})
# fmt: on


def _normalise(domain: str) -> str:
    return domain.strip().rstrip(".").lower()


def organisational_domain(domain: str) -> str:
    """The registered domain: last two labels, or three under a known two-label suffix."""
    labels = _normalise(domain).split(".")
    keep = 3 if ".".join(labels[-2:]) in _TWO_LABEL_SUFFIXES else 2
    return ".".join(labels[-keep:])


_MITIGATION_SETTINGS = ("auto", "always", "never")


def needs_munging(policy: Policy, setting: str) -> bool:
    """Whether a list with ``dmarc_mitigation = setting`` rewrites From for ``policy``."""
    if setting == "auto":
        return policy in (Policy.REJECT, Policy.QUARANTINE)
    if setting in ("always", "never"):
        return setting == "always"
    # Settings are validated at start-up; an unknown value here is a bug.
    raise ValueError(f"dmarc_mitigation must be one of {_MITIGATION_SETTINGS}, not {setting!r}")


class _LookupFailed(Exception):
    """DNS did not give an answer (timeout, SERVFAIL, unreachable): not the same as 'no record'."""


class DmarcResolver:
    """Looks up and caches DMARC policies; see the module docstring for its guarantees."""

    # Enough for every domain a busy list hears from in a TTL; past it, expired
    # entries are swept so a flood of one-off domains cannot grow memory forever.
    _MAX_ENTRIES = 4096

    def __init__(
        self,
        *,
        nameservers: list[str] | None = None,
        port: int = 53,
        timeout: float = 1.0,
        ttl: float = 3600.0,
        failure_ttl: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._timeout = timeout
        self._ttl = ttl
        self._failure_ttl = failure_ttl
        self._clock = clock
        self._cache: dict[str, tuple[Policy, float]] = {}
        self._inflight: dict[str, asyncio.Task[Policy]] = {}
        resolver: dns.asyncresolver.Resolver | None
        if nameservers is not None:
            resolver = dns.asyncresolver.Resolver(configure=False)
            resolver.nameservers = list(nameservers)
            resolver.port = port
        else:
            try:
                resolver = dns.asyncresolver.Resolver()
            except (dns.exception.DNSException, OSError) as exc:
                # No readable resolv.conf: DMARC is a courtesy, not a reason to
                # refuse to start, so every domain simply has no policy.
                log.warning("no DNS configuration, DMARC lookups disabled: %s", exc)
                resolver = None
        if resolver is not None:
            resolver.timeout = timeout
            resolver.lifetime = timeout
        self._resolver = resolver

    async def policy(self, domain: str) -> Policy:
        """The DMARC policy that applies to mail From ``domain``; UNKNOWN if DNS failed."""
        key = _normalise(domain)
        if not key or self._resolver is None:
            return Policy.NONE
        cached = self._cache.get(key)
        if cached is not None and cached[1] > self._clock():
            return cached[0]
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.create_task(self._lookup(key))
            self._inflight[key] = task
            task.add_done_callback(lambda _t: self._inflight.pop(key, None))
        # shield: one impatient caller being cancelled must not cancel the
        # lookup that other callers (and the cache) are waiting on.
        return await asyncio.shield(task)

    async def _lookup(self, key: str) -> Policy:
        result, answered = await self._discover(key)
        # Stored by the task itself so the answer is cached even if every caller gave up.
        now = self._clock()
        ttl = self._ttl if answered else self._failure_ttl
        if key not in self._cache and len(self._cache) >= self._MAX_ENTRIES:
            self._cache = {k: v for k, v in self._cache.items() if v[1] > now}
            while len(self._cache) >= self._MAX_ENTRIES:
                del self._cache[next(iter(self._cache))]
        self._cache[key] = (result, now + ttl)
        return result

    async def _discover(self, domain: str) -> tuple[Policy, bool]:
        """RFC 7489 6.6.3 policy discovery; (policy, whether DNS actually answered)."""
        # One budget for both queries, measured on the real clock (the injected
        # clock is for cache expiry and may be frozen in tests).
        deadline = time.monotonic() + self._timeout
        try:
            records = await self._dmarc_records(domain, deadline)
            if len(records) == 1:
                return records[0][0], True
            org = organisational_domain(domain)
            # More than one record means a broken publisher: RFC says apply no policy.
            if records or org == domain:
                return Policy.NONE, True
            records = await self._dmarc_records(org, deadline)
            if len(records) == 1:
                p, sp = records[0]
                return (sp or p), True
            return Policy.NONE, True
        except _LookupFailed as exc:
            log.info("DMARC lookup for %s failed, policy unknown: %s", domain, exc)
            return Policy.UNKNOWN, False
        except Exception:
            # Never let an unexpected error (a dnspython edge case, a malformed
            # name) reach the delivery path; log it loudly and carry on.
            log.exception("DMARC lookup for %s raised, policy unknown", domain)
            return Policy.UNKNOWN, False

    async def _dmarc_records(
        self, domain: str, deadline: float
    ) -> list[tuple[Policy, Policy | None]]:
        assert self._resolver is not None
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _LookupFailed("deadline passed before the organisational-domain query")
        try:
            answer = await self._resolver.resolve(
                f"_dmarc.{domain}.", "TXT", search=False, lifetime=remaining
            )
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except dns.exception.DNSException as exc:
            raise _LookupFailed(str(exc)) from exc
        found: list[tuple[Policy, Policy | None]] = []
        for rdata in answer:
            # A TXT record longer than 255 bytes arrives as several strings that
            # together form one record (RFC 7208 3.3 convention, used by DMARC too).
            txt = b"".join(rdata.strings).decode("utf-8", "replace")
            parsed = _parse_tags(txt)
            if parsed is not None:
                found.append(parsed)
        return found


def lookup_from_thread(resolver: DmarcResolver, loop: asyncio.AbstractEventLoop,
                       timeout: float) -> Callable[[str], Policy]:
    """A blocking ``domain -> Policy`` for code in worker threads (the renderer), asking
    ``resolver`` on ``loop`` so its cache and shared lookups serve both doors."""

    def lookup(domain: str) -> Policy:
        try:
            asyncio.get_running_loop()
            return Policy.UNKNOWN  # called on a loop: waiting here would block it
        except RuntimeError:
            pass
        if loop.is_closed():
            return Policy.UNKNOWN
        future = asyncio.run_coroutine_threadsafe(resolver.policy(domain), loop)
        try:
            return future.result(timeout)
        except Exception:
            future.cancel()
            return Policy.UNKNOWN

    return lookup


def resolver_for(cfg: Config) -> DmarcResolver:
    """The resolver ``[delivery] dmarc_nameservers`` and ``dmarc_timeout`` ask for."""
    servers = cfg.delivery.dmarc_nameservers.split()
    if not servers:
        return DmarcResolver(timeout=cfg.delivery.dmarc_timeout)
    hosts, port = [], 53
    for entry in servers:
        host, _, p = entry.partition(":")
        hosts.append(host)
        port = int(p) if p else port
    return DmarcResolver(nameservers=hosts, port=port, timeout=cfg.delivery.dmarc_timeout)
