"""The JSON Schemas in docs/schemas: equal to what the models generate, and true of real
jobs (a completed one and a failed one); hand-broken documents fail them."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import pytest

from vidwatch.jobs.run import run_job
from vidwatch.jobs.schemas import SCHEMAS, generated
from vidwatch.jobs.staging import JobSpec, new_job_id, stage_copy
from vidwatch.r2 import keys
from vidwatch.r2.local import LocalStore

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "docs" / "schemas"


def _validator(name: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((SCHEMA_DIR / name).read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_checked_in_schema_is_what_the_models_generate(name):
    checked_in = (SCHEMA_DIR / name).read_text()
    assert checked_in == generated()[name], (
        f"docs/schemas/{name} is stale: run `uv run python -m vidwatch.jobs.schemas`"
    )


# --- real jobs --------------------------------------------------------------------------------
def _job(media_file: Path, settings, models) -> dict:
    store = LocalStore(settings.local_store_dir)
    job_id = new_job_id()
    staged = stage_copy(settings, job_id, media_file)
    spec = JobSpec(job_id=job_id, staged_source=staged, origin="cli", filename=media_file.name)
    run_job(spec, store=store, settings=settings, models=models, toon=None)
    docs = {"status": json.loads(store.get_bytes(keys.status_key(job_id)))}
    if docs["status"]["state"] == "completed":
        docs["results"] = json.loads(store.get_bytes(keys.results_key(job_id)))
        docs["frames"] = [json.loads(store.get_bytes(f["json"])) for f in docs["results"]["frames"]]
    return docs


@pytest.fixture(scope="module")
def jobs(media, models, tmp_path_factory):
    from vidwatch.config import load_settings

    root = tmp_path_factory.mktemp("schemas")
    settings = load_settings(
        {
            "TEMP_MEDIA_DIR": str(root / "tmp"),
            "LOCAL_STORE_DIR": str(root / "store"),
            "TOON_ENABLED": "false",
            "SAMPLE_FPS": "0.1",  # the first frame of each of the six scenes, and one more
            "DETECT_MODEL": models.settings.detect_model,
            "SEGMENT_MODEL": models.settings.segment_model,
        }
    )
    return {
        "completed": _job(media / "cuts_h264.mp4", settings, models),
        "failed": _job(media / "bad" / "not_a_video.mp4", settings, models),
    }


@pytest.mark.models
def test_a_completed_job_matches_the_schemas(jobs):
    done = jobs["completed"]
    assert done["status"]["state"] == "completed"
    _validator("status.schema.json").validate(done["status"])
    _validator("results.schema.json").validate(done["results"])
    frame_schema = _validator("frame.schema.json")
    for doc in done["frames"]:
        frame_schema.validate(doc)
    # MTCNN finds the astronaut's face, so face items were checked too (the random-weight
    # YOLO finds nothing; object and segment items are checked below).
    assert any(f["faces"] for f in done["results"]["frames"])


@pytest.mark.models
def test_a_failed_job_matches_the_status_schema(jobs):
    failed = jobs["failed"]["status"]
    assert failed["state"] == "failed" and failed["error"]["code"] == "not_a_video"
    _validator("status.schema.json").validate(failed)


def _broken(doc: dict, path: str, value) -> dict:
    """A copy of ``doc`` with the field at dotted ``path`` set to ``value`` (or removed)."""
    out = copy.deepcopy(doc)
    *parents, last = path.split(".")
    node = out
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    if value is _REMOVE:
        del node[last]
    elif last.isdigit():
        node[int(last)] = value
    else:
        node[last] = value
    return out


_REMOVE = object()


@pytest.mark.models
@pytest.mark.parametrize(
    ("job", "path", "value"),
    [
        ("completed", "state", _REMOVE),
        ("completed", "state", "finished"),
        ("completed", "stage", "thinking"),
        ("completed", "progress.frames_done", "48"),
        ("completed", "progress.percent", 120.0),
        ("completed", "source.origin", "email"),
        ("completed", "summary", _REMOVE),  # a completed job says what it found
        ("completed", "results_key", None),
        ("completed", "attempts", -1),
        ("failed", "error", None),  # a failed job says why
        ("failed", "error", {"code": "not_a_video"}),
        ("failed", "worker", _REMOVE),
    ],
)
def test_broken_status_documents_fail_the_schema(jobs, job, path, value):
    validator = _validator("status.schema.json")
    doc = jobs[job]["status"]
    validator.validate(doc)
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(_broken(doc, path, value))


@pytest.mark.models
@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("provenance", _REMOVE),
        ("video.frames", "48"),
        ("scenes.0.start_frame", -1),
        ("frames.0.time_s", _REMOVE),
        ("frames.0.json", _REMOVE),
        ("frames.0.faces.0.box_xyxy", [1.0, 2.0, 3.0]),
        ("frames.0.faces.0.confidence", 1.5),
        ("frames.0.objects", None),
        ("frames.0.images.det", None),
        ("summary.faces", _REMOVE),
        ("timings_s", {"wall": 1.0}),
    ],
)
def test_broken_results_fail_the_schema(jobs, path, value):
    validator = _validator("results.schema.json")
    doc = jobs["completed"]["results"]
    validator.validate(doc)
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(_broken(doc, path, value))


@pytest.mark.models
def test_a_broken_frame_document_fails_the_schema(jobs):
    validator = _validator("frame.schema.json")
    doc = jobs["completed"]["frames"][0]
    validator.validate(doc)
    for path in ("job_id", "schema_version", "segments"):
        with pytest.raises(jsonschema.ValidationError):
            validator.validate(_broken(doc, path, _REMOVE))


def _detections():
    from vidwatch.detectors.types import Detections, FaceDetection, ObjectDetection

    return Detections(
        objects=(ObjectDetection.make("cup", 41, 0.875, [10, 20.5, 110.25, 200]),),
        segments=(
            ObjectDetection.make(
                "cup", 41, 0.75, [10, 20, 110, 200], [[10, 20], [110, 20], [60.55, 200]]
            ),
        ),
        faces=(
            FaceDetection.make(0.99, [5, 6, 50, 70], [[1, 2], [3, 4], [5, 6], [7, 8], [9, 10]]),
        ),
    )


def test_a_frame_document_is_what_the_detections_wrote_before_the_models():
    """The frame document from the typed models is, key for key and in order, the document
    the detections' own JSON made before (the contract), and it passes the schema."""
    import numpy as np

    from vidwatch.pipeline.analysis import frame_entry
    from vidwatch.pipeline.documents import FrameDocument
    from vidwatch.pipeline.video import Frame

    job_id, found = new_job_id(), _detections()
    frame = Frame(index=7, time_s=0.29166666, image=np.zeros((4, 4, 3), np.uint8))
    doc = FrameDocument.of(job_id, frame_entry(job_id, frame, 2, found, toon=True)).to_json()
    expected = {
        "schema_version": 1,
        "job_id": job_id,
        "frame": 7,
        "time_s": 0.2917,
        "scene": 2,
        "objects": [o.to_json() for o in found.objects],
        "segments": [s.to_json() for s in found.segments],
        "faces": [f.to_json() for f in found.faces],
        "images": {kind: keys.frame_image_key(job_id, kind, 7) for kind in keys.IMAGE_KINDS},
        "json": keys.frame_json_key(job_id, 7),
        "toon": keys.frame_toon_key(job_id, 7),
    }
    assert json.dumps(doc) == json.dumps(expected)
    validator = _validator("frame.schema.json")
    validator.validate(doc)
    for path, value in (
        ("objects.0.box_xyxy", [1.0, 2.0, 3.0]),
        ("objects.0.confidence", 1.5),
        ("segments.0.polygon", _REMOVE),
        ("segments.0.polygon", [[1.0, 2.0]]),
        ("faces.0.landmarks", [[1.0]]),
    ):
        with pytest.raises(jsonschema.ValidationError):
            validator.validate(_broken(doc, path, value))
