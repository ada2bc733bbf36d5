"""JSON Schemas of the documents a job writes, generated from their models.

The checked-in copies in ``docs/schemas/`` are what consumers read; a test fails when they
differ from the models. After changing a model, write them again::

    uv run python -m vidwatch.jobs.schemas
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from vidwatch.jobs.manifest import Manifest
from vidwatch.pipeline.documents import FrameDocument, Results

DIALECT = "https://json-schema.org/draft/2020-12/schema"

SCHEMAS: dict[str, tuple[type[BaseModel], str]] = {
    "status.schema.json": (Manifest, "vidwatch status.json (jobs/<job_id>/status.json)"),
    "results.schema.json": (Results, "vidwatch results.json (jobs/<job_id>/analysis/results.json)"),
    "frame.schema.json": (
        FrameDocument,
        "vidwatch frame document (jobs/<job_id>/analysis/json/frame_<N>.json)",
    ),
}


def schema_of(model: type[BaseModel], title: str) -> dict[str, Any]:
    """The JSON Schema of what ``model`` writes (its serialised form)."""
    body = model.model_json_schema(mode="serialization")
    body["title"] = title
    return {"$schema": DIALECT, **body}


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def generated() -> dict[str, str]:
    """File name -> file text, as the models say today."""
    return {name: render(schema_of(model, title)) for name, (model, title) in SCHEMAS.items()}


def write(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in generated().items():
        path = folder / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    folder = Path(args[0]) if args else Path(__file__).resolve().parents[2] / "docs" / "schemas"
    for path in write(folder):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
