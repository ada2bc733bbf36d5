"""The ``vidwatch`` command: ``analyze`` one video, ``run`` the daemon, ``r2`` operations,
``people`` (the library of people), ``catalog rebuild``."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from pathlib import Path
from typing import NoReturn

from vidwatch import __version__
from vidwatch.config import ConfigError, load_settings

_SUBCOMMANDS = (
    ("run", "vidwatch.daemon.service", "add_parser"),
    ("r2", "vidwatch.r2.cli", "add_r2_parser"),
    ("people", "vidwatch.library.cli", "add_people_parser"),
    ("catalog", "vidwatch.catalog.cli", "add_parser"),
)
"""Sub-commands whose modules add their own arguments: (name, module, function)."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vidwatch",
        description=(
            "Video analysis: scenes, objects, masks and faces, written beside a status.json."
        ),
    )
    parser.add_argument("--version", action="version", version=f"vidwatch {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    analyze = sub.add_parser("analyze", help="analyse one video on the configured store")
    analyze.add_argument("video", type=Path)
    analyze.add_argument(
        "--sample-fps", type=float, help="frames per second sent to the models (SAMPLE_FPS)"
    )
    analyze.add_argument("--detect-model", help="DETECT_MODEL: a model name or weights path")
    analyze.add_argument("--segment-model", help="SEGMENT_MODEL: a model name or weights path")
    analyze.add_argument("--device", help="MODEL_DEVICE: auto, cpu, cuda or cuda:N")
    analyze.add_argument("--no-toon", action="store_true", help="write no TOON files")
    analyze.add_argument(
        "--keep-local-source",
        action="store_true",
        help="keep the staged copy (cleanup_local_video_after_upload=false)",
    )
    analyze.add_argument("--json", action="store_true", help="print the final manifest as JSON")
    analyze.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    analyze.add_argument("-v", "--verbose", action="store_true", help="log at info level")

    for name, module, add in _SUBCOMMANDS:
        try:
            mod = importlib.import_module(module)
        except ImportError as exc:
            # Still a known command: running it shows the import error, not "invalid choice".
            broken = sub.add_parser(name, help=f"unavailable: {exc}", add_help=False)
            broken.set_defaults(import_error=exc, import_module=module)
            continue
        getattr(mod, add)(sub)
    return parser


def _import_failed(args: argparse.Namespace) -> int:
    exc: ImportError = args.import_error
    traceback.print_exception(exc, file=sys.stderr)
    print(
        f"vidwatch: the '{args.command}' command is unavailable: importing {args.import_module} "
        f"failed: {type(exc).__name__}: {exc} (reinstall with `uv sync`)",
        file=sys.stderr,
    )
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args, unknown = parser.parse_known_args(argv)
    return _run(parser, args, unknown)


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace, unknown: list[str]) -> int:
    if getattr(args, "import_error", None) is not None:
        return _import_failed(args)  # its arguments are unknown: the module never loaded
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    overrides: dict[str, object] = {}
    if args.command == "analyze":
        for attr, setting in (
            ("sample_fps", "sample_fps"),
            ("detect_model", "detect_model"),
            ("segment_model", "segment_model"),
            ("device", "model_device"),
        ):
            if getattr(args, attr) is not None:
                overrides[setting] = getattr(args, attr)
        if args.no_toon:
            overrides["toon_enabled"] = False
    try:
        settings = load_settings(None, **overrides)
    except ConfigError as exc:
        print(f"vidwatch: {exc}", file=sys.stderr)
        return 2
    if args.command == "analyze":
        from vidwatch.cli.analyze import run_analyze

        return run_analyze(args, settings)
    if args.command == "run":
        from vidwatch.daemon.service import run_service

        return run_service(args, settings)
    if args.command == "people":
        from vidwatch.library.cli import run_people

        return run_people(args, settings)
    if args.command == "catalog":
        from vidwatch.catalog.cli import run_catalog

        return run_catalog(args, settings)
    from vidwatch.r2.cli import run_r2

    return run_r2(args, settings)


def command() -> NoReturn:
    """The ``vidwatch`` console script: ``main``, then, after a one-shot ``analyze``, an
    immediate exit. By then every artifact is written and closed, the TOON helper stopped
    and the output flushed; the interpreter's teardown of torch, OpenVINO and Ultralytics
    (about 1.2 s measured here, 0.6 s with no model loaded) would add nothing but waiting."""
    parser = _parser()
    args, unknown = parser.parse_known_args()
    code = _run(parser, args, unknown)
    if args.command == "analyze":
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
