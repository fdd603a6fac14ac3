"""The held-post cards that ``/queue`` shows: the post's line with the policy reason, and
Approve / Reject / Discard buttons.

Invariants:
- A button's custom_id carries what to do and to which post (``cr:held:approve:12``); the
  buttons are a ``DynamicItem`` registered at start-up (``setup``), so a press is understood
  whatever message it comes from, also after a restart.
- The sent view is only a layout: it is stopped before sending, so discord.py does not store
  it; an ephemeral message's stored view times out after 15 minutes and would then unregister
  the dynamic buttons with it.
- Every press and every reason submitted is checked against the moderator role again, and acts
  through ``moderation.act`` (once only: a second press is told who handled it and when).
- Reject asks for the reason in a modal; an empty reason rejects with the default one the
  sender is told ("a moderator declined it").
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import discord

from bot.checks import actor_for, context_of, refused
from bot.context import BotContext
from listserv import moderation
from listserv.models import Action

ACTIONS = {"approve": Action.ACCEPT, "reject": Action.REJECT, "discard": Action.DISCARD}
STYLES = {"approve": discord.ButtonStyle.success, "reject": discord.ButtonStyle.danger,
          "discard": discord.ButtonStyle.secondary}
TEMPLATE = r"cr:held:(?P<action>approve|reject|discard):(?P<id>[0-9]+)"
REASON_MAX = 500


def card_text(item: moderation.QueueItem) -> str:
    """One line; long subjects and reasons are cut so that the card and the outcome added to
    it later stay within one Discord message."""
    return (f"**{item.id}** · {item.list_name} · {item.sender[:100]} · "
            f"{_cut(item.subject, 300) or '(no subject)'} · {_cut(item.reason, 600)}")


def _cut(text: str, size: int) -> str:
    return text if len(text) <= size else text[:size - 1] + "…"


def act(ctx: BotContext, held_id: int, action: Action, actor: str, reason: str = "",
        future: str = "") -> moderation.ActionResult:
    with ctx.store.session() as s:
        return moderation.act(s, ctx.cfg, held_id, action, actor=actor, reason=reason,
                              future=future)


class HeldButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=TEMPLATE):
    def __init__(self, action: str, held_id: int) -> None:
        super().__init__(discord.ui.Button(label=action.title(), style=STYLES[action],
                                           custom_id=f"cr:held:{action}:{held_id}"))
        self.action = action
        self.held_id = held_id

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction,
                             item: discord.ui.Item[Any], match: re.Match[str]) -> HeldButton:
        return cls(match["action"], int(match["id"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        ctx = context_of(interaction)
        if await refused(ctx, interaction):
            return
        if self.action == "reject":
            await interaction.response.send_modal(RejectReason(self.held_id, interaction.user.id))
            return
        await settle(ctx, interaction, self.held_id, ACTIONS[self.action])


class RejectReason(discord.ui.Modal):
    reason: discord.ui.TextInput[Any] = discord.ui.TextInput(
        label="Why? The sender is told", style=discord.TextStyle.paragraph, required=False,
        max_length=REASON_MAX, placeholder="Empty: \"a moderator declined it\"")

    def __init__(self, held_id: int, user_id: int) -> None:
        # One modal per post and moderator: two moderators' open forms do not replace each other.
        super().__init__(title=f"Reject held post {held_id}", timeout=600,
                         custom_id=f"cr:held:reason:{held_id}:{user_id}")
        self.held_id = held_id

    async def on_submit(self, interaction: discord.Interaction) -> None:
        ctx = context_of(interaction)
        if await refused(ctx, interaction):
            return
        await settle(ctx, interaction, self.held_id, Action.REJECT, self.reason.value.strip())


async def settle(ctx: BotContext, interaction: discord.Interaction, held_id: int,
                 action: Action, reason: str = "") -> None:
    """Act on the post; on success the card shows the outcome and loses its buttons."""
    result = await asyncio.to_thread(act, ctx, held_id, action, actor_for(interaction.user),
                                     reason)
    if not result.ok:
        await interaction.response.send_message(result.message, ephemeral=True)
        return
    ctx.mail_queued()
    if interaction.message is None:
        await interaction.response.send_message(result.message, ephemeral=True)
        return
    outcome = f"\n→ {_cut(result.message, 600)} (by {interaction.user.name})"
    await interaction.response.edit_message(
        content=_cut(interaction.message.content, 2000 - len(outcome)) + outcome, view=None)


def card_view(held_id: int) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    for action in ACTIONS:
        view.add_item(HeldButton(action, held_id))
    view.stop()  # a layout only: see the module's invariants
    return view
