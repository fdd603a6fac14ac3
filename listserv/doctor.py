"""``commonroom doctor``: what the mail world sees of this installation, checked from outside.

Each check returns a ``Finding`` (OK, WARN or FAIL, what is wrong, and the exact record or
setting that fixes it); nothing here changes anything. DNS goes through dnspython with
``[delivery] dmarc_nameservers`` (the same servers the DMARC lookups use); every network step
has the short ``timeout`` given, so a dead server costs seconds, not minutes.

Invariants:
- A check never raises for a network problem: an unanswered question is a WARN or FAIL that
  says which question went unanswered.
- The smarthost is asked to take the envelope senders Commonroom really uses: the list's
  ``-bounces`` address (notices) and its VERP form (members' copies); without a list, postmaster.
- SPF is evaluated for the smarthost's address (ip4, ip6, a, mx, include, redirect, all) with
  RFC 7208's limit of 10 lookups; anything it cannot decide (macros, exists, ptr) is a WARN.
  A smarthost on loopback or a private network sends on from an address doctor cannot see:
  SPF is then evaluated for the MX hosts' addresses, and a miss is a WARN (a guess), not a FAIL.
"""

from __future__ import annotations

import asyncio
import enum
import ipaddress
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass

import aiosmtplib
import dns.asyncresolver
import dns.exception
import dns.resolver

from listserv.addresses import Kind, list_address, verp_sender
from listserv.config import Config, ConfigError
from listserv.dkim import dns_name, load_signer, txt_record
from listserv.dmarc import parse_dmarc_record

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class Status(enum.Enum):
    OK = "OK"
    WARN = "WARN"
    FAIL = "FAIL"


@dataclass(frozen=True)
class Finding:
    check: str
    status: Status
    detail: str
    fix: str = ""


class Unanswered(Exception):
    """DNS gave no answer (timeout, SERVFAIL): not the same as "no such record"."""


class Dns:
    def __init__(self, cfg: Config, timeout: float) -> None:
        servers = cfg.delivery.dmarc_nameservers.split()
        if servers:
            self.resolver = dns.asyncresolver.Resolver(configure=False)
            hosts, port = [], 53
            for entry in servers:
                host, _, p = entry.partition(":")
                hosts.append(host)
                port = int(p) if p else port
            self.resolver.nameservers = hosts
            self.resolver.port = port
        else:
            self.resolver = dns.asyncresolver.Resolver()
        self.resolver.timeout = self.resolver.lifetime = timeout

    async def query(self, name: str, rdtype: str) -> list[str]:
        """Answers as text (TXT strings joined); [] for NXDOMAIN or no record of that type."""
        try:
            answer = await self.resolver.resolve(name, rdtype)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except dns.exception.DNSException as e:
            raise Unanswered(f"{rdtype} {name}: {type(e).__name__}") from None
        if rdtype == "TXT":
            return [b"".join(r.strings).decode("utf-8", "replace") for r in answer]
        return [r.to_text() for r in answer]

    async def addresses(self, name: str) -> list[Address]:
        found: list[Address] = []
        for rdtype in ("A", "AAAA"):
            found += [ipaddress.ip_address(a) for a in await self.query(name, rdtype)]
        return found


async def check_mx(cfg: Config, d: Dns) -> Finding:
    domain = cfg.server.domain
    try:
        mx = await d.query(domain, "MX")
    except Unanswered as e:
        return Finding("MX", Status.FAIL, f"DNS did not answer ({e})", "check the nameservers")
    if not mx:
        return Finding("MX", Status.FAIL, f"{domain} has no MX record: mail to the lists and "
                       "their bounce addresses cannot arrive",
                       f"{domain}. IN MX 10 YOUR-MTA-HOST.")
    return Finding("MX", Status.OK, f"{domain} MX {', '.join(sorted(mx))}")


class _Spf:
    """Just enough of RFC 7208 to answer "may this address send for this domain?"."""

    def __init__(self, d: Dns, ip: Address) -> None:
        self.d, self.ip, self.lookups = d, ip, 0
        self.undecided: list[str] = []

    async def _count(self) -> None:
        self.lookups += 1
        if self.lookups > 10:
            raise ValueError("more than 10 DNS lookups (RFC 7208 4.6.4 permerror)")

    async def record(self, domain: str) -> str | None:
        spf = [t for t in await self.d.query(domain, "TXT") if t.lower().startswith("v=spf1")]
        if len(spf) > 1:
            raise ValueError(f"{domain} publishes {len(spf)} SPF records (permerror): keep one")
        return spf[0] if spf else None

    def _in(self, addrs: list[Address], cidr: str) -> bool:
        for a in addrs:
            if a.version != self.ip.version:
                continue
            bits = cidr or ("32" if a.version == 4 else "128")
            if self.ip in ipaddress.ip_network(f"{a}/{bits}", strict=False):
                return True
        return False

    async def evaluate(self, domain: str) -> str | None:
        """The qualifier of the mechanism that matched ("+", "-", "~", "?"), or None."""
        record = await self.record(domain)
        if record is None:
            return None
        redirect = None
        for term in record.split()[1:]:
            q = term[0] if term[0] in "+-~?" else "+"
            body = term.lstrip("+-~?").lower()
            if body.startswith("redirect="):
                redirect = body.split("=", 1)[1]
                continue
            if "=" in body.split(":", 1)[0]:
                continue  # exp= and unknown modifiers
            name, _, arg = body.partition(":")
            # a, a:host, a/24, a:host/24//64 (the same for mx): the host and IPv4 prefix
            name, _, cidr_on_name = name.partition("/")
            spec, _, v4cidr = (arg or domain).partition("/")
            v4cidr = (v4cidr or cidr_on_name).split("/", 1)[0]
            if name == "all":
                return q
            if name in ("ip4", "ip6"):
                if self.ip in ipaddress.ip_network(arg, strict=False):
                    return q
            elif name == "a":
                await self._count()
                if self._in(await self.d.addresses(spec), v4cidr):
                    return q
            elif name == "mx":
                await self._count()
                for mx in await self.d.query(spec, "MX"):
                    if self._in(await self.d.addresses(mx.split()[-1]), v4cidr):
                        return q
            elif name == "include":
                await self._count()
                if await self.evaluate(arg) == "+":
                    return q
            else:
                self.undecided.append(term)
        if redirect:
            await self._count()
            return await self.evaluate(redirect)
        return None


async def _smarthost_ip(cfg: Config, d: Dns) -> Address | None:
    assert cfg.smarthost is not None
    host = cfg.smarthost[0]
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        found = await d.addresses(host)
        return found[0] if found else None


# Addresses mail cannot leave the host from: the MTA behind them sends from another one.
# (Not ``is_private``, which also takes in the documentation ranges.)
_LOCAL_NETS = tuple(ipaddress.ip_network(n) for n in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7"))


def _local(ip: Address) -> bool:
    return ip.is_loopback or ip.is_link_local or any(
        ip.version == net.version and ip in net for net in _LOCAL_NETS)


async def _mx_addresses(d: Dns, domain: str) -> list[Address]:
    found: list[Address] = []
    for mx in await d.query(domain, "MX"):
        found += await d.addresses(mx.split()[-1])
    return found


async def check_spf(cfg: Config, d: Dns) -> Finding:
    domain = cfg.server.domain
    if cfg.smarthost is None:
        return Finding("SPF", Status.WARN, "no smarthost is set (mail goes to the Maildir), so "
                       "there is no sending address to check", "[delivery] smarthost = \"HOST:PORT\"")
    try:
        ip = await _smarthost_ip(cfg, d)
        if ip is None:
            return Finding("SPF", Status.FAIL, f"the smarthost {cfg.smarthost[0]} has no address",
                           "[delivery] smarthost")
        if _local(ip):
            return await _check_spf_local(d, domain, ip)
        mech = "ip4" if ip.version == 4 else "ip6"
        spf = _Spf(d, ip)
        if await spf.record(domain) is None:
            return Finding("SPF", Status.FAIL, f"{domain} publishes no SPF record",
                           f'{domain}. IN TXT "v=spf1 mx {mech}:{ip} -all"')
        result = await spf.evaluate(domain)
    except Unanswered as e:
        return Finding("SPF", Status.FAIL, f"DNS did not answer ({e})", "check the nameservers")
    except ValueError as e:
        return Finding("SPF", Status.FAIL, f"the SPF record of {domain} is broken: {e}",
                       f"fix the record of {domain}")
    if result == "+":
        return Finding("SPF", Status.OK, f"{domain} allows the smarthost's address {ip}")
    extra = f" (not evaluated: {' '.join(spf.undecided)})" if spf.undecided else ""
    return Finding("SPF", Status.WARN if spf.undecided else Status.FAIL,
                   f"{domain}'s SPF record does not allow the smarthost's address {ip}{extra}",
                   f"add {mech}:{ip} to the SPF record of {domain}, before its 'all'")


async def _check_spf_local(d: Dns, domain: str, smarthost: Address) -> Finding:
    """The smarthost is this host's MTA (or one on a private network): mail leaves from that
    MTA's public address, which cannot be seen from here. The MX hosts' addresses are the best
    guess (deploy/ runs one Postfix for both), so a miss is a WARN, not a FAIL."""
    where = f"the smarthost {smarthost} is local, so mail leaves from your MTA's public address"
    if await _Spf(d, smarthost).record(domain) is None:
        return Finding("SPF", Status.FAIL, f"{domain} publishes no SPF record",
                       f'{domain}. IN TXT "v=spf1 mx -all"')
    guesses = await _mx_addresses(d, domain)
    if not guesses:
        return Finding("SPF", Status.WARN, f"{where}, which doctor cannot see ({domain} has no "
                       "MX host to take it from)",
                       f"make sure the SPF record of {domain} allows your MTA's public address")
    for ip in guesses:
        spf = _Spf(d, ip)
        if await spf.evaluate(domain) == "+":
            return Finding("SPF", Status.OK, f"{where}; {domain} allows the MX host's address "
                           f"{ip} (assumed to be that MTA)")
    listed = ", ".join(str(ip) for ip in guesses)
    return Finding("SPF", Status.WARN, f"{where}; {domain}'s SPF record does not allow its MX "
                   f"host's address {listed}",
                   f"add 'mx' to the SPF record of {domain} if your MTA sends from its MX host, "
                   "else its public address (ip4:/ip6:)")


async def check_dkim(cfg: Config, d: Dns) -> Finding:
    sel, domain = cfg.delivery.dkim_selector, cfg.server.domain
    try:
        signer = load_signer(cfg)
    except ConfigError as e:
        return Finding("DKIM", Status.FAIL, str(e), "commonroom dkim keygen --selector SELECTOR")
    if signer is None:
        return Finding("DKIM", Status.FAIL, "mail is not DKIM-signed: large providers require it",
                       "commonroom dkim keygen --selector SELECTOR, publish the record it prints, "
                       "then set [delivery] dkim_selector and dkim_key_file")
    want = signer.key.txt_value()
    record = txt_record(sel, domain, want)
    try:
        published = await d.query(dns_name(sel, domain), "TXT")
    except Unanswered as e:
        return Finding("DKIM", Status.FAIL, f"DNS did not answer ({e})", record)
    if not published:
        return Finding("DKIM", Status.FAIL, f"no key is published at {dns_name(sel, domain)}",
                       record)
    wanted_p = signer.key.public_b64()
    for text in published:
        tags = dict(t.strip().partition("=")[::2] for t in text.split(";") if "=" in t)
        if "".join(tags.get("p", "").split()) == wanted_p:
            return Finding("DKIM", Status.OK, f"{dns_name(sel, domain)} publishes the key in "
                           f"{cfg.delivery.dkim_key_file}")
    return Finding("DKIM", Status.FAIL, f"the key published at {dns_name(sel, domain)} is not "
                   f"the one in {cfg.delivery.dkim_key_file}", record)


async def check_dmarc(cfg: Config, d: Dns) -> Finding:
    domain = cfg.server.domain
    fix = f'_dmarc.{domain}. IN TXT "v=DMARC1; p=none; rua=mailto:postmaster@{domain}"'
    try:
        records = [t for t in await d.query(f"_dmarc.{domain}", "TXT")
                   if t.lower().startswith("v=dmarc1")]
    except Unanswered as e:
        return Finding("DMARC", Status.FAIL, f"DNS did not answer ({e})", fix)
    if not records:
        return Finding("DMARC", Status.FAIL, f"_dmarc.{domain} has no DMARC record: large "
                       "providers require one of bulk senders", fix)
    if len(records) > 1:
        return Finding("DMARC", Status.FAIL, f"_dmarc.{domain} has {len(records)} DMARC records "
                       "(receivers then ignore them all)", fix)
    tags = dict(t.strip().partition("=")[::2] for t in records[0].split(";") if "=" in t)
    p = tags.get("p", "").strip().lower()
    if parse_dmarc_record(records[0]) is None or p not in ("none", "quarantine", "reject"):
        return Finding("DMARC", Status.FAIL, f"the DMARC record is not valid (p= must be none, "
                       f"quarantine or reject): {records[0]!r}", fix)
    return Finding("DMARC", Status.OK, records[0])


def envelope_senders(cfg: Config, list_name: str | None) -> tuple[str, ...]:
    """What Commonroom puts in MAIL FROM for ``list_name``: its bounce address (notices) and
    that address VERP-encoded (each member's copy; postmaster stands in for the member)."""
    domain = cfg.server.domain
    if list_name is None:
        return (f"postmaster@{domain}",)
    return (list_address(list_name, domain, Kind.BOUNCES),
            verp_sender(list_name, domain, f"postmaster@{domain}"))


async def check_smarthost(cfg: Config, timeout: float,
                          list_name: str | None = None) -> Finding:
    if cfg.smarthost is None:
        return Finding("smarthost", Status.WARN, "no smarthost: mail is written to "
                       f"{cfg.maildir_path}, not sent", "[delivery] smarthost = \"HOST:PORT\"")
    host, port = cfg.smarthost
    senders = envelope_senders(cfg, list_name)
    sender = senders[0]
    accepted = " and ".join(senders)
    smtp = aiosmtplib.SMTP(hostname=host, port=port, timeout=timeout, start_tls=False,
                           local_hostname=cfg.server.domain)
    notes: list[str] = []
    try:
        await smtp.connect()
        await smtp.ehlo()
        if smtp.supports_extension("starttls"):
            try:
                await smtp.starttls()
            except (aiosmtplib.SMTPException, ssl.SSLError) as e:
                return Finding("smarthost", Status.FAIL, f"{host}:{port} STARTTLS failed: {e}",
                               "fix the smarthost's TLS certificate")
        else:
            notes.append("offers no STARTTLS")
        for sender in senders:
            code, _text = await smtp.mail(sender)
            await smtp.rset()
        await smtp.quit()
    except aiosmtplib.SMTPResponseException as e:
        return Finding("smarthost", Status.FAIL, f"{host}:{port} refused MAIL FROM:<{sender}>: "
                       f"{e.code} {e.message}",
                       f"let the smarthost relay for {cfg.server.domain} (accept {accepted})")
    except (aiosmtplib.SMTPException, OSError) as e:
        return Finding("smarthost", Status.FAIL, f"cannot reach {host}:{port}: {e}",
                       "[delivery] smarthost, or start the MTA")
    finally:
        smtp.close()
    if notes:
        return Finding("smarthost", Status.WARN, f"{host}:{port} {', '.join(notes)}",
                       "enable STARTTLS on the smarthost (smtpd_tls_security_level = may)")
    return Finding("smarthost", Status.OK, f"{host}:{port} STARTTLS, accepts {accepted} ({code})")


def _fetch(url: str, timeout: float) -> int:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return int(r.status)


async def check_web(cfg: Config, timeout: float) -> Finding:
    base = cfg.server.web_base_url.rstrip("/")
    fix = "[server] web_base_url = \"https://YOUR-HOST\" (with TLS in front; deploy/ has one)"
    if not base.startswith("https://"):
        return Finding("web", Status.FAIL, f"web_base_url {base} is not HTTPS: one-click "
                       "unsubscribe (RFC 8058) needs an https link", fix)
    try:
        status = await asyncio.to_thread(_fetch, base + "/healthz", timeout)
    except urllib.error.HTTPError as e:
        status = e.code
    except (urllib.error.URLError, OSError, ValueError) as e:
        return Finding("web", Status.FAIL, f"{base} is not reachable: {e}", fix)
    if status >= 400:
        return Finding("web", Status.FAIL, f"{base}/healthz answered {status}",
                       "check 'commonroom serve' and the reverse proxy")
    return Finding("web", Status.OK, f"{base}/healthz answered {status}")


async def run(cfg: Config, *, timeout: float = 3.0, list_name: str | None = None) -> list[Finding]:
    """Every check; the smarthost's with ``list_name``'s envelope senders (postmaster's when
    there is no list yet)."""
    d = Dns(cfg, timeout)
    return list(await asyncio.gather(
        check_mx(cfg, d), check_spf(cfg, d), check_dkim(cfg, d), check_dmarc(cfg, d),
        check_smarthost(cfg, timeout, list_name), check_web(cfg, timeout)))
