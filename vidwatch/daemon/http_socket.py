"""The HTTP API's listening socket, bound before the models load (a taken port stops the
start at once), and the pages' address for the ready line."""

from __future__ import annotations

import errno
import socket

from vidwatch.config import ConfigError


def bind_http_socket(host: str, port: int) -> socket.socket:
    """A socket bound to HTTP_HOST:HTTP_PORT, for uvicorn to listen on once the rest is up.
    A port that is taken (or a host that is not ours) is a setting to fix: ConfigError
    naming HTTP_PORT (or HTTP_HOST), exit 2, before any model is loaded."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except (socket.gaierror, UnicodeError) as exc:
        raise ConfigError(
            f"HTTP_HOST={host!r}: not an address of this host ({exc})", settings=("HTTP_HOST",)
        ) from None
    sock = socket.socket(family, kind, proto)
    # As uvicorn binds: a port left in TIME_WAIT by the previous run is free to take.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRNOTAVAIL:
            raise ConfigError(
                f"HTTP_HOST={host!r}: not an address of this host ({exc.strerror})",
                settings=("HTTP_HOST",),
            ) from None
        raise ConfigError(
            f"HTTP_PORT={port}: cannot listen on {host}:{port} ({exc.strerror}); set HTTP_PORT "
            "to a free port, or HTTP_ENABLED=false for no HTTP API",
            settings=("HTTP_PORT",),
        ) from None
    return sock


def pages_url(public_base_url: str | None, host: str, port: int) -> str:
    """Where the pages are, for the ready line: PUBLIC_BASE_URL's /jobs when it is set,
    else the address served (a wildcard host shown as loopback, which it includes)."""
    if public_base_url:
        return public_base_url.rstrip("/") + "/jobs"
    shown = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(host, host)
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/jobs"
