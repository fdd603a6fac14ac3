"""listserv.addresses: what a recipient address means, and building addresses back."""

from __future__ import annotations

import pytest

from listserv import lists
from listserv.addresses import (
    SUFFIXES,
    Destination,
    Kind,
    list_address,
    normalise_address,
    parse_recipient,
    verp_affixes,
    verp_sender,
)
from listserv.decorate import ListInfo

DOMAIN = "lists.example.org"
LISTS = {"dev", "digital-tools", "foo", "foo-owner", "a"}


def exists(name: str) -> bool:
    return name in LISTS


def D(name: str, kind: Kind, extra: str | None = None) -> Destination:
    return Destination(name, kind, extra)


RECIPIENTS: list[tuple[str, Destination | None]] = [
    # every suffix of a plain list
    ("dev@lists.example.org", D("dev", Kind.POST)),
    ("dev-join@lists.example.org", D("dev", Kind.JOIN)),
    ("dev-subscribe@lists.example.org", D("dev", Kind.JOIN)),
    ("dev-leave@lists.example.org", D("dev", Kind.LEAVE)),
    ("dev-unsubscribe@lists.example.org", D("dev", Kind.LEAVE)),
    ("dev-request@lists.example.org", D("dev", Kind.REQUEST)),
    ("dev-owner@lists.example.org", D("dev", Kind.OWNER)),
    ("dev-bounces@lists.example.org", D("dev", Kind.BOUNCES)),
    ("dev-confirm+abc123@lists.example.org", D("dev", Kind.CONFIRM, "abc123")),
    ("dev-bounces+joe=example.com@lists.example.org", D("dev", Kind.BOUNCES, "joe@example.com")),
    # case: domain and list name are case-insensitive, tokens and subscriber local parts are not
    ("DEV@LISTS.EXAMPLE.ORG", D("dev", Kind.POST)),
    ("Dev-JOIN@Lists.Example.Org", D("dev", Kind.JOIN)),
    ("DEV-CONFIRM+AbC@lists.example.org", D("dev", Kind.CONFIRM, "AbC")),
    ("dev-bounces+Joe=EXAMPLE.com@lists.example.org", D("dev", Kind.BOUNCES, "Joe@example.com")),
    # VERP: "+" and "=" in the subscriber's own address; split at the last "="
    ("dev-bounces+joe+tag=example.com@lists.example.org",
     D("dev", Kind.BOUNCES, "joe+tag@example.com")),
    ("dev-bounces+a=b=example.com@lists.example.org", D("dev", Kind.BOUNCES, "a=b@example.com")),
    ("dev-bounces+jö=exämple.org@lists.example.org", D("dev", Kind.BOUNCES, "jö@exämple.org")),
    # a garbled VERP part is still a bounce for the list, just not attributable
    ("dev-bounces+garbage@lists.example.org", D("dev", Kind.BOUNCES)),
    ("dev-bounces+@lists.example.org", D("dev", Kind.BOUNCES)),
    ("dev-bounces+joe=@lists.example.org", D("dev", Kind.BOUNCES)),
    # lists whose names hold hyphens, and the longest existing name winning
    ("digital-tools@lists.example.org", D("digital-tools", Kind.POST)),
    ("digital-tools-request@lists.example.org", D("digital-tools", Kind.REQUEST)),
    ("digital-tools-confirm+t0k@lists.example.org", D("digital-tools", Kind.CONFIRM, "t0k")),
    ("digital-tools-bounces+x=y.org@lists.example.org",
     D("digital-tools", Kind.BOUNCES, "x@y.org")),
    ("foo-owner@lists.example.org", D("foo-owner", Kind.POST)),
    ("foo-owner-owner@lists.example.org", D("foo-owner", Kind.OWNER)),
    ("foo-owner-request@lists.example.org", D("foo-owner", Kind.REQUEST)),
    ("foo-request@lists.example.org", D("foo", Kind.REQUEST)),
    ("a-join@lists.example.org", D("a", Kind.JOIN)),
    # envelope forms
    ("<dev@lists.example.org>", D("dev", Kind.POST)),
    ("  dev-leave@lists.example.org\r\n", D("dev", Kind.LEAVE)),
    # unknown lists and other domains
    ("tools@lists.example.org", None),
    ("digital@lists.example.org", None),
    ("digital-request@lists.example.org", None),
    ("dev@example.org", None),
    ("dev@lists.example.org.evil.test", None),
    ("dev@sub.lists.example.org", None),
    # malformed confirm, plus-addressing, empty readings
    ("dev-confirm@lists.example.org", None),
    ("dev-confirm+@lists.example.org", None),
    ("dev+tag@lists.example.org", None),
    ("dev-join+x@lists.example.org", None),
    ("-join@lists.example.org", None),
    ("-confirm+tok@lists.example.org", None),
    ("-bounces+a=b.org@lists.example.org", None),
    # hostile input
    ("", None),
    ("   ", None),
    ("dev", None),
    ("@lists.example.org", None),
    ("dev@", None),
    ("dev@@lists.example.org", None),
    ("dev@lists.example.org@lists.example.org", None),
    ("dev lists@lists.example.org", None),
    ("dev\x00@lists.example.org", None),
    ("dev\u00a0@lists.example.org", None),
    ("dev\r\nRCPT TO:<x@y>@lists.example.org", None),
    ("dév@lists.example.org", None),
    ("开发@lists.example.org", None),
    ('"dev"@lists.example.org', None),
    ("dev@[127.0.0.1]", None),
    ("d" * 300 + "@lists.example.org", None),
]


@pytest.mark.parametrize(("address", "expected"), RECIPIENTS)
def test_parse_recipient(address: str, expected: Destination | None) -> None:
    assert parse_recipient(address, DOMAIN, exists) == expected


def test_domain_argument_is_case_insensitive() -> None:
    assert parse_recipient("dev@lists.example.org", " Lists.Example.ORG ", exists) == D(
        "dev", Kind.POST
    )


def test_list_exists_sees_lower_case_names_longest_first() -> None:
    asked: list[str] = []

    def spy(name: str) -> bool:
        asked.append(name)
        return False

    assert parse_recipient("Foo-Owner-Request@lists.example.org", DOMAIN, spy) is None
    assert asked == ["foo-owner-request", "foo-owner"]


def test_overlong_address_never_reaches_list_exists() -> None:
    def refuse(name: str) -> bool:
        raise AssertionError(f"list_exists called with {name!r}")

    assert parse_recipient("d" * 250 + "@lists.example.org", DOMAIN, refuse) is None
    assert parse_recipient("", DOMAIN, refuse) is None
    assert parse_recipient("dev@other.example", DOMAIN, refuse) is None


@pytest.mark.parametrize(
    ("kind", "extra", "expected"),
    [
        (Kind.POST, None, "dev@lists.example.org"),
        (Kind.JOIN, None, "dev-join@lists.example.org"),
        (Kind.LEAVE, None, "dev-leave@lists.example.org"),
        (Kind.REQUEST, None, "dev-request@lists.example.org"),
        (Kind.OWNER, None, "dev-owner@lists.example.org"),
        (Kind.BOUNCES, None, "dev-bounces@lists.example.org"),
        (Kind.CONFIRM, "Tok3n", "dev-confirm+Tok3n@lists.example.org"),
        (Kind.BOUNCES, "Joe+x@Example.COM", "dev-bounces+Joe+x=example.com@lists.example.org"),
    ],
)
def test_list_address(kind: Kind, extra: str | None, expected: str) -> None:
    assert list_address("dev", DOMAIN, kind, extra) == expected
    assert parse_recipient(expected, DOMAIN, exists) == D(
        "dev", kind, normalise_address(extra) if kind is Kind.BOUNCES and extra else extra
    )


def test_list_address_lower_cases_name_and_domain() -> None:
    assert list_address("Digital-Tools", "Lists.Example.ORG", Kind.REQUEST) == (
        "digital-tools-request@lists.example.org"
    )


@pytest.mark.parametrize(
    ("name", "kind", "extra"),
    [
        ("dev", Kind.CONFIRM, None),
        ("dev", Kind.CONFIRM, ""),
        ("dev", Kind.CONFIRM, "to ken"),
        ("dev", Kind.CONFIRM, "tok+en"),
        ("dev", Kind.CONFIRM, "tok@en"),
        ("dev", Kind.CONFIRM, "tok\nBcc: x@y"),
        ("dev", Kind.POST, "x"),
        ("dev", Kind.OWNER, "x"),
        ("dev", Kind.BOUNCES, "not an address"),
        ("dev", Kind.BOUNCES, "joe@ex=ample.org"),
        ("", Kind.POST, None),
        ("dev@x", Kind.POST, None),
        ("dev+x", Kind.POST, None),
    ],
)
def test_list_address_refuses_what_no_caller_should_build(
    name: str, kind: Kind, extra: str | None
) -> None:
    with pytest.raises(ValueError):
        list_address(name, DOMAIN, kind, extra)


@pytest.mark.parametrize(
    ("recipient", "expected"),
    [
        ("joe@example.com", "dev-bounces+joe=example.com@lists.example.org"),
        ("Joe.Bloggs+l@Example.COM", "dev-bounces+Joe.Bloggs+l=example.com@lists.example.org"),
        ("a=b@example.com", "dev-bounces+a=b=example.com@lists.example.org"),
    ],
)
def test_verp_sender_round_trips(recipient: str, expected: str) -> None:
    sender = verp_sender("dev", DOMAIN, recipient)
    assert sender == expected
    assert parse_recipient(sender, DOMAIN, exists) == D(
        "dev", Kind.BOUNCES, normalise_address(recipient)
    )


def test_verp_sender_refuses_a_non_address() -> None:
    with pytest.raises(ValueError):
        verp_sender("dev", DOMAIN, "joe")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("joe@example.com", "joe@example.com"),
        (" Joe@Example.COM \n", "Joe@example.com"),
        ("joe+tag@example.com", "joe+tag@example.com"),
        ("jöe@EXÄMPLE.org", "jöe@exämple.org"),
        ("joe@[127.0.0.1]", "joe@[127.0.0.1]"),
        ("joe@ex_ample.org", "joe@ex_ample.org"),
        ("joe@localhost", "joe@localhost"),
        ("a" * 240 + "@example.com", "a" * 240 + "@example.com"),  # 252 characters
        ("", None),
        ("   ", None),
        ("joe", None),
        ("@example.com", None),
        ("joe@", None),
        ("a@b@example.com", None),
        ("jo e@example.com", None),
        ("joe@exa mple.com", None),
        ("jo\x00e@example.com", None),
        ("jo\x7fe@example.com", None),
        ("joe\u2028@example.com", None),
        ("<joe@example.com>", None),
        ('"joe"@example.com', None),
        ("joe,ann@example.com", None),
        ("joe@.example.com", None),
        ("joe@example..com", None),
        ("joe@example.com.", None),
        ("joe@ex=ample.com", None),
        ("joe@ex+ample.com", None),
        ("jo[e@example.com", None),
        ("joe@[]", None),
        ("a" * 250 + "@example.com", None),
    ],
)
def test_normalise_address(raw: str, expected: str | None) -> None:
    assert normalise_address(raw) == expected


# --- one scheme for every caller (issue 7 tidy: addresses built in one place) ------------------


def test_every_reserved_suffix_is_an_address_of_the_list() -> None:
    """The names ``lists`` refuses are exactly the suffixes ``parse_recipient`` reads."""
    assert lists.SUFFIXES == SUFFIXES
    for suffix in SUFFIXES:
        local = "dev" + suffix + ("+abc123" if suffix == "-confirm" else "")
        found = parse_recipient(f"{local}@{DOMAIN}", DOMAIN, exists)
        assert found is not None and found.list_name == "dev" and found.kind is not Kind.POST
        assert lists.name_problem("dev" + suffix) is not None


@pytest.mark.parametrize("recipient", ["joe@example.com", "Mixed.Case+tag@Council.Example"])
def test_verp_affixes_agree_with_verp_sender(recipient: str) -> None:
    """The fan-out builds VERP senders in SQL from these affixes: same result as Python."""
    prefix, suffix = verp_affixes("dev", DOMAIN)
    subscriber = normalise_address(recipient)
    assert subscriber is not None
    assert prefix + subscriber.replace("@", "=") + suffix == verp_sender("dev", DOMAIN, recipient)


def test_list_info_addresses_come_from_list_address() -> None:
    info = ListInfo("dev", DOMAIN, "Dev list", "https://lists.example.org")
    assert info.post_address == list_address("dev", DOMAIN)
    for kind in Kind:
        if kind is Kind.CONFIRM:
            assert info.address(kind, "abc123") == list_address("dev", DOMAIN, kind, "abc123")
        else:
            assert info.address(kind) == list_address("dev", DOMAIN, kind)


def test_probe_sender_reads_back_as_its_token_not_a_subscriber() -> None:
    from listserv.addresses import probe_sender

    addr = probe_sender("pub", "lists.example.org", "0123abcd")
    assert addr == "pub-bounces+probe-0123abcd@lists.example.org"
    dest = parse_recipient(addr, "lists.example.org", lambda n: n == "pub")
    assert dest == Destination("pub", Kind.BOUNCES, "probe-0123abcd")
    # A subscriber whose local part starts with "probe-" is still VERP-decoded.
    dest = parse_recipient("pub-bounces+probe-x=example.org@lists.example.org",
                           "lists.example.org", lambda n: n == "pub")
    assert dest == Destination("pub", Kind.BOUNCES, "probe-x@example.org")
