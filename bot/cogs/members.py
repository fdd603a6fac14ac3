"""``/member info`` and ``/member set``, for moderators: a person's record, and how they take
part in a list (vendor staff of an organisation or a community member, official capacity,
role).

A thin door over ``listserv.members`` (``info``, and ``apply``, which ``commonroom members
set`` calls), ``listserv.subscriptions.canonical`` for typed addresses and
``listserv.discord_links`` for a Discord user, who counts only once linked. Like the other
moderator commands, ``default_member_permissions`` is a hint and the moderator role is checked
on every call (``bot.checks.refused``). Answers are ephemeral.
"""

from __future__ import annotations

import asyncio
from typing import Literal

import discord
from discord import app_commands
from discord.ext import commands
from sqlmodel import Session

from bot.checks import actor_for, refused
from bot.context import BotContext
from listserv import discord_links, lists, members, names, subscriptions
from listserv.models import PersonKind, Role

MOD_ONLY = discord.Permissions(manage_messages=True)
RoleName = Literal["member", "moderator", "owner", "nonmember"]


def info_text(who: str, found: members.PersonInfo) -> str:
    kind = f" ({found.organisation}, vendor)" if found.vendor else " (community member)"
    lines = [f"**{found.name or who}**{kind} · addresses: {', '.join(found.addresses)}"]
    lines += [f"- {m.list_name}: {m.email} · {m.role} · delivery {m.delivery}"
              + (" · official" if m.official else "")
              + (f" · moderation {m.moderation}" if m.moderation else "")
              for m in found.memberships]
    if not found.memberships:
        lines.append("- no subscriptions")
    return "\n".join(lines)[:1900]


def _who(address: str | None, user: discord.User | None) -> str | None:
    if (address is None) == (user is None):
        return None
    return address if address is not None else f"<@{user.id}>"  # type: ignore[union-attr]


class Members(commands.Cog):
    member = app_commands.Group(name="member", description="A person's record and how they "
                                "take part in a list (moderators)", default_permissions=MOD_ONLY)

    def __init__(self, ctx: BotContext) -> None:
        self.ctx = ctx

    @member.command(name="info", description="A person's addresses and lists")
    @app_commands.describe(address="Their email address", user="Or their Discord account (linked)")
    async def info(self, interaction: discord.Interaction, address: str | None = None,
                   user: discord.User | None = None) -> None:
        if await refused(self.ctx, interaction):
            return
        text = await asyncio.to_thread(self._info, address, user)
        await interaction.response.send_message(text, ephemeral=True)

    @member.command(name="set", description="How a person takes part in a list")
    @app_commands.describe(list="The list", address="Their email address",
                           user="Or their Discord account (linked)",
                           vendor="They are vendor staff of this organisation",
                           community_member="They are a community member (not vendor staff)",
                           official="They post in an official capacity (the policy applies)",
                           role="Their role on the list")
    async def set(self, interaction: discord.Interaction, list: str, address: str | None = None,
                  user: discord.User | None = None, vendor: str | None = None,
                  community_member: bool | None = None,
                  official: Literal["on", "off"] | None = None,
                  role: RoleName | None = None) -> None:
        if await refused(self.ctx, interaction):
            return
        if vendor is not None and community_member:
            text = "`vendor` and `community_member` contradict each other; give one."
        elif vendor is not None and not names.clean(vendor):
            text = "`vendor` needs the organisation, e.g. vendor:Acme Ltd"
        else:
            changes = members.Changes(
                kind=PersonKind.VENDOR if vendor is not None else
                PersonKind.MEMBER if community_member else None,
                organisation=vendor, official=None if official is None else official == "on",
                role=Role(role) if role else None)
            text = ("Nothing to change: give vendor, community_member, official or role."
                    if changes.empty else
                    await asyncio.to_thread(self._set, list, address, user, changes,
                                            actor_for(interaction.user)))
        await interaction.response.send_message(text, ephemeral=True)

    def _person(self, s: Session, address: str | None,
                user: discord.User | None) -> int | str:
        """The person meant, or what to answer."""
        who = _who(address, user)
        if who is None:
            return "Give either `address` or `user` (one of them)."
        if user is not None:
            person_id = discord_links.linked_person(s, str(user.id))
            return person_id if person_id is not None else (
                f"{who} has not linked a Discord account to an address (/link).")
        email = subscriptions.canonical(who)
        if email is None:
            return f"{who!r} is not an email address."
        person_id = members.person_of(s, email)
        return person_id if person_id is not None else f"{email} is not known here."

    def _info(self, address: str | None, user: discord.User | None) -> str:
        with self.ctx.store.read_session() as s:
            person = self._person(s, address, user)
            if isinstance(person, str):
                return person
            found = members.info(s, person)
            assert found is not None
            return info_text(_who(address, user) or "", found)

    def _set(self, list_name: str, address: str | None, user: discord.User | None,
             changes: members.Changes, actor: str) -> str:
        with self.ctx.store.session() as s:
            ml = lists.find(s, list_name)
            if ml is None:
                return f"There is no list called {list_name!r}."
            if _who(address, user) is None:
                return "Give either `address` or `user` (one of them)."
            if user is not None:
                email = discord_links.linked_address(s, str(user.id), ml)
                if email is None:
                    return f"<@{user.id}> is not linked (/link) to a member of {ml.name}."
            else:
                assert address is not None
                email = subscriptions.canonical(address)
                if email is None:
                    return f"{address!r} is not an email address."
            try:
                done = members.apply(s, ml, email, changes, actor=actor)
            except members.NotSubscribed as e:
                return str(e)
        return f"{email} on {ml.name}: {done}"
