"""The bucket lifecycle rules of the user's document, built from the settings.

- abort incomplete multipart uploads after ``R2_ABORT_MULTIPART_DAYS``;
- expire objects under ``jobs/`` after ``R2_RETENTION_DAYS``;
- expire the content and Idempotency-Key index (``index/``) after ``R2_RETENTION_DAYS`` too:
  an entry names a job whose artifacts expire then (``outbox/`` is not expired by a rule:
  its records are deleted when delivered or given up).

The payload is the S3 ``PutBucketLifecycleConfiguration`` body, as
``config/r2-lifecycle.example.json`` shows it for the default settings (it also works with
``aws s3api put-bucket-lifecycle-configuration --lifecycle-configuration file://...``).
Applying it needs a token allowed to change the bucket's configuration: it is a deploy
step (``vidwatch r2 lifecycle --apply``), not something the daemon does.
"""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from vidwatch.r2.keys import JOBS_PREFIX
from vidwatch.r2.s3 import S3Store
from vidwatch.r2.store import StoreError

ABORT_MULTIPART_RULE_ID = "vidwatch-abort-incomplete-multipart-uploads"
EXPIRE_JOBS_RULE_ID = "vidwatch-expire-job-artifacts"
EXPIRE_INDEX_RULE_ID = "vidwatch-expire-content-index"
INDEX_PREFIX = "index/"
OUR_RULE_IDS = (ABORT_MULTIPART_RULE_ID, EXPIRE_JOBS_RULE_ID, EXPIRE_INDEX_RULE_ID)


def build_rules(*, retention_days: int, abort_multipart_days: int) -> dict[str, Any]:
    if retention_days < 1 or abort_multipart_days < 1:
        raise ValueError("lifecycle days must be at least 1")
    return {
        "Rules": [
            {
                "ID": ABORT_MULTIPART_RULE_ID,
                "Status": "Enabled",
                "Filter": {"Prefix": ""},
                "AbortIncompleteMultipartUpload": {
                    "DaysAfterInitiation": int(abort_multipart_days),
                },
            },
            {
                "ID": EXPIRE_JOBS_RULE_ID,
                "Status": "Enabled",
                "Filter": {"Prefix": JOBS_PREFIX},
                "Expiration": {"Days": int(retention_days)},
            },
            {
                "ID": EXPIRE_INDEX_RULE_ID,
                "Status": "Enabled",
                "Filter": {"Prefix": INDEX_PREFIX},
                "Expiration": {"Days": int(retention_days)},
            },
        ]
    }


def rules_from_settings(settings: Any) -> dict[str, Any]:
    """The payload for ``R2_RETENTION_DAYS`` and ``R2_ABORT_MULTIPART_DAYS``."""
    return build_rules(
        retention_days=settings.r2_retention_days,
        abort_multipart_days=settings.r2_abort_multipart_days,
    )


def render(payload: dict[str, Any]) -> str:
    """The payload as the JSON document ``--print`` shows and the example file holds."""
    return json.dumps(payload, indent=2) + "\n"


def merge_rules(existing: list[dict[str, Any]], ours: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The bucket's rules with ours put in place: a PUT replaces the whole configuration,
    so rules someone else set (other IDs) are kept as they are."""
    ids = {rule["ID"] for rule in ours}
    return [rule for rule in existing if rule.get("ID") not in ids] + list(ours)


def current_rules(store: S3Store) -> list[dict[str, Any]]:
    """The bucket's lifecycle rules (empty when it has none)."""

    def get() -> list[dict[str, Any]]:
        try:
            resp = store.client.get_bucket_lifecycle_configuration(Bucket=store.bucket)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "NoSuchLifecycleConfiguration":
                return []
            raise
        return list(resp.get("Rules", []))

    return store.call("get_lifecycle", f"bucket {store.bucket}", get)


def apply_rules(store: S3Store, payload: dict[str, Any]) -> list[dict[str, Any]]:
    """Put ``payload``'s rules on the bucket (keeping rules with other IDs), read them back
    and check ours are there as sent. Returns the bucket's rules after the change."""
    ours = payload["Rules"]
    merged = merge_rules(current_rules(store), ours)
    store.call(
        "put_lifecycle",
        f"bucket {store.bucket}",
        lambda: store.client.put_bucket_lifecycle_configuration(
            Bucket=store.bucket, LifecycleConfiguration={"Rules": merged}
        ),
    )
    after = current_rules(store)
    by_id = {rule.get("ID"): rule for rule in after}
    for rule in ours:
        if not _same_rule(rule, by_id.get(rule["ID"])):
            raise StoreError(
                f"lifecycle rule {rule['ID']} reads back as {by_id.get(rule['ID'])!r} on "
                f"bucket {store.bucket}, not as sent"
            )
    return after


def _same_rule(sent: dict[str, Any], got: dict[str, Any] | None) -> bool:
    """Whether the rule read back says what was sent (a server may add fields of its own,
    such as ``ExpiredObjectDeleteMarker: false``; those are not compared)."""
    if got is None or sent.get("Status") != got.get("Status"):
        return False
    for field in ("Expiration", "AbortIncompleteMultipartUpload"):
        wanted = sent.get(field)
        have = got.get(field)
        if wanted is None:
            continue
        if not isinstance(have, dict) or any(have.get(k) != v for k, v in wanted.items()):
            return False
    sent_prefix: str = sent.get("Filter", {}).get("Prefix", "")
    got_prefix = (got.get("Filter") or {}).get("Prefix", got.get("Prefix", ""))
    return sent_prefix == (got_prefix or "")
