"""``vidwatch catalog rebuild``: read every job of the store into the catalog by hand (the
daemon does it by itself when the file is missing). Safe while a daemon runs on the same
file: SQLite's WAL lets both write, and a newer manifest is never overwritten by an older
one."""

from __future__ import annotations

import argparse
import json
import sys

from vidwatch.config import Settings
from vidwatch.r2.store import StoreError


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "catalog",
        help="the catalog of every job (search, job list)",
        description="The catalog (CATALOG_PATH) is derived from the store and safe to delete.",
    )
    commands = parser.add_subparsers(dest="catalog_command", metavar="COMMAND")
    commands.required = True
    rebuild = commands.add_parser(
        "rebuild",
        help="read every job of the store into the catalog",
        description="List jobs/ in the store, index every job, forget the jobs the store "
        "no longer has; the catalog is complete at the end.",
    )
    rebuild.add_argument("--json", action="store_true", help="print the figures as JSON")
    return parser


def run_catalog(args: argparse.Namespace, settings: Settings) -> int:
    from vidwatch.catalog import catalog_path, open_catalog
    from vidwatch.logs import configure_logging
    from vidwatch.r2 import open_store

    configure_logging(settings.log_format, "warning")
    try:
        store = open_store(settings)
        store.check()
    except StoreError as exc:
        print(f"vidwatch: the store is unavailable: {exc}", file=sys.stderr)
        return 1
    keeper = open_catalog(settings, store)
    try:
        report = keeper.rebuild()
    except StoreError as exc:
        print(f"vidwatch: the rebuild stopped: {exc}", file=sys.stderr)
        return 1
    finally:
        keeper.catalog.close()
        store.close()
    path = catalog_path(settings)
    figures = {
        "catalog": str(path),
        "jobs": report.jobs,
        "indexed": report.indexed,
        "removed": report.removed,
        "failed": report.failed,
        "seconds": round(report.seconds, 2),
        "bytes": path.stat().st_size if path.exists() else 0,
    }
    if args.json:
        print(json.dumps(figures))
    else:
        print(
            f"catalog {path}: {report.indexed} of {report.jobs} jobs indexed, "
            f"{report.removed} removed, {report.failed} unreadable, in {report.seconds:.1f} s"
        )
    return 0 if not report.failed else 1
