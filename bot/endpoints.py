"""Where discord.py connects: Discord itself, or a REST/gateway proxy (``[discord] api_base``,
``gateway_url``; the tests' double is one).

discord.py builds every REST and webhook URL from ``discord.http.Route.BASE`` and opens the
gateway at ``discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY`` (then resumes at the
``resume_gateway_url`` READY names). Both are class attributes, so they are process-wide: one
bot per process, which is how commonroom runs. Setting them is all it takes; no method of
discord.py is replaced. Empty values restore Discord's own.
"""

from __future__ import annotations

import yarl
from discord.gateway import DiscordWebSocket
from discord.http import Route

DISCORD_API = Route.BASE
DISCORD_GATEWAY = DiscordWebSocket.DEFAULT_GATEWAY


def point_at(api_base: str, gateway_url: str) -> None:
    Route.BASE = api_base.rstrip("/") or DISCORD_API
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url) if gateway_url else DISCORD_GATEWAY
