"""Everyone's commands: ``/help``, ``/link``, ``/verify``, ``/unlink``.

A thin door over ``listserv.discord_links``: the store is used in a worker thread (it is
synchronous), and every answer is ephemeral, since it is about the asker's own account.
"""

from __future__ import annotations

import asyncio

import discord
from discord import app_commands
from discord.ext import commands

from bot.context import BotContext
from listserv import discord_links

HELP = """\
**Commonroom** joins this Discord server and the community's mailing lists into one conversation.
- Threads in the bridged channels carry the lists' discussions: posts by email appear here, and \
replies here go to the list by email, once your Discord account is linked to your membership.
- Link your account: `/link email:you@example.org` mails you a code, then `/verify code:...`. \
`/unlink` undoes it.
- Not a member yet? `/subscribe email:you@example.org` mails you a confirmation link. Once \
linked, `/digest mode` chooses each post, a weekly digest or no mail.
- The lists' rules apply here as they do by email: a message may be held for the moderators, \
and you will be told why.
- Edits and deletions made after a message was relayed are **not** carried to email: mail cannot \
be unsent.
"""


class Links(commands.Cog):
    def __init__(self, ctx: BotContext) -> None:
        self.ctx = ctx

    @app_commands.command(name="help", description="What this bot does and how to use it")
    async def help(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message(HELP, ephemeral=True)

    @app_commands.command(name="link", description="Link your Discord account to your list membership")
    @app_commands.describe(email="The address you are subscribed with; a code is mailed to it")
    async def link(self, interaction: discord.Interaction, email: str) -> None:
        outcome = await asyncio.to_thread(self._request, str(interaction.user.id), email)
        self.ctx.mail_queued()
        await interaction.response.send_message(outcome.text, ephemeral=True)

    @app_commands.command(name="verify", description="Finish linking with the code you were mailed")
    @app_commands.describe(code="The code from the mail /link sent")
    async def verify(self, interaction: discord.Interaction, code: str) -> None:
        outcome = await asyncio.to_thread(self._verify, str(interaction.user.id), code)
        await interaction.response.send_message(outcome.text, ephemeral=True)

    @app_commands.command(name="unlink", description="Unlink your Discord account from your membership")
    async def unlink(self, interaction: discord.Interaction) -> None:
        outcome = await asyncio.to_thread(self._unlink, str(interaction.user.id))
        await interaction.response.send_message(outcome.text, ephemeral=True)

    def _request(self, user_id: str, email: str) -> discord_links.Outcome:
        with self.ctx.store.session() as s:
            return discord_links.request_link(s, self.ctx.cfg, user_id, email)

    def _verify(self, user_id: str, code: str) -> discord_links.Outcome:
        with self.ctx.store.session() as s:
            return discord_links.verify(s, user_id, code)

    def _unlink(self, user_id: str) -> discord_links.Outcome:
        with self.ctx.store.session() as s:
            return discord_links.unlink(s, user_id)
