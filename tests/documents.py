"""Hand-written results.json documents made whole: a test writes the fields it is about, and
``complete`` fills every other field the ``Results`` model requires with a neutral value
(no detections, zero times, the settings at their defaults), so the document is one a job
could have written. Fields that jobs of earlier versions did not write (``people``,
``label_segments``, ``scenes[*].people``) are left as the test wrote them, absent or not:
``vidwatch.pipeline.views.read_results`` reads such documents."""

from __future__ import annotations

from typing import Any

from vidwatch import __version__
from vidwatch.config.settings import load_settings, result_settings
from vidwatch.pipeline.documents import FrameEntry, Results, SceneEntry
from vidwatch.pipeline.views import read_results
from vidwatch.r2 import keys

JOB_ID = "01JD3ZZZZZZZZZZZZZZZZZZZZZ"
BOX = [0.0, 0.0, 1.0, 1.0]


def _object(doc: dict[str, Any]) -> dict[str, Any]:
    return {"class_id": 0, "confidence": 0.5, "box_xyxy": BOX} | doc


def _segment(doc: dict[str, Any]) -> dict[str, Any]:
    return _object({"polygon": [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]]} | doc)


def _face(doc: dict[str, Any]) -> dict[str, Any]:
    return {"confidence": 0.99, "box_xyxy": BOX, "landmarks": [], "person": None} | doc


def frame(doc: dict[str, Any], job_id: str = JOB_ID) -> dict[str, Any]:
    n = doc["frame"]
    out = {
        "scene": 0,
        "objects": [],
        "segments": [],
        "faces": [],
        "images": {kind: keys.frame_image_key(job_id, kind, n) for kind in keys.IMAGE_KINDS},
        "json": keys.frame_json_key(job_id, n),
        "toon": None,
    } | doc
    out["objects"] = [_object(o) for o in out["objects"]]
    out["segments"] = [_segment(o) for o in out["segments"]]
    out["faces"] = [_face(f) for f in out["faces"]]
    return out


def scene(doc: dict[str, Any]) -> dict[str, Any]:
    start = doc.get("start_frame", 0)
    return {
        "start_frame": start,
        "end_frame": start,
        "start_s": 0.0,
        "end_s": 0.0,
        "keyframe": start,
    } | doc


def _person(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "faces": 1,
        "frames": [],
        "scenes": [],
        "first_s": 0.0,
        "last_s": 0.0,
        "thumbnail": None,
    } | doc


def complete(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` with every field the model requires (see the module's docstring)."""
    job_id = doc.get("job_id", JOB_ID)
    out: dict[str, Any] = {"schema_version": 1, "job_id": job_id} | doc
    out["video"] = {
        "fps": 25.0,
        "frames": None,
        "width": 64,
        "height": 36,
        "duration_s": None,
        "codec": "h264",
        "container": "mov,mp4,m4a,3gp,3g2,mj2",
        "rotation": 0,
        "coded_width": 64,
        "coded_height": 36,
    } | doc.get("video", {})
    out["scenes"] = [scene(s) for s in doc.get("scenes", [])]
    out["frames"] = [frame(f, job_id) for f in doc.get("frames", [])]
    if "people" in doc:
        out["people"] = [_person(p) for p in doc["people"]]
    summary = doc.get("summary", {})
    out["summary"] = {
        "labels": {},
        "frames_analyzed": len(out["frames"]),
        "people": len(doc.get("people", [])),
    } | summary
    out["summary"]["faces"] = {"frames": 0, "max_in_frame": 0} | summary.get("faces", {})
    provenance = doc.get("provenance", {})
    out["provenance"] = {
        "vidwatch_version": __version__,
        "source_sha256": None,
        "device": "cpu",
        "toon": {"enabled": False, "library": None},
    } | provenance
    out["provenance"]["models"] = {
        role: {"name": "none", "sha256": None}
        for role in ("detect", "segment", "faces", "identities")
    } | provenance.get("models", {})
    out["provenance"]["settings"] = (
        result_settings(load_settings({})) | {"scene_detector": "content"}
    ) | provenance.get("settings", {})
    out["timings_s"] = dict.fromkeys(
        ("decode", "model_stage_wait", "scenes", "models", "identities", "write", "drain", "wall"),
        0.0,
    ) | doc.get("timings_s", {})
    out["stats"] = {
        "frames_decoded": 0,
        "decodes_per_frame": 1.0,
        "frames_analyzed": len(out["frames"]),
        "face_descriptors": 0,
        "faces_reused": 0,
    } | doc.get("stats", {})
    return out


def results(doc: dict[str, Any]) -> Results:
    """``complete(doc)`` read as a stored document is."""
    return read_results(complete(doc))


def frames(docs: list[dict[str, Any]]) -> list[FrameEntry]:
    return [FrameEntry.model_validate(frame(d)) for d in docs]


def scenes(docs: list[dict[str, Any]]) -> list[SceneEntry]:
    return [SceneEntry.model_validate(scene({"people": []} | d)) for d in docs]
