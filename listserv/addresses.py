"""What a recipient address means: the Mailman-compatible address scheme of a list.

Each list answers at ``LIST@DOMAIN`` (post) and at ``LIST-<suffix>@DOMAIN`` for join, leave,
request, confirm (``-confirm+TOKEN``), bounces (``-bounces`` and VERP ``-bounces+user=host``)
and owner. This module turns an address into a ``Destination`` and back; it does no I/O, and
the only outside knowledge it needs, whether a list exists, comes in as a callable.

Invariants:
- ``Destination.list_name`` is lower-case and is a name for which ``list_exists`` said yes.
- A list whose own name ends in a suffix (``foo-owner``) wins over the shorter reading
  (``foo``'s owner address): the longest existing list name is tried first.
- ``parse_recipient(list_address(n, d, k, x), d, exists)`` gives back ``(n, k, x)`` for every
  list ``n`` that exists and every well-formed ``x``.
- Nothing here raises on hostile input; ``list_address`` and ``verp_sender`` raise
  ``ValueError`` only when called with arguments no caller should build (a bug).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

MAX_ADDRESS_LENGTH = 254  # RFC 5321 path limit (256) minus the angle brackets

# Characters that cannot appear unquoted in an addr-spec; quoted local parts are not worth
# supporting for subscribers, and refusing them keeps VERP and header building simple.
_SPECIALS = frozenset('<>(),;:"\\')


class Kind(enum.Enum):
    POST = "post"
    JOIN = "join"
    LEAVE = "leave"
    REQUEST = "request"
    CONFIRM = "confirm"
    BOUNCES = "bounces"
    OWNER = "owner"


@dataclass(frozen=True)
class Destination:
    list_name: str
    kind: Kind
    # CONFIRM: the token. BOUNCES: the subscriber decoded from VERP, "probe-TOKEN" for a probe,
    # or None for plain -bounces.
    extra: str | None = None


# Suffixes that stand alone (no "+extra"). JOIN and LEAVE have two spellings each, like Mailman.
_PLAIN_SUFFIXES: tuple[tuple[str, Kind], ...] = (
    ("-join", Kind.JOIN),
    ("-subscribe", Kind.JOIN),
    ("-leave", Kind.LEAVE),
    ("-unsubscribe", Kind.LEAVE),
    ("-request", Kind.REQUEST),
    ("-bounces", Kind.BOUNCES),
    ("-owner", Kind.OWNER),
)

# The suffix list_address() writes for each kind (the first spelling above).
_SUFFIX_FOR: dict[Kind, str] = {
    Kind.POST: "",
    Kind.JOIN: "-join",
    Kind.LEAVE: "-leave",
    Kind.REQUEST: "-request",
    Kind.CONFIRM: "-confirm",
    Kind.BOUNCES: "-bounces",
    Kind.OWNER: "-owner",
}

# Every suffix a list name must not end in, or its addresses would be ambiguous.
SUFFIXES: tuple[str, ...] = (*(s for s, _ in _PLAIN_SUFFIXES), _SUFFIX_FOR[Kind.CONFIRM])


def normalise_address(addr: str) -> str | None:
    """``addr`` stripped, with its domain lower-cased; None unless a plausible addr-spec.

    The local part keeps its case: RFC 5321 lets the receiving host treat it as significant.
    """
    addr = addr.strip()
    if not addr or len(addr) > MAX_ADDRESS_LENGTH or addr.count("@") != 1:
        return None
    if any(c.isspace() or not c.isprintable() or c in _SPECIALS for c in addr):
        return None
    local, _, domain = addr.partition("@")
    if not local or not domain or "[" in local or "]" in local:
        return None
    if not _plausible_domain(domain):
        return None
    return f"{local}@{domain.lower()}"


def _plausible_domain(domain: str) -> bool:
    if domain.startswith("["):
        return domain.endswith("]") and len(domain) > 2  # an address literal
    # Labels of letters, digits, "-" (and "_", seen in the wild); no empty label. Keeping "="
    # and "+" out is what makes VERP encoding reversible.
    return all(
        label and all(c.isalnum() or c in "-_" for c in label) for label in domain.split(".")
    )


def _is_token(text: str) -> bool:
    """A confirmation token must survive as one unquoted piece of a local part."""
    return bool(text) and all(
        c.isprintable() and not c.isspace() and c not in _SPECIALS and c not in "+@[]"
        for c in text
    )


def _split(address: str) -> tuple[str, str] | None:
    """(local part, domain) of an envelope address, or None if it is not plausible."""
    address = address.strip()
    if address.startswith("<") and address.endswith(">"):
        address = address[1:-1]
    normal = normalise_address(address)
    if normal is None:
        return None
    local, _, host = normal.partition("@")
    return local, host


# A bounce probe's envelope sender is LIST-bounces+probe-TOKEN@DOMAIN (listserv.bounces): no
# "=", so it never reads as a VERP-encoded subscriber; Destination.extra keeps it as it is.
PROBE_PREFIX = "probe-"


def probe_sender(list_name: str, domain: str, token: str) -> str:
    local, _, host = list_address(list_name, domain, Kind.BOUNCES).partition("@")
    return f"{local}+{PROBE_PREFIX}{token}@{host}"


def _verp_decode(encoded: str) -> str | None:
    # "user=host" -> "user@host"; split at the last "=" because only the host cannot hold one.
    user, sep, host = encoded.rpartition("=")
    if not sep:
        return None
    return normalise_address(f"{user}@{host}")


def _readings(local: str) -> list[Destination]:
    """Every way the local part could name (list, kind, extra), before asking which lists exist."""
    base, plus, extra = local.partition("+")
    base = base.lower()
    if plus:
        # List names never hold "+", so only confirm and VERP bounces carry an extra.
        if base.endswith("-confirm") and len(base) > len("-confirm") and _is_token(extra):
            return [Destination(base[: -len("-confirm")], Kind.CONFIRM, extra)]
        if base.endswith("-bounces") and len(base) > len("-bounces"):
            # A bounce whose VERP part is garbled still belongs to the list: refusing it at
            # RCPT time would only make the remote MTA bounce the bounce.
            if extra.startswith(PROBE_PREFIX) and "=" not in extra and _is_token(extra):
                return [Destination(base[: -len("-bounces")], Kind.BOUNCES, extra)]
            return [Destination(base[: -len("-bounces")], Kind.BOUNCES, _verp_decode(extra))]
        return []
    readings = [Destination(base, Kind.POST)]
    for suffix, kind in _PLAIN_SUFFIXES:
        if base.endswith(suffix) and len(base) > len(suffix):
            readings.append(Destination(base[: -len(suffix)], kind))
    return readings


def parse_recipient(
    address: str, domain: str, list_exists: Callable[[str], bool]
) -> Destination | None:
    """What ``address`` means on ``domain``; None for other domains, unknown lists or junk."""
    parts = _split(address)
    if parts is None:
        return None
    local, host = parts
    if host != domain.strip().lower():
        return None
    # Longest list name first, so "foo-owner" the list beats the owner address of "foo".
    for reading in sorted(_readings(local), key=lambda d: len(d.list_name), reverse=True):
        if list_exists(reading.list_name):
            return reading
    return None


def list_address(
    list_name: str, domain: str, kind: Kind = Kind.POST, extra: str | None = None
) -> str:
    """The address of ``list_name`` for ``kind``, e.g. ``LIST-confirm+TOKEN@DOMAIN``.

    ``extra`` is the token for CONFIRM (required) and the subscriber address for BOUNCES
    (optional; it is VERP-encoded as ``user=host``). Other kinds take no extra.
    """
    name = list_name.strip().lower()
    host = domain.strip().lower()
    if not name or "+" in name or "@" in name or not host:
        raise ValueError(f"not a list name and domain: {list_name!r}, {domain!r}")
    local = name + _SUFFIX_FOR[kind]
    if kind is Kind.CONFIRM:
        if extra is None or not _is_token(extra):
            raise ValueError(f"not a confirmation token: {extra!r}")
        local += "+" + extra
    elif kind is Kind.BOUNCES and extra is not None:
        subscriber = normalise_address(extra)
        if subscriber is None:
            raise ValueError(f"not an address to VERP-encode: {extra!r}")
        local += "+" + subscriber.replace("@", "=")
    elif extra is not None:
        raise ValueError(f"{kind.name} addresses take no extra, got {extra!r}")
    return f"{local}@{host}"


def verp_sender(list_name: str, domain: str, recipient: str) -> str:
    """Envelope sender for one delivery: ``LIST-bounces+user=host@DOMAIN``.

    A bounce to it names the failing subscriber even when the bounce report itself does not.
    """
    return list_address(list_name, domain, Kind.BOUNCES, recipient)


def verp_affixes(list_name: str, domain: str) -> tuple[str, str]:
    """``(prefix, suffix)`` around a VERP-encoded subscriber: ``("LIST-bounces+", "@DOMAIN")``.

    For callers that build VERP senders in bulk elsewhere (the fan-out does it in SQL):
    ``prefix + subscriber.replace("@", "=") + suffix == verp_sender(...)`` for every
    normalised subscriber address.
    """
    local, _, host = list_address(list_name, domain, Kind.BOUNCES).partition("@")
    return local + "+", "@" + host
