"""A Discord API double on loopback: REST routes and a gateway websocket, served by aiohttp.

The bot talks to it through discord.py's own HTTP and gateway code (``[discord] api_base`` and
``gateway_url`` point there), so what is tested is what runs against Discord. It plays one
guild with a few text channels. A test dispatches gateway events (``dispatch``,
``interaction``) and reads back what the bot sent (``requests``, ``wait_for``).

What it keeps to (see ../shared/notes/discord-testing.md): JSON bodies are sent with a
Content-Type of exactly ``application/json`` (discord.py parses nothing else as JSON); the
gateway does HELLO, IDENTIFY -> READY + GUILD_CREATE, heartbeat -> ACK, RESUME -> RESUMED with
the events missed meanwhile replayed. Frames go out as uncompressed text, which discord.py
accepts whatever compression it asked for. Unknown routes answer 404 and are recorded.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiohttp import WSMsgType, web

API = "/api/v10"
EVERYONE_PERMISSIONS = "1071698660929"  # view, send, read history, use application commands
ADMIN = str(1 << 3)
_ids = itertools.count(1_000_000_000_000_000_001)


def snowflake() -> str:
    return str(next(_ids))


@dataclass
class Recorded:
    method: str
    path: str  # without the /api/v10 prefix
    query: dict[str, str]
    body: Any  # parsed JSON, or None


# Guild scheduled event statuses, and the changes of status Discord allows.
SCHEDULED, SCHEDULED_ACTIVE, SCHEDULED_COMPLETED, SCHEDULED_CANCELED = 1, 2, 3, 4
_STATUS_CHANGES = {(SCHEDULED, SCHEDULED_ACTIVE), (SCHEDULED, SCHEDULED_CANCELED),
                   (SCHEDULED_ACTIVE, SCHEDULED_COMPLETED)}


def _form_error(field: str, code: str, message: str) -> dict[str, Any]:
    """Discord's answer to a request body it refuses (50035), naming the field."""
    return {"message": "Invalid Form Body", "code": 50035,
            "errors": {field: {"_errors": [{"code": code, "message": message}]}}}


def _scheduled_edit_refused(event: dict[str, Any], body: dict[str, Any]
                            ) -> dict[str, Any] | None:
    """Discord's rules for editing a scheduled event (Modify Guild Scheduled Event): an event
    that ended or was cancelled takes no edit (180000); its status moves only scheduled ->
    active | canceled and active -> completed; an active event's start cannot be moved. The
    error codes are Discord's; the inner code and message of the form errors are the double's
    wording (Discord does not document them)."""
    status = event.get("status", SCHEDULED)
    if status in (SCHEDULED_COMPLETED, SCHEDULED_CANCELED):
        return {"message": "Cannot update a finished event", "code": 180000}
    if "status" in body and body["status"] != status \
            and (status, body["status"]) not in _STATUS_CHANGES:
        return _form_error("status", "GUILD_SCHEDULED_EVENT_INVALID_STATUS_TRANSITION",
                           "Invalid status transition.")
    start = body.get("scheduled_start_time")
    if status == SCHEDULED_ACTIVE and start is not None and \
            datetime.fromisoformat(start) != datetime.fromisoformat(event["scheduled_start_time"]):
        return _form_error("scheduled_start_time", "GUILD_SCHEDULED_EVENT_ACTIVE_START_TIME",
                           "Cannot change the start time of an active event.")
    return None


def _json(data: Any, status: int = 200) -> web.Response:
    # Exactly application/json: json_response's "; charset=utf-8" makes discord.py read text.
    return web.Response(status=status, body=json.dumps(data).encode(),
                        headers={"Content-Type": "application/json"})


# relay (H1) -----------------------------------------------------------------------------------
# Webhooks, threads, forum posts and failures, for the relay worker's tests (bot/relay.py).


@dataclass
class Fault:
    """After ``skip`` of them, the next ``times`` requests whose path starts with
    ``path_start`` get this answer; status 0 breaks the connection instead."""

    method: str
    path_start: str
    status: int
    times: int = 1
    skip: int = 0
    body: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Posted:
    """A message Discord accepted: where it went and as whom."""

    id: str
    channel_id: str  # a thread's id for posts in threads
    username: str  # the webhook's name override ("" for the bot's own messages)
    content: str
    allowed_mentions: Any
    webhook_id: str = ""


class _RelayRoutes:
    down: bool
    faults: list[Fault]
    posted: list[Posted]
    threads: dict[str, dict[str, Any]]  # (H2's field) thread id -> the thread, with parent_id
    webhooks: dict[str, dict[str, Any]]  # webhook id -> the webhook object
    guild_id: str
    app_id: str
    bot_id: str
    _site: Any

    def _relay_init(self) -> None:
        self.down = False
        self.faults = []
        self.posted = []
        self.webhooks = {}

    def fail(self, method: str, path_start: str, status: int, times: int = 1, *, skip: int = 0,
             body: dict[str, Any] | None = None, headers: dict[str, str] | None = None) -> None:
        self.faults.append(Fault(method, path_start, status, times, skip, body or {},
                                 headers or {}))

    def posts_in(self, channel_id: str) -> list[Posted]:
        return [p for p in self.posted if p.channel_id == channel_id]

    def _thread(self, parent_id: str, name: str, thread_id: str | None = None,
                kind: int = 11) -> dict[str, Any]:
        thread = {"id": thread_id or snowflake(), "type": kind, "guild_id": self.guild_id,
                  "parent_id": parent_id, "name": name, "owner_id": self.bot_id,
                  "last_message_id": None, "rate_limit_per_user": 0, "flags": 0,
                  "message_count": 0, "member_count": 1,
                  "thread_metadata": {"archived": False, "auto_archive_duration": 10080,
                                      "archive_timestamp": "2026-12-01T00:00:00+00:00",
                                      "locked": False}}
        self.threads[thread["id"]] = thread
        return thread

    def _thread_created(self, thread: dict[str, Any]) -> None:
        """Tell the bot over the gateway, as Discord does after a thread is made through REST
        (after the REST answer: the dispatch waits for the handler to return)."""
        asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(
            self.dispatch("THREAD_CREATE", thread | {"newly_created": True})))  # type: ignore[attr-defined]

    def _posted(self, channel_id: str, body: dict[str, Any], *, username: str = "",
                webhook_id: str = "", message_id: str | None = None) -> dict[str, Any]:
        msg = self._message(channel_id, body, webhook_id=webhook_id or None)  # type: ignore[attr-defined]
        msg["id"] = message_id or msg["id"]
        self.posted.append(Posted(msg["id"], channel_id, username, body.get("content", ""),
                                  body.get("allowed_mentions"), webhook_id))
        return dict(msg)

    def _relay_answer(self, request: web.Request, path: str, query: dict[str, str],
                      body: dict[str, Any]) -> web.Response | None:
        method = request.method
        for fault in self.faults:
            if fault.times > 0 and fault.method == method and path.startswith(fault.path_start):
                if fault.skip > 0:
                    fault.skip -= 1
                    continue
                fault.times -= 1
                if fault.status == 0:
                    assert request.transport is not None
                    request.transport.close()
                return web.Response(status=fault.status, body=json.dumps(fault.body).encode(),
                                    headers={"Content-Type": "application/json"} | fault.headers)
        match (method, path.strip("/").split("/")):
            case ("GET", ["channels", channel_id, "webhooks"]):
                return _json([w for w in self.webhooks.values() if w["channel_id"] == channel_id])
            case ("POST", ["channels", channel_id, "webhooks"]):
                hook = {"id": snowflake(), "type": 1, "token": f"hooktoken{len(self.webhooks)}",
                        "channel_id": channel_id, "guild_id": self.guild_id,
                        "name": body.get("name", "hook"), "avatar": None,
                        "application_id": self.app_id,
                        "user": {"id": self.bot_id, "username": "commonroom", "discriminator": "0",
                                 "global_name": None, "avatar": None, "bot": True}}
                self.webhooks[hook["id"]] = hook
                return _json(hook)
            case ("POST", ["webhooks", webhook_id, token]) if webhook_id in self.webhooks:
                hook = self.webhooks[webhook_id]  # (others: interaction follow-ups, below)
                if hook["token"] != token:
                    return _json({"message": "Unknown Webhook", "code": 10015}, 404)
                if body.get("thread_name"):  # a forum post: its id is its first message's
                    thread = self._thread(hook["channel_id"], body["thread_name"])
                    self._thread_created(thread)
                    return _json(self._posted(thread["id"], body, username=body.get("username", ""),
                                              webhook_id=webhook_id, message_id=thread["id"]))
                where = query.get("thread_id") or hook["channel_id"]
                if where != hook["channel_id"] and where not in self.threads:
                    return _json({"message": "Unknown Channel", "code": 10003}, 404)
                return _json(self._posted(where, body, username=body.get("username", ""),
                                          webhook_id=webhook_id))
            case ("POST", ["channels", channel_id, "messages"]):
                return _json(self._posted(channel_id, body))
            case ("POST", ["channels", channel_id, "messages", _, "threads"]):
                thread = self._thread(channel_id, body.get("name", "thread"))
                self._thread_created(thread)
                return _json(thread)
        return None

    async def go_down(self) -> None:
        """Stop listening, and break connections still open: REST is unreachable."""
        self.down = True
        await self._site.stop()

    async def come_back(self) -> None:
        self._site = web.TCPSite(self._runner, "127.0.0.1", self.port)  # type: ignore[attr-defined]
        await self._site.start()
        self.down = False


@dataclass
class DiscordDouble(_RelayRoutes):
    guild_id: str = field(default_factory=snowflake)
    app_id: str = field(default_factory=snowflake)
    bot_id: str = ""
    channels: dict[str, str] = field(default_factory=dict)  # name -> id
    roles: dict[str, str] = field(default_factory=dict)  # name -> id
    requests: list[Recorded] = field(default_factory=list)
    identified: int = 0
    resumed: int = 0
    threads: dict[str, dict[str, Any]] = field(default_factory=dict)  # inbound (H2): id -> thread
    dm_channels: dict[str, str] = field(default_factory=dict)  # inbound (H2): DM channel -> user
    forums: tuple[str, ...] = ()  # relay (H1): names of channels that are forum channels
    bot_permissions: str = ADMIN  # the bot's own role's permissions (a test may take some away)
    guild_create_delay: float = 0.0  # seconds between READY and GUILD_CREATE (a slow Discord)

    def __post_init__(self) -> None:
        self.bot_id = self.app_id  # as for bots made in the developer portal
        for name in ("general", "demo-list"):
            self.channels.setdefault(name, snowflake())
        self.roles.setdefault("Moderators", snowflake())
        self.bot_role_id = snowflake()
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._ws: web.WebSocketResponse | None = None
        self._seq = 0
        self._sent: list[dict[str, Any]] = []  # dispatches, for replay on RESUME
        self._session = snowflake()
        self._changed = asyncio.Condition()
        self._relay_init()  # relay (H1)

    # --- running -------------------------------------------------------------------------

    async def start(self) -> DiscordDouble:
        app = web.Application()
        app.router.add_get("/", self._gateway)
        app.router.add_route("*", API + "/{path:.*}", self._rest)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._site = site  # relay (H1): go_down/come_back
        server = site._server
        assert isinstance(server, asyncio.base_events.Server)
        self.port = server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}{API}"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    # --- what a test does ----------------------------------------------------------------

    async def dispatch(self, event: str, data: dict[str, Any]) -> None:
        self._seq += 1
        frame = {"op": 0, "t": event, "s": self._seq, "d": data}
        self._sent.append(frame)
        if self._ws is not None and not self._ws.closed:
            await self._ws.send_str(json.dumps(frame))

    async def interaction(self, name: str, user_id: str, options: dict[str, Any] | None = None, *,
                          roles: tuple[str, ...] = (), permissions: str = EVERYONE_PERMISSIONS,
                          channel: str = "general") -> str:
        """Dispatch a slash command as ``user_id``; return the interaction's id."""
        interaction_id = snowflake()
        opts = [{"name": k, "type": 4 if isinstance(v, int) else 3, "value": v}
                for k, v in (options or {}).items()]
        await self.dispatch("INTERACTION_CREATE", {
            "id": interaction_id, "application_id": self.app_id, "type": 2,
            "token": f"tok{interaction_id}", "version": 1, "guild_id": self.guild_id,
            "channel_id": self.channels[channel],
            "channel": {"id": self.channels[channel], "type": 0, "guild_id": self.guild_id,
                        "name": channel, "position": 0, "permission_overwrites": []},
            "member": self._member(user_id, list(roles), permissions),
            "data": {"id": snowflake(), "name": name, "type": 1, "options": opts,
                     "guild_id": self.guild_id},
            "attachment_size_limit": 8 * 1024 * 1024, "locale": "en-GB", "app_permissions": ADMIN,
        })
        return interaction_id

    async def wait_for(self, method: str, path_start: str, count: int = 1,
                       timeout: float = 10.0) -> list[Recorded]:
        """The recorded requests to ``path_start...``, once there are ``count`` of them."""
        def found() -> list[Recorded]:
            return [r for r in self.requests if r.method == method and r.path.startswith(path_start)]
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: len(found()) >= count), timeout)
        return found()

    async def callback_for(self, interaction_id: str, timeout: float = 10.0) -> Any:
        """The body of the bot's answer to an interaction."""
        [answer] = await self.wait_for("POST", f"/interactions/{interaction_id}/", 1, timeout)
        return answer.body

    async def drop_gateway(self) -> None:
        """Close the gateway connection as Discord does when it wants a reconnect."""
        if self._ws is not None:
            await self._ws.close(code=4000, message=b"double: reconnect please")

    # --- bot-lease ---
    async def close_gateway(self, code: int) -> None:
        """Close the gateway connection with ``code``; 4004 (the token is refused) is one
        discord.py does not reconnect after."""
        if self._ws is not None:
            await self._ws.close(code=code, message=b"double: closed")
    # --- end bot-lease ---

    # --- payloads ------------------------------------------------------------------------

    def _user(self, user_id: str, *, bot: bool = False) -> dict[str, Any]:
        return {"id": user_id, "username": "commonroom" if bot else f"user{user_id[-4:]}",
                "global_name": None, "discriminator": "0", "avatar": None, "bot": bot}

    def _member(self, user_id: str, roles: list[str], permissions: str) -> dict[str, Any]:
        return {"user": self._user(user_id), "roles": [self.roles.get(r, r) for r in roles],
                "joined_at": "2026-01-01T00:00:00+00:00", "deaf": False, "mute": False,
                "flags": 0, "pending": False, "permissions": permissions}

    def _channel(self, name: str, channel_id: str) -> dict[str, Any]:
        return {"id": channel_id, "type": 15 if name in self.forums else 0,  # relay (H1)
                "guild_id": self.guild_id, "name": name,
                "position": 0, "permission_overwrites": [], "nsfw": False, "parent_id": None}

    def _guild(self) -> dict[str, Any]:
        roles = [{"id": self.guild_id, "name": "@everyone", "permissions": EVERYONE_PERMISSIONS,
                  "position": 0, "color": 0, "hoist": False, "managed": False,
                  "mentionable": False, "flags": 0}]
        roles += [{"id": rid, "name": name, "permissions": EVERYONE_PERMISSIONS, "position": 1,
                   "color": 0, "hoist": False, "managed": False, "mentionable": False, "flags": 0}
                  for name, rid in self.roles.items()]
        roles.append({"id": self.bot_role_id, "name": "Commonroom", "position": 2,
                      "permissions": self.bot_permissions, "color": 0, "hoist": False,
                      "managed": True, "mentionable": False, "flags": 0})
        return {"id": self.guild_id, "name": "Commonroom test", "owner_id": snowflake(),
                "unavailable": False, "member_count": 1, "large": False, "features": [],
                "roles": roles, "emojis": [], "stickers": [],
                "threads": list(self.threads.values()),  # inbound (H2)
                "channels": [self._channel(n, cid) for n, cid in self.channels.items()],
                "members": [self._member(self.bot_id, [self.bot_role_id], ADMIN)
                            | {"user": self._user(self.bot_id, bot=True)}],
                "voice_states": [], "presences": [], "stage_instances": [],
                "guild_scheduled_events": [], "premium_tier": 0, "mfa_level": 0,
                "verification_level": 0, "explicit_content_filter": 0,
                "default_message_notifications": 0, "system_channel_flags": 0,
                "preferred_locale": "en-GB", "nsfw_level": 0, "afk_timeout": 300}

    def _message(self, channel_id: str, body: dict[str, Any], *, webhook_id: str | None = None
                 ) -> dict[str, Any]:
        author = self._user(webhook_id or self.bot_id, bot=True)
        if webhook_id and body.get("username"):
            author["username"] = body["username"]
        msg = {"id": snowflake(), "channel_id": channel_id, "guild_id": self.guild_id,
               "author": author, "content": body.get("content", ""),
               "timestamp": "2026-12-01T00:00:00+00:00", "edited_timestamp": None, "tts": False,
               "mention_everyone": False, "mentions": [], "mention_roles": [], "attachments": [],
               "embeds": body.get("embeds", []), "pinned": False, "type": 0, "flags": 0,
               "components": []}
        if webhook_id:
            msg["webhook_id"] = webhook_id
        return msg

    # --- REST ----------------------------------------------------------------------------

    async def _rest(self, request: web.Request) -> web.Response:
        path = "/" + request.match_info["path"]
        body: Any = None
        if request.can_read_body:
            raw = await request.read()
            if request.content_type == "application/json" and raw:
                body = json.loads(raw)
            elif raw:  # multipart: discord.py puts the JSON in the payload_json part
                body = {"raw": raw.decode("utf-8", "replace")}
        if self.down:  # relay (H1): a connection that breaks, as to a Discord that is down
            assert request.transport is not None
            request.transport.close()
            return web.Response(status=502)
        async with self._changed:
            self.requests.append(Recorded(request.method, path, dict(request.query), body))
            self._changed.notify_all()
        relayed = self._relay_answer(request, path, dict(request.query), body or {})
        if relayed is not None:  # relay (H1)
            return relayed
        return self._answer(request.method, path.strip("/").split("/"), body or {})

    def _answer(self, method: str, parts: list[str], body: dict[str, Any]) -> web.Response:
        match (method, parts):
            case ("GET", ["gateway", "bot"]):
                return _json({"url": self.gateway_url, "shards": 1, "session_start_limit": {
                    "total": 1000, "remaining": 1000, "reset_after": 0, "max_concurrency": 1}})
            case ("GET", ["users", "@me"]):
                return _json(self._user(self.bot_id, bot=True) | {"flags": 0, "mfa_enabled": False,
                                                                  "verified": True})
            case ("GET", ["oauth2", "applications", "@me"]):
                return _json({"id": self.app_id, "name": "commonroom", "description": "",
                              "icon": None, "bot_public": False, "bot_require_code_grant": False,
                              "owner": self._user(snowflake()), "verify_key": "00", "flags": 0,
                              "summary": "", "rpc_origins": []})
            case ("PUT", ["applications", _, *_, "commands"]):
                return _json([cmd | {"id": snowflake(), "application_id": self.app_id,
                                     "version": snowflake(), "default_member_permissions": None,
                                     "dm_permission": True, "nsfw": False, "type": cmd.get("type", 1)}
                              for cmd in (body if isinstance(body, list) else [])])
            case ("POST", ["interactions", interaction_id, _, "callback"]):
                return _json({"interaction": {"id": interaction_id, "type": 2,
                                              "response_message_ephemeral": True}})
            case ("POST", ["channels", channel_id, "messages"]):
                return _json(self._message(channel_id, body))
            case ("POST", ["channels", channel_id, "webhooks"]):
                return _json({"id": snowflake(), "type": 1, "token": "webhooktoken",
                              "channel_id": channel_id, "guild_id": self.guild_id,
                              "name": body.get("name", "hook"), "avatar": None,
                              "application_id": self.app_id})
            case ("POST", ["webhooks", webhook_id, _]):
                return _json(self._message("0", body, webhook_id=webhook_id))
            case ("POST", ["channels", channel_id, *_, "threads"]):
                return _json({"id": snowflake(), "type": 11, "guild_id": self.guild_id,
                              "parent_id": channel_id, "name": body.get("name", "thread"),
                              "owner_id": self.bot_id, "message_count": 0, "member_count": 1,
                              "thread_metadata": {"archived": False, "auto_archive_duration": 10080,
                                                  "archive_timestamp": "2026-12-01T00:00:00+00:00",
                                                  "locked": False}})
            case ("DELETE", _):
                return web.Response(status=204)
        discord_door = self._i10_answer(method, parts, body)  # --- i10-discord --- (one line)
        if discord_door is not None:
            return discord_door
        events = self._events_answer(method, parts, body)  # events (H7)
        if events is not None:
            return events
        inbound = self._inbound_answer(method, parts, body)  # inbound (H2)
        if inbound is not None:
            return inbound
        return _json({"message": "404: Not Found (the double has no such route)", "code": 0}, 404)

    # --- gateway -------------------------------------------------------------------------

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._ws = ws
        await ws.send_str(json.dumps({"op": 10, "d": {"heartbeat_interval": 41250}}))
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            frame = json.loads(msg.data)
            op = frame.get("op")
            if op == 1:
                await ws.send_str(json.dumps({"op": 11}))
            elif op == 2:
                self.identified += 1
                await self.dispatch("READY", {
                    "v": 10, "user": self._user(self.bot_id, bot=True), "session_id": self._session,
                    "resume_gateway_url": self.gateway_url, "guilds": [
                        {"id": self.guild_id, "unavailable": True}],
                    "application": {"id": self.app_id, "flags": 0}, "private_channels": [],
                    "relationships": [], "shard": [0, 1]})
                if self.guild_create_delay:
                    await asyncio.sleep(self.guild_create_delay)
                await self.dispatch("GUILD_CREATE", self._guild())
            elif op == 6:
                self.resumed += 1
                since = frame["d"].get("seq") or 0
                for missed in [f for f in self._sent if f["s"] > since]:
                    await ws.send_str(json.dumps(missed))
                await self.dispatch("RESUMED", {})
        return ws

    # --- inbound (H2): people writing in threads, DMs, replayed events ------------------------

    def open_thread(self, name: str, parent: str = "demo-list") -> str:
        """A public thread in channel ``parent`` (known from now on, and in GUILD_CREATE after
        a new IDENTIFY); ``announce_thread`` tells the bot with THREAD_CREATE."""
        thread_id = snowflake()
        self.threads[thread_id] = {
            "id": thread_id, "type": 11, "guild_id": self.guild_id,
            "parent_id": self.channels[parent], "name": name, "owner_id": snowflake(),
            "last_message_id": None, "rate_limit_per_user": 0, "message_count": 0,
            "member_count": 1, "flags": 0, "thread_metadata": {
                "archived": False, "auto_archive_duration": 10080, "locked": False,
                "archive_timestamp": "2026-12-01T00:00:00+00:00"}}
        return thread_id

    async def announce_thread(self, thread_id: str) -> None:
        await self.dispatch("THREAD_CREATE", self.threads[thread_id] | {"newly_created": True})

    async def user_message(self, channel_id: str, user_id: str, content: str, *,
                           name: str | None = None, bot: bool = False,
                           webhook_id: str | None = None,
                           attachments: tuple[str, ...] = ()) -> str:
        """Dispatch MESSAGE_CREATE: ``user_id`` (shown as ``name``) wrote ``content`` in
        ``channel_id`` (a thread id, or a channel's); return the message's id."""
        message_id = snowflake()
        author = self._user(user_id, bot=bot) | {"global_name": name}
        files = [{"id": snowflake(), "filename": url.rsplit("/", 1)[-1], "size": 1, "url": url,
                  "proxy_url": url} for url in attachments]
        data: dict[str, Any] = {
            "id": message_id, "channel_id": channel_id, "guild_id": self.guild_id,
            "author": author, "content": content, "timestamp": "2026-12-01T00:00:00+00:00",
            "edited_timestamp": None, "tts": False, "mention_everyone": False, "mentions": [],
            "mention_roles": [], "attachments": files, "embeds": [], "pinned": False,
            "type": 0, "flags": 0, "components": []}
        if webhook_id:
            data["webhook_id"] = webhook_id
        else:
            data["member"] = {"roles": [], "joined_at": "2026-01-01T00:00:00+00:00",
                              "deaf": False, "mute": False, "flags": 0, "pending": False}
        await self.dispatch("MESSAGE_CREATE", data)
        return message_id

    async def redeliver(self, seq: int) -> None:
        """Send dispatch ``seq`` again, as Discord may after a RESUME from an older sequence."""
        [frame] = [f for f in self._sent if f["s"] == seq]
        if self._ws is not None and not self._ws.closed:
            await self._ws.send_str(json.dumps(frame))

    def last_seq(self) -> int:
        return self._seq

    def dms_to(self, user_id: str) -> list[str]:
        """What the bot wrote to ``user_id`` in private."""
        channels = {cid for cid, uid in self.dm_channels.items() if uid == user_id}
        paths = [f"/channels/{cid}/messages" for cid in channels]
        return [r.body["content"] for r in self.requests if r.method == "POST" and r.path in paths]

    def _inbound_answer(self, method: str, parts: list[str], body: dict[str, Any]
                        ) -> web.Response | None:
        match (method, parts):
            case ("POST", ["users", "@me", "channels"]):
                channel_id = snowflake()
                self.dm_channels[channel_id] = str(body["recipient_id"])
                return _json({"id": channel_id, "type": 1, "last_message_id": None,
                              "recipients": [self._user(str(body["recipient_id"]))]})
            case ("GET", ["channels", channel_id]) if channel_id in self.threads:
                return _json(self.threads[channel_id])
        return None
    # events (H7) ------------------------------------------------------------------------
    # Guild scheduled events; ``refuse_scheduled_events`` answers 403 as Discord does when the
    # bot lacks the permission.
    refuse_scheduled_events = False

    def _events_answer(self, method: str, parts: list[str], body: dict[str, Any]
                       ) -> web.Response | None:
        match (method, parts):
            case ("POST", ["guilds", guild_id, "scheduled-events"]):
                if self.refuse_scheduled_events:
                    return _json({"message": "Missing Permissions", "code": 50013}, 403)
                return _json(body | {"id": snowflake(), "guild_id": guild_id, "channel_id": None,
                                     "creator_id": self.bot_id, "status": 1, "entity_id": None,
                                     "user_count": 0, "image": None})
        return None

    # --- i10-discord ---
    # Scheduled events kept (made, fetched, edited: ``scheduled_events``, id -> the event, as the
    # bot last left it), honouring ``refuse_scheduled_events``; message edits (a card updated).
    scheduled_events: dict[str, dict[str, Any]] = field(default_factory=dict)

    def scheduled_made(self) -> list[Recorded]:
        """The bot's requests to make a scheduled event (refused ones too)."""
        return [r for r in self.requests if r.method == "POST"
                and r.path == f"/guilds/{self.guild_id}/scheduled-events"]

    def _i10_answer(self, method: str, parts: list[str], body: dict[str, Any]
                    ) -> web.Response | None:
        match (method, parts):
            case ("POST", ["guilds", guild_id, "scheduled-events"]):
                if self.refuse_scheduled_events:
                    return _json({"message": "Missing Permissions", "code": 50013}, 403)
                made = body | {"id": snowflake(), "guild_id": guild_id, "channel_id": None,
                               "creator_id": self.bot_id, "status": 1, "entity_id": None,
                               "user_count": 0, "image": None}
                self.scheduled_events[made["id"]] = made
                return _json(made)
            case ("GET" | "PATCH", ["guilds", _, "scheduled-events", event_id]):
                if event_id not in self.scheduled_events:
                    return _json({"message": "Unknown Guild Scheduled Event", "code": 10070}, 404)
                if method == "PATCH":
                    refused = _scheduled_edit_refused(self.scheduled_events[event_id], body)
                    if refused is not None:
                        return _json(refused, 400)
                    self.scheduled_events[event_id] |= body
                return _json(self.scheduled_events[event_id])
            case ("PATCH", ["channels", channel_id, "messages", message_id]):
                return _json(self._message(channel_id, body) | {"id": message_id})
        return None
    # --- end i10-discord ---

    def start_scheduled_event(self, event_id: str) -> None:
        """Discord starting a scheduled event at its start time (status ACTIVE)."""
        self.scheduled_events[event_id]["status"] = SCHEDULED_ACTIVE

    # commands (H3) ----------------------------------------------------------------------
    # Subcommands of a group (``sub``), user options (``UserOption``: type 6 with the user in
    # ``resolved``), button presses (type 3, on a message carrying the components the bot sent)
    # and modal submits (type 5). Each returns the interaction's id; ``callback_for`` reads
    # the bot's answer, ``followups_for`` its follow-up messages.

    def _h3_base(self, kind: int, user_id: str, roles: tuple[str, ...], channel: str,
                 data: dict[str, Any]) -> dict[str, Any]:
        interaction_id = snowflake()
        return {"id": interaction_id, "application_id": self.app_id, "type": kind,
                "token": f"tok{interaction_id}", "version": 1, "guild_id": self.guild_id,
                "channel_id": self.channels[channel],
                "channel": self._channel(channel, self.channels[channel]),
                "member": self._member(user_id, list(roles), EVERYONE_PERMISSIONS),
                "data": data, "attachment_size_limit": 8 * 1024 * 1024, "locale": "en-GB",
                "app_permissions": ADMIN}

    async def command(self, name: str, user_id: str, options: dict[str, Any] | None = None, *,
                      sub: str | None = None, roles: tuple[str, ...] = (),
                      channel: str = "general") -> str:
        """A slash command (``/name sub``) as ``user_id``; options may be ``UserOption``s."""
        opts: list[dict[str, Any]] = []
        users: dict[str, Any] = {}
        for key, value in (options or {}).items():
            if isinstance(value, UserOption):
                opts.append({"name": key, "type": 6, "value": value.id})
                users[value.id] = self._user(value.id)
            else:
                kind = 5 if isinstance(value, bool) else 4 if isinstance(value, int) else 3
                opts.append({"name": key, "type": kind, "value": value})
        if sub is not None:
            opts = [{"name": sub, "type": 1, "options": opts}]
        data = {"id": snowflake(), "name": name, "type": 1, "options": opts,
                "guild_id": self.guild_id, "resolved": {"users": users}}
        payload = self._h3_base(2, user_id, roles, channel, data)
        await self.dispatch("INTERACTION_CREATE", payload)
        return str(payload["id"])

    def card(self, content: str, components: list[Any], channel: str = "general"
             ) -> dict[str, Any]:
        """An ephemeral message the bot sent (its content and components), to press on."""
        msg = self._message(self.channels[channel], {"content": content})
        msg["components"] = components
        msg["flags"] = 64
        return msg

    async def press(self, custom_id: str, user_id: str, message: dict[str, Any], *,
                    roles: tuple[str, ...] = (), channel: str = "general") -> str:
        """A button press on ``message`` (see ``card``)."""
        payload = self._h3_base(3, user_id, roles, channel,
                                {"custom_id": custom_id, "component_type": 2})
        payload["message"] = message
        await self.dispatch("INTERACTION_CREATE", payload)
        return str(payload["id"])

    async def submit(self, custom_id: str, user_id: str, values: dict[str, str], *,
                     message: dict[str, Any] | None = None, roles: tuple[str, ...] = (),
                     channel: str = "general") -> str:
        """A modal submitted with its text inputs' ``values`` (custom_id -> text)."""
        rows = [{"type": 1, "components": [{"type": 4, "custom_id": k, "value": v}]}
                for k, v in values.items()]
        payload = self._h3_base(5, user_id, roles, channel,
                                {"custom_id": custom_id, "components": rows})
        if message is not None:
            payload["message"] = message
        await self.dispatch("INTERACTION_CREATE", payload)
        return str(payload["id"])

    async def followups_for(self, interaction_id: str, count: int,
                            timeout: float = 10.0) -> list[Any]:
        """The bodies of the bot's first ``count`` follow-up messages to an interaction."""
        found = await self.wait_for("POST", f"/webhooks/{self.app_id}/tok{interaction_id}",
                                    count, timeout)
        return [r.body for r in found]


class ThreadedDouble:
    """The double in its own thread and loop, for synchronous tests that run the server with
    tests/harness.py (whose ``App`` has a loop of its own): ``call`` runs a coroutine there."""

    def __init__(self, **kwargs: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._kwargs = kwargs

    def __enter__(self) -> ThreadedDouble:
        self._thread.start()
        self.double: DiscordDouble = self.call(self._make())
        return self

    async def _make(self) -> DiscordDouble:
        return await DiscordDouble(**self._kwargs).start()

    def call(self, coro: Any, timeout: float = 30.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def __exit__(self, *exc: object) -> None:
        try:
            self.call(self.double.stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
            self.loop.close()


# commands (H3) ------------------------------------------------------------------------------

@dataclass(frozen=True)
class UserOption:
    """A Discord user as a slash command's option value (``DiscordDouble.command``)."""

    id: str
