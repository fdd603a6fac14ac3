"""What every moderator command and button does first: check the caller's moderator role
(``refused``), choose the list (``list_or_ask``; ``moderator_list``: both, for commands about a
list; ``moderator_lists``: both, for commands about one list or all the bridged ones), and
name the caller for the audit log (``actor_for``); ``moderator_action`` is all of a command
that acts on one numbered item.

Invariant: the role is checked on every call, button press and modal submit; Discord's
``default_member_permissions`` only decides who sees a command.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

import discord

from bot.context import BotContext
from bot.roles import is_moderator


def actor_for(user: discord.abc.User) -> str:
    return f"discord:{user.id} ({user.name})"


def context_of(interaction: discord.Interaction) -> BotContext:
    """The process's context, for what Discord dispatches outside a cog (buttons, modals)."""
    ctx = getattr(interaction.client, "ctx", None)
    if not isinstance(ctx, BotContext):
        raise RuntimeError("the client has no BotContext (not a CommonroomBot)")
    return ctx


async def moderator_action(ctx: BotContext, interaction: discord.Interaction,
                           work: Callable[[int, str], str], item_id: int) -> None:
    """A moderator's command on one numbered item (draw, cancel, a reserve…): the role check,
    ``work(item_id, actor)`` in a thread (its answer goes to the moderator alone), then the
    outbox and the relay woken for the mail and cards it queued."""
    from bot.relay import wake_relay  # here: the relay's cards import this module

    if await refused(ctx, interaction):
        return
    text = await asyncio.to_thread(work, item_id, actor_for(interaction.user))
    await interaction.response.send_message(text, ephemeral=True)
    ctx.mail_queued()
    wake_relay(interaction.client)


async def refused(ctx: BotContext, interaction: discord.Interaction) -> bool:
    """True (and the refusal sent) unless the caller has the configured moderator role."""
    user = interaction.user
    roles = [(str(r.id), r.name) for r in user.roles] if isinstance(user, discord.Member) else []
    wanted = ctx.cfg.discord.moderator_role
    if is_moderator(roles, wanted):
        return False
    need = (f"the **{wanted}** role" if wanted
            else "a moderator role, and none is configured ([discord] moderator_role)")
    await interaction.response.send_message(
        f"Sorry, this command is for moderators: it needs {need}.", ephemeral=True)
    return True


def chosen_list(bridges: Mapping[str, str], given: str | None) -> str | None:
    """The list a command is about: the one given, else the only bridged list, else None."""
    if given:
        return given
    return next(iter(bridges)) if len(bridges) == 1 else None


def which_list(bridges: Mapping[str, str]) -> str:
    """What to answer when ``chosen_list`` found none."""
    return f"Say which list with `list:` (bridged here: {', '.join(sorted(bridges)) or 'none'})."


def lists_named(bridges: Mapping[str, str], given: str | None) -> list[str]:
    """The lists a command about one list or all is about: the one given, else every bridged
    list."""
    return [given] if given else sorted(bridges)


async def list_or_ask(ctx: BotContext, interaction: discord.Interaction,
                      given: str | None) -> str | None:
    """The list a command is about (``chosen_list``), or None when the answer asking which
    list to name is sent already."""
    name = chosen_list(ctx.cfg.bridges, given)
    if name is None:
        await interaction.response.send_message(which_list(ctx.cfg.bridges), ephemeral=True)
    return name


async def moderator_list(ctx: BotContext, interaction: discord.Interaction,
                         given: str | None) -> str | None:
    """What a moderator's command about a list does first: the list's name, or None when the
    answer is sent already (the refusal to a non-moderator, or which list to name)."""
    if await refused(ctx, interaction):
        return None
    return await list_or_ask(ctx, interaction, given)


async def moderator_lists(ctx: BotContext, interaction: discord.Interaction,
                          given: str | None) -> list[str] | None:
    """What a moderator's command about one list or all does first: their names, or None when
    the refusal to a non-moderator is sent already."""
    if await refused(ctx, interaction):
        return None
    return lists_named(ctx.cfg.bridges, given)
