"""Start-up checks, as pure functions over plain data: each problem is one line saying what to
fix, naming the configuration key. The client gathers the data (the store's list names before
connecting; what the guild holds once Discord has sent it) and refuses to run on any problem."""

from __future__ import annotations

from collections.abc import Collection, Mapping

from listserv.config import BRIDGES, Config

# The channel kinds a bridge can carry threads in (discord.ChannelType names).
BRIDGEABLE = ("text", "forum")


class BotStartupError(Exception):
    """The bot cannot start; the message says what to fix."""


def config_problems(cfg: Config, list_names: Collection[str]) -> list[str]:
    dc = cfg.discord
    problems = []
    if not dc.token:
        problems.append("[discord] token is not set: put the bot's token (developer portal, your "
                        "application, Bot, Reset Token) in COMMONROOM_DISCORD_TOKEN or [discord] token")
    if not dc.guild_id:
        problems.append("[discord] guild_id is not set: the id of the Discord server the bot serves "
                        "(Developer Mode on, right-click the server, Copy Server ID)")
    for name in cfg.bridges:
        if name not in list_names:
            known = ", ".join(sorted(list_names)) or "none yet"
            problems.append(f"[{BRIDGES}] {name}: there is no list named {name} (lists: {known})")
    return problems


def guild_problems(cfg: Config, guild_found: bool, channel_kinds: Mapping[str, str]) -> list[str]:
    """``channel_kinds``: the guild's channels, id -> kind (``discord.ChannelType`` name)."""
    if not guild_found:
        return [f"[discord] guild_id {cfg.discord.guild_id}: the bot is not in that server; invite "
                "it (developer portal, OAuth2, URL Generator, scopes bot and applications.commands) "
                "or correct the id"]
    problems = []
    for name, channel_id in cfg.bridges.items():
        kind = channel_kinds.get(channel_id)
        if kind is None:
            problems.append(f"[{BRIDGES}] {name}: channel {channel_id} is not in the server, or the "
                            "bot cannot see it (give it View Channel there)")
        elif kind not in BRIDGEABLE:
            problems.append(f"[{BRIDGES}] {name}: channel {channel_id} is a {kind} channel; bridge "
                            "to a text or forum channel")
    if cfg.discord.digest_channel_id and cfg.discord.digest_channel_id not in channel_kinds:
        problems.append(f"[discord] digest_channel_id {cfg.discord.digest_channel_id}: no such "
                        "channel in the server, or the bot cannot see it")
    return problems


# What the bot does in a bridged channel, and the permission each needs (discord.Permissions
# attribute -> the name Discord's settings show).
BRIDGE_PERMISSIONS = {
    "view_channel": "View Channel",
    "send_messages": "Send Messages",  # starter messages; in a forum, Create Posts
    "read_message_history": "Read Message History",
    "manage_webhooks": "Manage Webhooks",  # relays post under each author's name
    "create_public_threads": "Create Public Threads",
    "send_messages_in_threads": "Send Messages in Threads",
    "manage_messages": "Manage Messages",  # held posts written in Discord are removed
}
DIGEST_PERMISSIONS = {"view_channel": "View Channel", "send_messages": "Send Messages"}


def permission_problems(cfg: Config, granted: Mapping[str, Collection[str]]) -> list[str]:
    """``granted``: channel id -> the ``discord.Permissions`` attributes the bot has there.
    One line per channel missing any, naming them as Discord's settings do."""
    wanted = [(f"[{BRIDGES}] {name}", channel_id, BRIDGE_PERMISSIONS)
              for name, channel_id in cfg.bridges.items()]
    if cfg.discord.digest_channel_id:
        wanted.append(("[discord] digest_channel_id", cfg.discord.digest_channel_id,
                       DIGEST_PERMISSIONS))
    problems = []
    for key, channel_id, needs in wanted:
        if channel_id not in granted:
            continue  # guild_problems has said the channel is missing
        missing = [label for attr, label in needs.items() if attr not in granted[channel_id]]
        if missing:
            problems.append(f"{key}: in channel {channel_id} the bot lacks {', '.join(missing)}; "
                            "give its role those permissions there (Edit Channel, Permissions)")
    return problems


def closed_advice(code: int | None) -> str:
    """What to do about a gateway close code that stops the bot."""
    return {
        4004: "Discord refused the token: reset it in the developer portal (Bot, Reset Token)",
        4013: "Discord refused the intents asked for (a bug: please report it)",
        4014: ("Discord refused the Message Content intent: enable it in the developer portal "
               "(your application, Bot, Privileged Gateway Intents, Message Content Intent)"),
    }.get(code or 0, f"the Discord gateway closed the connection (code {code})")
