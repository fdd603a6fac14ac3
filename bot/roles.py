"""Who is a moderator on Discord: a pure decision, so it is tested without Discord.

Invariant: a member is a moderator only when ``[discord] moderator_role`` is set and one of the
member's roles matches it by id or by name (names compared case-insensitively); an empty
setting makes nobody a moderator (Discord's ``default_member_permissions`` is only a hint).
"""

from __future__ import annotations

from collections.abc import Iterable


def is_moderator(roles: Iterable[tuple[str, str]], configured: str) -> bool:
    """``roles``: the member's roles as (id, name) pairs; ``configured``: a role name or id."""
    wanted = configured.strip()
    if not wanted:
        return False
    return any(role_id == wanted or name.casefold() == wanted.casefold() for role_id, name in roles)
