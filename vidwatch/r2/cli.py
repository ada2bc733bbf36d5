"""``vidwatch r2 ...``: bucket operations for deploy time.

    vidwatch r2 lifecycle --print   the rules the settings give, as JSON (no network)
    vidwatch r2 lifecycle --apply   put them on the R2 bucket (admin-scoped token)

``add_r2_parser(subparsers)`` adds the ``r2`` command to the ``vidwatch`` parser;
``run_r2(args, settings)`` runs it and returns the exit code.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, TextIO

from vidwatch.r2.store import StoreError


def add_r2_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "r2",
        help="bucket operations (lifecycle rules)",
        description="Operations on the R2 bucket that belong to deployment, not the daemon.",
    )
    commands = parser.add_subparsers(dest="r2_command", metavar="COMMAND")
    commands.required = True
    lifecycle = commands.add_parser(
        "lifecycle",
        help="the bucket's lifecycle rules",
        description="Abort incomplete multipart uploads after R2_ABORT_MULTIPART_DAYS and "
        "expire jobs/ objects after R2_RETENTION_DAYS.",
    )
    action = lifecycle.add_mutually_exclusive_group(required=True)
    action.add_argument(
        "--print",
        dest="lifecycle_print",
        action="store_true",
        help="print the rules as JSON (the S3 lifecycle payload)",
    )
    action.add_argument(
        "--apply",
        dest="lifecycle_apply",
        action="store_true",
        help="put the rules on the bucket; rules with other IDs are kept. "
        "Needs a token allowed to change bucket configuration.",
    )
    return parser


def run_r2(
    args: argparse.Namespace,
    settings: Any,
    *,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run ``vidwatch r2 ...``: 0 on success, 1 when the store refused, 2 on usage or
    configuration errors."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    if getattr(args, "r2_command", None) != "lifecycle":
        print("vidwatch r2: unknown command", file=err)
        return 2
    from vidwatch.r2.lifecycle import apply_rules, render, rules_from_settings

    payload = rules_from_settings(settings)
    if getattr(args, "lifecycle_print", False):
        out.write(render(payload))
        return 0
    if not getattr(args, "lifecycle_apply", False):
        print("vidwatch r2 lifecycle: give --print or --apply", file=err)
        return 2

    from vidwatch.config import ConfigError
    from vidwatch.r2.s3 import S3Store

    if not settings.r2_requested():
        print(
            "vidwatch r2 lifecycle --apply: R2 is not configured; set "
            + ", ".join(settings.missing_r2_settings()),
            file=err,
        )
        return 2
    try:
        store = S3Store.from_settings(settings)
    except ConfigError as exc:
        print(f"vidwatch r2 lifecycle --apply: {exc}", file=err)
        return 2
    try:
        rules = apply_rules(store, payload)
    except StoreError as exc:
        hint = f" (check {exc.setting})" if exc.setting and exc.setting not in str(exc) else ""
        print(f"vidwatch r2 lifecycle --apply failed: {exc}{hint}", file=err)
        return 1
    finally:
        store.close()
    out.write(
        json.dumps(
            {
                "bucket": store.bucket,
                "endpoint": store.endpoint_url,
                "applied": [r["ID"] for r in payload["Rules"]],
                "Rules": rules,
            },
            indent=2,
            default=str,
        )
        + "\n"
    )
    return 0
