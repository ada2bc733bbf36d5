"""Object stores: the ObjectStore protocol, the local-folder store, the S3/R2 store."""

from __future__ import annotations

import structlog

from vidwatch.config import ConfigError, Settings
from vidwatch.r2.local import LocalStore
from vidwatch.r2.store import (
    ObjectInfo,
    ObjectNotFound,
    ObjectStore,
    PermanentStoreError,
    PreconditionFailed,
    PutItem,
    StorageFull,
    StoreError,
    TransientStoreError,
    UploadVerificationError,
    UrlSigner,
)

__all__ = [
    "LocalStore",
    "ObjectInfo",
    "ObjectNotFound",
    "ObjectStore",
    "PermanentStoreError",
    "PreconditionFailed",
    "PutItem",
    "StorageFull",
    "StoreError",
    "TransientStoreError",
    "UploadVerificationError",
    "UrlSigner",
    "open_store",
    "quick_view",
]

log = structlog.get_logger("vidwatch.r2")


def open_store(settings: Settings, *, url_signer: UrlSigner | None = None) -> ObjectStore:
    """R2 (or any S3 endpoint) when R2 settings are given, the local folder otherwise.

    ``url_signer`` makes the local folder's links (the HTTP API's ``/files`` route, see
    ``vidwatch.api.links.FileLinkSigner``); an S3 store presigns its own and ignores it.

    Start-up logs name each missing required R2 setting; a partial R2 configuration stops
    the start rather than silently writing to the local folder.
    """
    missing = settings.missing_r2_settings()
    if not settings.r2_requested():
        log.info(
            "r2_not_configured",
            missing=missing,
            store="local",
            local_store_dir=str(settings.local_store_dir),
        )
        return LocalStore(
            settings.local_store_dir, url_signer=url_signer, workers=settings.write_workers
        )
    if missing:
        for name in missing:
            log.error("r2_setting_missing", setting=name)
        raise ConfigError(f"R2 is partly configured; missing setting {', '.join(missing)}")
    from vidwatch.r2.s3 import S3Store

    return S3Store.from_settings(settings)


def quick_view(store: ObjectStore, deadline_s: float) -> ObjectStore:
    """The store for reads someone waits on (health, the API's reads): calls give up within
    about ``deadline_s`` seconds. A store without such a view (the local folder, which
    answers at once or not at all) is returned as it is."""
    quick = getattr(store, "quick", None)
    return quick(deadline_s) if callable(quick) else store
