"""Signed links and unguessable tokens.

Invariants:
- Confirmation tokens are random (``secrets``), single use, and only their SHA-256 is stored, so a
  leaked database does not let anyone confirm a pending request.
- Unsubscribe links are stable per (list, address) and signed with the site secret, so they can be
  put in every delivered message without a table row per message, and cannot be forged.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

TOKEN_BYTES = 18  # 144 bits, 24 URL-safe characters


def new_token() -> str:
    # Lower-case hex survives mail clients that fold the case of an address's local part.
    return secrets.token_hex(TOKEN_BYTES)


def held_token(secret: bytes, held_id: int) -> str:
    """The token in a held notice's reply address: derived, so every notice about the same
    post (the first one and the reminder) carries the same one, and unguessable without the
    site secret."""
    return hmac.digest(secret, f"held:{held_id}".encode(), "sha256").hex()[:TOKEN_BYTES * 2]


def token_hash(token: str) -> str:
    return hashlib.sha256(token.strip().lower().encode()).hexdigest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def unsubscribe_token(secret: bytes, list_name: str, email: str, purpose: str = "unsub") -> str:
    """A member's signed token for one purpose ("unsub", "delivery"): one cannot serve another."""
    who = _b64(email.encode())
    # One-shot hmac.digest (OpenSSL, in C): made for every delivered copy, where hmac.new's
    # Python object cost most of a copy's rendering.
    mac = hmac.digest(secret, f"{purpose}:{list_name}:{email}".encode(), "sha256")[:12]
    return f"{who}.{_b64(mac)}"


class TokenSigner:
    """``unsubscribe_token`` for one secret, faster: the HMAC's keyed state is made once and
    copied per token (``hmac.digest`` pads and hashes the key again on every call, about half
    its cost). Safe to share between threads (each token works on its own copy)."""

    def __init__(self, secret: bytes) -> None:
        self._keyed = hmac.new(secret, digestmod=hashlib.sha256)

    def token(self, list_name: str, email: str, purpose: str = "unsub") -> str:
        mac = self._keyed.copy()
        mac.update(f"{purpose}:{list_name}:{email}".encode())
        return f"{_b64(email.encode())}.{_b64(mac.digest()[:12])}"


def check_unsubscribe_token(secret: bytes, list_name: str, token: str,
                            purpose: str = "unsub") -> str | None:
    """The address a genuine token was made for, or None."""
    try:
        who = token.partition(".")[0]
        email = _unb64(who).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    good = unsubscribe_token(secret, list_name, email, purpose)
    return email if hmac.compare_digest(good, token) else None


def unsubscribe_url(web_base_url: str, secret: bytes, list_name: str, email: str) -> str:
    return unsubscribe_base(web_base_url, list_name) + unsubscribe_token(secret, list_name, email)


def unsubscribe_base(web_base_url: str, list_name: str) -> str:
    """``unsubscribe_url`` up to the member's token (the same for every member)."""
    return f"{web_base_url.rstrip('/')}/lists/{list_name}/unsubscribe/"


def confirm_url(web_base_url: str, token: str) -> str:
    return f"{web_base_url.rstrip('/')}/confirm/{token}"


def archive_url(web_base_url: str, list_name: str) -> str:
    return f"{web_base_url.rstrip('/')}/lists/{list_name}/"


def thread_url(web_base_url: str, list_name: str, thread_id: int) -> str:
    return f"{web_base_url.rstrip('/')}/lists/{list_name}/threads/{thread_id}"


def delivery_url(web_base_url: str, secret: bytes, list_name: str, email: str) -> str:
    """The member's own "change how you get mail" page (signed like the unsubscribe link)."""
    return f"{web_base_url.rstrip('/')}/lists/{list_name}/delivery/" \
           f"{unsubscribe_token(secret, list_name, email, 'delivery')}"


def attend_url(web_base_url: str, list_name: str, event_id: int, token: str) -> str:
    """A member's own "I am coming" page for one event (token: ``unsubscribe_token`` with the
    event's purpose, ``event_mail.attend_purpose``)."""
    return f"{web_base_url.rstrip('/')}/lists/{list_name}/events/{event_id}/attend/{token}"


def events_feed_url(web_base_url: str, list_name: str) -> str:
    return f"{web_base_url.rstrip('/')}/lists/{list_name}/events.ics"


def message_url(web_base_url: str, list_name: str, message_pk: int) -> str:
    """One stored post in the archive (the bridge links each relayed post to it)."""
    return f"{web_base_url.rstrip('/')}/lists/{list_name}/messages/{message_pk}"


def attachment_url(web_base_url: str, list_name: str, message_pk: int, number: int) -> str:
    """A post's ``number``-th attachment (from 1, as ``listserv.mailparts`` numbers them)."""
    return f"{message_url(web_base_url, list_name, message_pk)}/attachments/{number}"


def reenable_url(web_base_url: str, secret: bytes, list_name: str, email: str) -> str:
    """The member's own "deliver to me again" page after bounces disabled it."""
    return f"{web_base_url.rstrip('/')}/lists/{list_name}/reenable/" \
           f"{unsubscribe_token(secret, list_name, email, 'reenable')}"
