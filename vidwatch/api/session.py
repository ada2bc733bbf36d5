"""The pages' way in for browsers, which send no bearer header when they navigate.

With API_TOKEN set, ``POST /login`` takes the token in a one-field form, opens a session and
answers with a cookie ``vidwatch_session``: ``<session id>.<expiry>.<HMAC-SHA256(API_TOKEN,
id and expiry)>``, HttpOnly, SameSite=Strict, Secure over HTTPS, Path=/, for SESSION_TTL_S.
The session id is random; the session itself is an object in the store,
``sessions/<expiry>.<sha256(id)>``, so every daemon on the store sees it, and
``POST /logout`` deletes it: the cookie then opens nothing, on any daemon, even if it was
copied before. The token never sits in the cookie; changing API_TOKEN ends every session.
The cookie stands in for the bearer header on GET and HEAD only, so no cross-site form can
make it upload or change anything.

Only a cookie whose MAC is right costs a store request (a HEAD): forged or expired ones are
refused without one. The store keeps the hash of the id, not the id: reading the bucket
gives no session away. Expired session objects are removed at the next sign-in.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass

import structlog

from vidwatch.r2.store import ObjectStore, StoreError

log = structlog.get_logger("vidwatch.api")

SESSION_COOKIE = "vidwatch_session"
SESSION_TTL_S = 7 * 24 * 3600
SESSIONS_PREFIX = "sessions/"


@dataclass(frozen=True)
class Session:
    """One signed-in browser: a random id and the time (epoch s) it ends."""

    sid: str
    expires_at: int

    @property
    def key(self) -> str:
        """Its object in the store; the expiry leads, so that a LIST finds the expired."""
        digest = hashlib.sha256(self.sid.encode()).hexdigest()
        return f"{SESSIONS_PREFIX}{self.expires_at}.{digest}"


def new_session(now: float, ttl_s: int = SESSION_TTL_S) -> Session:
    return Session(secrets.token_urlsafe(24), int(now) + int(ttl_s))


def _mac(token: bytes, sid: str, expires_at: int) -> str:
    return hmac.new(
        token, f"vidwatch-page-session:{sid}:{expires_at}".encode(), hashlib.sha256
    ).hexdigest()


def cookie_value(token: bytes, session: Session) -> str:
    return f"{session.sid}.{session.expires_at}.{_mac(token, session.sid, session.expires_at)}"


def parse_cookie(token: bytes, value: str | None, now: float) -> Session | None:
    """The session a cookie names, when its MAC is right (compared in constant time before
    anything else is looked at) and it has not expired; else None. Whether the session is
    still open is the store's to say (``SessionStore.is_open``)."""
    if not value or value.count(".") != 2:
        return None
    sid, expires, mac = value.split(".")
    try:
        expires_at = int(expires)
    except ValueError:
        return None
    if not hmac.compare_digest(_mac(token, sid, expires_at).encode(), mac.encode()):
        return None
    return Session(sid, expires_at) if now < expires_at else None


class SessionStore:
    """Sessions as objects of the store (``sessions/``), shared by every daemon on it.

    Give it the store's quick view (``ApiContext.reads``): a browser waits on these calls,
    and with the store down they fail within STORE_PROBE_TIMEOUT_S (StoreError, a 503)."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store

    def open(self, now: float, ttl_s: int = SESSION_TTL_S) -> Session:
        session = new_session(now, ttl_s)
        body = json.dumps({"expires_at": session.expires_at, "created_at": int(now)}).encode()
        self.store.put_bytes(session.key, body, content_type="application/json", if_none_match=True)
        self.sweep(now)
        return session

    def is_open(self, session: Session) -> bool:
        return self.store.head(session.key) is not None

    def close(self, session: Session) -> None:
        self.store.delete(session.key)

    def sweep(self, now: float) -> int:
        """Delete the sessions that have expired (their expiry is in the key: no GET);
        best effort, a failure is only logged. Returns how many went."""
        try:
            expired = [
                info.key for info in self.store.list(SESSIONS_PREFIX) if _expiry_of(info.key) < now
            ]
            if expired:
                self.store.delete_many(expired)
        except StoreError as exc:
            log.warning("session_sweep_failed", error=str(exc))
            return 0
        return len(expired)


def _expiry_of(key: str) -> float:
    expires, _, _ = key.removeprefix(SESSIONS_PREFIX).partition(".")
    return int(expires) if expires.isdigit() else float("inf")


def cookie_from_headers(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The session cookie's value among raw ASGI headers, or None."""
    for name, value in headers:
        if name != b"cookie":
            continue
        for part in value.decode("latin-1").split(";"):
            key, _, val = part.strip().partition("=")
            if key == SESSION_COOKIE:
                return val.strip('"')
    return None
