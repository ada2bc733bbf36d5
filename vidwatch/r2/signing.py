"""Signed links for the local store, served by our own API: an HMAC over key and expiry,
like an S3 presigned URL, so any HTTP client can fetch one and a tampered or expired one
is refused."""

from __future__ import annotations

import hashlib
import hmac
import time
from urllib.parse import quote, urlencode


def sign(secret: bytes, key: str, expires: int) -> str:
    message = f"{key}\n{int(expires)}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def signed_file_url(
    base_url: str, secret: bytes, key: str, ttl_s: int, now: float | None = None
) -> str:
    expires = int((time.time() if now is None else now) + ttl_s)
    query = urlencode({"expires": expires, "signature": sign(secret, key, expires)})
    return f"{base_url.rstrip('/')}/files/{quote(key)}?{query}"


def verify(secret: bytes, key: str, expires: int, signature: str, now: float | None = None) -> bool:
    """True when the signature matches and the link has not expired."""
    if int(expires) < (time.time() if now is None else now):
        return False
    return hmac.compare_digest(sign(secret, key, int(expires)), signature)
