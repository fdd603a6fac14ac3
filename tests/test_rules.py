"""The posting rules, one table of cases per rule, and the order of the pipeline."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from listserv.models import Action
from listserv.pipeline import decide, reaches
from listserv.rules import (
    POLICY_RULE,
    RULES,
    Ban,
    Hit,
    PostFacts,
    administrivia,
    auto_generated,
    banned,
    emergency,
    loop,
    member,
    member_moderation,
    nonmember,
    oversize,
    participation_policy,
    rate_limit,
)

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
BASE = PostFacts(list_name="tools", list_post_address="tools@lists.example.org",
                 list_id="tools.lists.example.org", sender="ann@council.gov.uk",
                 subject="Which e-learning platform?", size=2000, max_bytes=40_000, now=NOW,
                 is_member=True)


@pytest.mark.parametrize("changes,hit", [
    ({}, None),
    ({"list_ids_seen": ["Tools <tools.lists.example.org>"]}, Action.DISCARD),
    ({"list_ids_seen": ["<other.lists.example.org>"]}, None),
    ({"x_loop": ["TOOLS@lists.example.org"]}, Action.DISCARD),
    ({"x_loop": ["<tools@lists.example.org>"]}, Action.DISCARD),
    ({"list_ids_seen": ["tools.lists.example.org"]}, Action.DISCARD),  # bare, as some lists write it
    ({"list_ids_seen": ["<TOOLS.lists.example.org>"]}, Action.DISCARD),
    # Another list whose name ends (or starts) with ours is not us (RFC 2919 ids compare whole).
    ({"list_ids_seen": ["Web tools <webtools.lists.example.org>"]}, None),
    ({"list_ids_seen": ["<tools.lists.example.org.mirror.example>"]}, None),
    ({"list_ids_seen": ["tools.lists.example.org fans <fans.example.net>"]}, None),
    ({"x_loop": ["webtools@lists.example.org"]}, None),
    ({"x_loop": ["tools@lists.example.org.evil.example"]}, None),
])
def test_loop(changes: dict[str, object], hit: Action | None) -> None:
    result = loop(replace(BASE, **changes))  # type: ignore[arg-type]
    assert (result.action if result else None) == hit


@pytest.mark.parametrize("auto,prec,hit", [
    ("", "", None), ("no", "", None), ("auto-replied", "", Action.DISCARD),
    ("auto-generated", "", Action.DISCARD), ("", "bulk", Action.DISCARD),
    ("", "JUNK", Action.DISCARD), ("", "list", Action.DISCARD), ("", "first-class", None),
])
def test_auto_generated(auto: str, prec: str, hit: Action | None) -> None:
    result = auto_generated(replace(BASE, auto_submitted=auto, precedence=prec))
    assert (result.action if result else None) == hit


def test_null_sender_is_automatic_mail() -> None:
    # MAIL FROM:<> marks bounces and auto-replies (RFC 5321 4.5.5), whatever the headers say.
    result = auto_generated(replace(BASE, null_sender=True))
    assert result is not None and result.action is Action.DISCARD and "MAIL FROM:<>" in result.reason


@pytest.mark.parametrize("changes,automatic", [
    ({}, False), ({"null_sender": True}, True), ({"auto_submitted": "auto-replied"}, True),
    ({"precedence": "bulk"}, True), ({"list_ids_seen": ["<tools.lists.example.org>"]}, True),
    ({"is_member": False}, False),
])
def test_decision_says_whether_mail_is_automatic(changes: dict[str, object],
                                                 automatic: bool) -> None:
    # One definition: the facts say it, and every rule's decision carries it (never answered).
    facts = replace(BASE, **changes)  # type: ignore[arg-type]
    assert decide(facts).is_automatic_mail is automatic
    assert decide(facts, RULES[-2:]).is_automatic_mail is automatic


@pytest.mark.parametrize("subject,held", [
    ("unsubscribe", True), ("Unsubscribe me please", True), ("RE: unsubscribe", True),
    ("subscribe", True), ("help", True), ("remove me", True), ("confirm abc123", True),
    ("Help with the new CRM rollout", False), ("Subscription costs for Office 365", False),
    ("How do residents unsubscribe from council alerts?", False), ("", False),
])
def test_administrivia(subject: str, held: bool) -> None:
    result = administrivia(replace(BASE, subject=subject))
    assert (result is not None and result.action is Action.HOLD) == held


@pytest.mark.parametrize("pattern,expires,sender,hit", [
    ("spam@bad.example", None, "spam@bad.example", True),
    ("SPAM@bad.example", None, "spam@bad.example", True),
    ("spam@bad.example", None, "ham@bad.example", False),
    (r"^.*@bad\.example$", None, "anyone@bad.example", True),
    (r"^.*@bad\.example$", None, "anyone@good.example", False),
    ("spam@bad.example", NOW - timedelta(days=1), "spam@bad.example", False),
    ("spam@bad.example", NOW + timedelta(days=1), "spam@bad.example", True),
    ("^(unclosed", None, "x@y.example", False),
])
def test_banned(pattern: str, expires: datetime | None, sender: str, hit: bool) -> None:
    facts = replace(BASE, sender=sender, bans=(Ban(pattern, expires),))
    result = banned(facts)
    assert (result is not None) == hit
    if result:
        assert result.action is Action.DISCARD and sender in result.reason


def test_oversize() -> None:
    assert oversize(replace(BASE, size=40_000)) is None
    hit = oversize(replace(BASE, size=40_001))
    assert hit is not None and hit.action is Action.HOLD and "39 KB" in hit.reason


@pytest.mark.parametrize("is_member,moderation,expected", [
    (True, "", None), (True, "hold", Action.HOLD), (True, "discard", Action.DISCARD),
    (False, "accept", Action.ACCEPT), (False, "", None),
])
def test_member_moderation(is_member: bool, moderation: str, expected: Action | None) -> None:
    result = member_moderation(replace(BASE, is_member=is_member, moderation=moderation))
    assert (result.action if result else None) == expected


@pytest.mark.parametrize("action", list(Action))
def test_nonmember_follows_list_setting(action: Action) -> None:
    result = nonmember(replace(BASE, is_member=False, nonmember_action=action.value))
    assert result is not None and result.action is action and result.reason


def test_member_accepts_only_members() -> None:
    assert member(BASE) is not None
    assert member(replace(BASE, is_member=False)) is None


def test_emergency_holds_everything() -> None:
    assert emergency(BASE) is None
    hit = emergency(replace(BASE, emergency=True))
    assert hit is not None and hit.action is Action.HOLD and "emergency" in hit.reason


@pytest.mark.parametrize("earlier,limit,held", [
    (0, 10, False), (9, 10, False), (10, 10, True), (50, 10, True), (50, 0, False),
])
def test_rate_limit(earlier: int, limit: int, held: bool) -> None:
    hit = rate_limit(replace(BASE, posts_last_hour=earlier, max_posts_per_hour=limit))
    assert (hit is not None and hit.action is Action.HOLD) == held
    if hit:
        assert f"{earlier} times" in hit.reason


def test_participation_policy_holds_with_its_reason() -> None:
    assert participation_policy(BASE) is None
    hit = participation_policy(replace(BASE, policy_hold="new guidance or a view"))
    assert hit == Hit(Action.HOLD, "new guidance or a view")


@pytest.mark.parametrize("changes,rule,action", [
    ({}, "member", Action.ACCEPT),
    ({"is_member": False}, "nonmember", Action.HOLD),
    # Order matters: a looping auto-reply from a banned member is a loop first.
    ({"list_ids_seen": ["tools.lists.example.org"], "auto_submitted": "auto-replied",
      "bans": (Ban("ann@council.gov.uk"),)}, "loop", Action.DISCARD),
    ({"auto_submitted": "auto-replied", "subject": "unsubscribe"}, "auto-generated",
     Action.DISCARD),
    ({"null_sender": True, "moderation": "accept", "bans": (Ban("ann@council.gov.uk"),)},
     "auto-generated", Action.DISCARD),
    ({"subject": "unsubscribe", "bans": (Ban("ann@council.gov.uk"),)}, "administrivia",
     Action.HOLD),
    ({"bans": (Ban("ann@council.gov.uk"),), "size": 10**9}, "banned", Action.DISCARD),
    ({"size": 10**9, "moderation": "accept"}, "oversize", Action.HOLD),
    ({"moderation": "reject"}, "member-moderation", Action.REJECT),
    ({"emergency": True, "moderation": "accept"}, "emergency", Action.HOLD),
    ({"bans": (Ban("ann@council.gov.uk"),), "emergency": True}, "banned", Action.DISCARD),
    ({"moderation": "accept", "posts_last_hour": 99, "max_posts_per_hour": 5},
     "member-moderation", Action.ACCEPT),
    ({"posts_last_hour": 99, "max_posts_per_hour": 5, "policy_hold": "view"}, "rate-limit",
     Action.HOLD),
    ({"policy_hold": "view"}, "participation-policy", Action.HOLD),
    ({"is_member": False, "nonmember_action": "accept"}, "nonmember", Action.ACCEPT),
])
def test_pipeline_order(changes: dict[str, object], rule: str, action: Action) -> None:
    decision = decide(replace(BASE, **changes))  # type: ignore[arg-type]
    assert (decision.rule, decision.action) == (rule, action)
    assert decision.reason


@pytest.mark.parametrize("changes,reached", [
    ({}, True), ({"is_member": False}, True),
    ({"list_ids_seen": ["<tools.lists.example.org>"]}, False), ({"null_sender": True}, False),
    ({"auto_submitted": "auto-replied"}, False), ({"bans": (Ban("ann@council.gov.uk"),)}, False),
    ({"moderation": "accept"}, False), ({"emergency": True}, False),
    ({"posts_last_hour": 9, "max_posts_per_hour": 5}, False),
])
def test_the_policy_is_consulted_only_when_the_table_reaches_it(changes: dict[str, object],
                                                                reached: bool) -> None:
    # Issue 7.5: the policy's verdict (a body parse, earlier texts) is gathered only if needed.
    assert reaches(replace(BASE, **changes), POLICY_RULE) is reached  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        reaches(BASE, "no-such-rule")
