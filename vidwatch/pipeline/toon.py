"""Opening the TOON encoder the settings ask for (or none, with TOON_ENABLED=false)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

from vidwatch.config import ConfigError, Settings

if TYPE_CHECKING:
    from vidwatch.toon_bridge import ToonBridge

log = structlog.get_logger("vidwatch.toon")


def open_toon(settings: Settings) -> ToonBridge | None:
    """A started TOON bridge, or None when TOON is off (said once, at start-up)."""
    if not settings.toon_enabled:
        log.warning(
            "toon_disabled",
            reason="TOON_ENABLED=false",
            effect="no analysis/toon/ files; results.json records it",
        )
        return None
    from vidwatch.toon_bridge import ToonBridge, ToonUnavailable

    bridge = ToonBridge(node_binary=settings.node_binary, timeout_s=settings.toon_timeout_s)
    try:
        bridge.start()
    except ToonUnavailable as exc:
        raise ConfigError(
            f"TOON runtime unavailable: {exc} (set TOON_ENABLED=false to run without TOON files)"
        ) from None
    return bridge
