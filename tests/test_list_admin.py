"""The queries behind ``commonroom lists`` and ``members list``, called as services (the CLI
only prints them): ``list_admin``, ``lists.all_names`` and ``members.roster``, on each backend."""

from __future__ import annotations

from sqlmodel import select

from listserv import list_admin, lists, members, subscriptions
from listserv.models import AuditEntry, DeliveryMode, Role
from listserv.store import Store


def test_create_count_and_overview(store: Store) -> None:
    with store.session() as s:
        ml = list_admin.create(s, "tools", description="Tools\r\ntalk",
                               moderators=["mod@council.gov.uk", "b@council.gov.uk"], actor="cli")
        list_admin.create(s, "alpha", description="", moderators=[], actor="cli")
        assert ml.id is not None
        subscriptions.add_member(s, ml, "vic@vendor.example", name="Vic", organisation="Acme",
                                 vendor=True, mode=DeliveryMode.MIME, actor="cli")
        # A non-member entry (a moderation setting only) is not a member: it is not counted.
        subscriptions.add_member(s, ml, "nm@elsewhere.example", role=Role.NONMEMBER, actor="cli")
    with store.session() as s:
        assert lists.all_names(s) == ["alpha", "tools"]
        assert list_admin.overview(s) == [list_admin.ListSummary("alpha", "", 0),
                                          list_admin.ListSummary("tools", "Tools talk", 3)]
        tools = lists.find(s, "tools")
        assert tools is not None and tools.id is not None
        assert list_admin.member_count(s, tools.id) == 3
        assert subscriptions.moderators(s, tools.id) == ["b@council.gov.uk", "mod@council.gov.uk"]
        roster = list(members.roster(s, tools.id))
        assert [m.email for m in roster] == ["b@council.gov.uk", "mod@council.gov.uk",
                                             "nm@elsewhere.example", "vic@vendor.example"]
        assert roster[-1] == members.RosterEntry("vic@vendor.example", "Vic", "Acme", True,
                                                 "member", "mime")
        actions = [e.action for e in s.exec(select(AuditEntry)).all()]
        assert actions.count("list-created") == 2


def test_change_setting_records_it_or_changes_nothing(store: Store) -> None:
    with store.session() as s:
        list_admin.create(s, "tools", description="", moderators=[], actor="cli")
    with store.session() as s:
        ml = lists.find(s, "tools")
        assert ml is not None
        assert list_admin.change_setting(s, ml, "hold_days", "3", actor="cli") is None
        problem = list_admin.change_setting(s, ml, "hold_days", "0", actor="cli")
        assert problem == "hold_days must be at least 1"
    with store.session() as s:
        ml = lists.find(s, "tools")
        assert ml is not None and ml.hold_days == 3
        settings = [(e.target, e.detail) for e in s.exec(select(AuditEntry)).all()
                    if e.action == "list-setting"]
        assert settings == [("hold_days", "3")]
