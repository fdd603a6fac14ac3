"""The Discord bridge's rules and records, for the bot (``bot/``) to call: which posts are
relayed into Discord, and the records that tie list threads and posts to Discord's.

Invariants:
- A post is queued for relay in the transaction that releases it to the list
  (``posting.release``), so a relay is never lost nor made for a post that did not go out.
- A post written in Discord and accepted on arrival is already in its Discord thread: it is
  not relayed back (no echo). Held and approved later, it is (the bot removed the original).
- One relay per post (``discord_relay.message_pk`` is unique).
"""

from __future__ import annotations

from sqlmodel import Session, col, select

from listserv.config import Config
from listserv.models import DiscordPost, DiscordRelay, DiscordThread, MailingList
from listserv.post_row import AnyPost


def bridged_channel(cfg: Config, list_name: str) -> str | None:
    """The Discord channel id a list is bridged to, or None."""
    return cfg.bridges.get(list_name) or None


def queue_post(session: Session, cfg: Config, ml: MailingList, msg: AnyPost, *,
               from_discord: bool = False) -> bool:
    """Queue a post that has just gone out to the list for relay into Discord, if the list is
    bridged. ``from_discord``: accepted as it arrived from Discord, so it is there already."""
    assert msg.id is not None
    if from_discord or bridged_channel(cfg, ml.name) is None:
        return False
    if session.exec(select(DiscordRelay.id).where(col(DiscordRelay.message_pk) == msg.id)).first():
        return False
    session.add(DiscordRelay(list_id=ml.id, kind="post", message_pk=msg.id))
    return True


def thread_for(session: Session, thread_id: int) -> DiscordThread | None:
    return session.get(DiscordThread, thread_id)


def list_thread_for(session: Session, discord_thread_id: str) -> DiscordThread | None:
    return session.exec(select(DiscordThread).where(
        col(DiscordThread.discord_thread_id) == discord_thread_id)).first()


def discord_post_for(session: Session, message_pk: int) -> DiscordPost | None:
    return session.exec(select(DiscordPost).where(
        col(DiscordPost.message_pk) == message_pk)).first()


def queue_channel_message(session: Session, list_id: int | None, channel_id: str,
                          content: str) -> None:
    """Queue a message for a Discord channel (the digest summary, say), relayed in order with
    the posts; nothing is written if no channel is configured."""
    if channel_id:
        session.add(DiscordRelay(list_id=list_id, kind="channel", channel_id=channel_id,
                                 content=content))
