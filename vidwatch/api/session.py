"""The pages' way in for browsers, which send no bearer header when they navigate.

With API_TOKEN set, ``POST /login`` takes the token in a one-field form and answers with a
cookie ``vidwatch_session``: ``<expiry>.<HMAC-SHA256(API_TOKEN, expiry)>``, HttpOnly,
SameSite=Strict, Secure over HTTPS, Path=/, for SESSION_TTL_S. The token itself never sits
in the cookie; changing API_TOKEN ends every session. The cookie stands in for the bearer
header on GET and HEAD only, so no cross-site form can make it upload or change anything.
"""

from __future__ import annotations

import hashlib
import hmac

SESSION_COOKIE = "vidwatch_session"
SESSION_TTL_S = 7 * 24 * 3600


def _mac(token: bytes, expires_at: int) -> str:
    return hmac.new(
        token, f"vidwatch-page-session:{expires_at}".encode(), hashlib.sha256
    ).hexdigest()


def session_value(token: bytes, now: float, ttl_s: int = SESSION_TTL_S) -> str:
    expires_at = int(now) + int(ttl_s)
    return f"{expires_at}.{_mac(token, expires_at)}"


def session_valid(token: bytes, value: str | None, now: float) -> bool:
    """The cookie's MAC is compared in constant time before its expiry is looked at."""
    if not value or "." not in value:
        return False
    expires, _, mac = value.partition(".")
    try:
        expires_at = int(expires)
    except ValueError:
        return False
    return hmac.compare_digest(_mac(token, expires_at).encode(), mac.encode()) and now < expires_at


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
