"""The ``vidwatch`` command: ``analyze`` one video, ``run`` the daemon, ``r2`` operations."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vidwatch import __version__
from vidwatch.config import ConfigError, load_settings


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

    for name, module in (("run", "vidwatch.daemon.service"), ("r2", "vidwatch.r2.cli")):
        try:
            mod = __import__(module, fromlist=["add_parser"])
        except ImportError:
            continue
        mod.add_parser(sub) if name == "run" else mod.add_r2_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
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
        settings = load_settings(**overrides)
    except ConfigError as exc:
        print(f"vidwatch: {exc}", file=sys.stderr)
        return 2
    if args.command == "analyze":
        from vidwatch.cli.analyze import run_analyze

        return run_analyze(args, settings)
    if args.command == "run":
        from vidwatch.daemon.service import run_service

        return run_service(args, settings)
    from vidwatch.r2.cli import run_r2

    return run_r2(args, settings)
