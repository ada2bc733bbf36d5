"""Retention on the local store expires old content-index and Idempotency-Key records,
as the bucket's ``index/`` lifecycle rule does on R2."""

from __future__ import annotations

import os
import time

from vidwatch.config import load_settings
from vidwatch.daemon.retention import Retention
from vidwatch.jobs.dedupe import idempotency_key, index_key
from vidwatch.r2.local import LocalStore


def test_old_index_records_expire_and_new_ones_stay(tmp_path):
    store = LocalStore(tmp_path / "store")
    settings = load_settings(
        {"LOCAL_STORE_DIR": str(tmp_path / "store"), "TEMP_MEDIA_DIR": str(tmp_path / "t")}
    )
    old, new, idem = index_key("a" * 64), index_key("b" * 64), idempotency_key("client-key")
    for key in (old, new, idem):
        store.put_bytes(key, b"{}")
    eight_days_ago = time.time() - 8 * 86400
    for key in (old, idem):
        os.utime(store.path_for(key), (eight_days_ago, eight_days_ago))
    Retention(settings, store).run()
    assert store.head(old) is None and store.head(idem) is None
    assert store.head(new) is not None
