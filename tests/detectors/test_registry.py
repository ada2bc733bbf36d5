"""Issue 22: a new detector is one module and one registration. ``brightness.py`` beside
this file is such a module; registered through ``Registry.register``, the real pipeline
runs it in every lane beside YOLO and MTCNN, and its list reaches every frame document
and results.json, its role the provenance. Nothing else in vidwatch knows of it."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from tests.detectors import brightness
from vidwatch.config import ConfigError, load_settings
from vidwatch.detectors import kinds
from vidwatch.detectors.catalogue import DetectorKind, Registry, Role
from vidwatch.detectors.registry import DETECTORS, ModelSet, load_models
from vidwatch.detectors.types import Detections, FaceDetection, ObjectDetection
from vidwatch.jobs.dedupe import content_key
from vidwatch.pipeline.analysis import AnalysisContext, AnalysisOptions, analyze, frame_entry
from vidwatch.pipeline.video import Frame, decode
from vidwatch.r2 import keys
from vidwatch.r2.local import LocalStore

FRAME_SCHEMA = Path(__file__).resolve().parents[2] / "docs" / "schemas" / "frame.schema.json"
JOB_ID = "01JD3W5Q6Y7Z8A9B0C1D2E3F4G"


def _with(kind: DetectorKind[object]) -> Registry:
    """The registered detectors and ``kind`` after them; DETECTORS itself is left as is."""
    registry = DETECTORS.copy()
    registry.register(kind)
    return registry


def _analyze(tmp_path, media, models, settings):
    store = LocalStore(tmp_path / "store")
    job_id = JOB_ID
    context = AnalysisContext(job_id=job_id, store=store, models=models)
    results = analyze(media / "single_shot.mp4", context, AnalysisOptions.from_settings(settings))
    return store, job_id, results.to_json()


def _frames(path, wanted: set[int]) -> dict[int, np.ndarray]:
    """The frames the pipeline decoded (its own decoder, so the same pixels)."""
    return {f.index: f.image for f in decode(path) if f.index in wanted}


@pytest.mark.models
def test_a_registered_detector_runs_in_every_lane_and_reaches_every_document(
    tmp_path, media, make_settings
):
    settings = make_settings(sample_fps=4, model_backend="torch", model_workers=2)
    models = load_models(settings, _with(brightness.KIND))
    assert DETECTORS.kinds == (kinds.YOLO, kinds.FACES)
    for lane in models.lanes:  # after the detectors vidwatch ships, in each lane its own
        assert [type(d).__name__ for d in lane] == [
            "YoloDetector",
            "YoloDetector",
            "MtcnnFaceDetector",
            "MeanBrightness",
        ]
    assert models.lanes[0][-1] is not models.lanes[1][-1]

    store, job_id, results = _analyze(tmp_path, media, models, settings)
    validator = jsonschema.Draft202012Validator(json.loads(FRAME_SCHEMA.read_text()))
    frames = _frames(media / "single_shot.mp4", {e["frame"] for e in results["frames"]})
    means = set()
    for entry in results["frames"]:
        doc = json.loads(store.get_bytes(keys.frame_json_key(job_id, entry["frame"])))
        # After the fields the documents declare, which are all still there.
        assert list(doc)[:-1] == ["schema_version", "job_id", *list(entry)[:-1]]
        assert list(doc)[-1] == "brightness" == list(entry)[-1]
        assert doc["brightness"] == entry["brightness"]
        [found] = doc["brightness"]
        assert found["mean"] == round(float(frames[entry["frame"]].mean()), 2)
        assert found["label"] == ("dark" if found["mean"] < brightness.DARK_BELOW else "bright")
        means.add(found["mean"])
        validator.validate(doc)  # the schemas allow fields they do not describe
    assert len(results["frames"]) >= 8 and len(means) > 1
    assert results["provenance"]["models"]["brightness"] == {
        "name": "mean-brightness",
        "sha256": None,
        "dark_below": brightness.DARK_BELOW,
    }
    assert {"detect", "segment", "faces", "identities"} <= set(results["provenance"]["models"])


@pytest.mark.models
def test_a_registered_detector_turned_off_keeps_its_list_and_says_why(
    tmp_path, media, make_settings
):
    settings = make_settings(
        sample_fps=1, detect_model="none", segment_model="none", faces_enabled="false"
    )
    off = dataclasses.replace(brightness.KIND, enabled=lambda config: False)
    models = load_models(settings, _with(off))
    assert models.detectors == []
    _, _, results = _analyze(tmp_path, media, models, settings)
    assert results["frames"]
    for entry in results["frames"]:  # the keys are the same whatever the settings
        assert entry["brightness"] == [] and entry["objects"] == []
    assert results["provenance"]["models"]["brightness"] == {
        "name": "none",
        "sha256": None,
        "enabled": False,
        "reason": "BRIGHTNESS=off: turned off by the operator; the brightness lists are empty",
    }


def test_one_start_names_every_setting_at_fault_across_detectors(tmp_path, monkeypatch):
    """Each detector's check runs before the heavy imports; their errors are one."""

    def refuse(config: object) -> object:
        raise ConfigError("BRIGHTNESS_MODEL='x.bin' not found", settings=("BRIGHTNESS_MODEL",))

    monkeypatch.chdir(tmp_path)
    settings = load_settings(
        {
            "DETECT_MODEL": "missing.pt",
            "SEGMENT_MODEL": "none",
            "ALLOW_MODEL_DOWNLOAD": "false",
            "TEMP_MEDIA_DIR": str(tmp_path / "tmp"),
        }
    )
    with pytest.raises(ConfigError) as caught:
        load_models(settings, _with(dataclasses.replace(brightness.KIND, check=refuse)))
    assert caught.value.settings == ("DETECT_MODEL", "BRIGHTNESS_MODEL")
    assert "DETECT_MODEL='missing.pt'" in str(caught.value)
    assert "BRIGHTNESS_MODEL='x.bin'" in str(caught.value)


def test_the_registered_detectors_and_what_they_declare():
    assert [k.name for k in DETECTORS.kinds] == ["yolo", "mtcnn"]
    assert [k.lists for k in DETECTORS.kinds] == [("objects", "segments"), ("faces",)]
    assert [r.name for k in DETECTORS.kinds for r in k.roles] == ["detect", "segment", "faces"]
    settings = load_settings({"FACE_MIN_CONFIDENCE": "0.8", "OBJECT_MIN_CONFIDENCE": "0.3"})
    assert kinds.FACES.config(settings) == kinds.FacesConfig(enabled=True, min_confidence=0.8)
    yolo = kinds.YOLO.config(settings)
    assert (yolo.confidence, yolo.detect_weights) == (0.3, None)
    assert kinds.YOLO.enabled(yolo)
    assert not kinds.YOLO.enabled(
        dataclasses.replace(yolo, detect_model="none", segment_model="NONE")
    )


@pytest.mark.parametrize(
    ("what", "change"),
    [
        ("name", {"name": "mtcnn"}),
        ("list", {"roles": (Role("brightness", ("objects",), off="X=off"),)}),
        ("role", {"roles": (Role("faces", ("brightness",), off="X=off"),)}),
        ("role", {"roles": (Role("identities", ("brightness",), off="X=off"),)}),
    ],
)
def test_a_detector_cannot_take_what_is_another_s(what, change):
    with pytest.raises(ValueError, match=f"{what} .* is already taken"):
        _with(dataclasses.replace(brightness.KIND, **change))


def test_a_detector_needs_a_role_and_names_that_are_identifiers():
    with pytest.raises(ValueError, match="declares no role"):
        _with(dataclasses.replace(brightness.KIND, roles=()))
    with pytest.raises(ValueError, match="no identifier"):
        _with(dataclasses.replace(brightness.KIND, roles=(Role("b", ("x-y",), off="X=off"),)))


def test_detections_carry_merge_and_replace_every_list():
    obj = ObjectDetection.make("cup", 41, 0.9, (1, 2, 3, 4))
    face = FaceDetection.make(0.99, (1, 2, 3, 4))
    bright = brightness.Brightness(200.0, "bright")
    merged = Detections(objects=(obj,)).merge(Detections(faces=(face,), brightness=(bright,)))
    assert list(merged.lists) == ["objects", "segments", "faces", "brightness"]
    assert (merged.objects, merged.faces, merged.lists["brightness"]) == (
        (obj,),
        (face,),
        (bright,),
    )
    assert merged.merge(merged).lists["brightness"] == (bright, bright)
    replaced = merged.replace(faces=(face.with_person(0),))
    assert replaced.faces[0].person == 0 and replaced.lists["brightness"] == (bright,)
    assert merged == Detections((obj,), (), (face,), brightness=[bright])
    with pytest.raises(AttributeError):
        merged.objects = ()  # type: ignore[misc]


def test_a_list_may_not_take_a_key_of_the_frame_document():
    frame = Frame(index=0, time_s=0.0, image=np.zeros((4, 4, 3), np.uint8))
    found = Detections(images=(brightness.Brightness(1.0, "dark"),))
    with pytest.raises(ValueError, match="'images'"):
        frame_entry(JOB_ID, frame, 0, found, toon=False)


def test_a_model_set_built_by_hand_has_the_registered_lists(tmp_path):
    settings = load_settings({"TEMP_MEDIA_DIR": str(tmp_path / "tmp")})
    models = ModelSet(detectors=[], device="cpu", settings=settings)
    [found] = models.detect([np.zeros((4, 4, 3), np.uint8)])
    assert found == Detections()
    with_toy = ModelSet(
        detectors=[], device="cpu", settings=settings, kinds=_with(brightness.KIND).kinds
    )
    assert list(with_toy.detect([np.zeros((4, 4, 3), np.uint8)])[0].lists)[-1] == "brightness"
    # Its role is in the provenance, so in the content key: registering it analyses again.
    keys_of = [
        content_key("0" * 64, settings, {r: i.to_json() for r, i in m.infos.items()})
        for m in (models, with_toy)
    ]
    assert keys_of[0] != keys_of[1]


def test_models_loaded_says_what_it_said_before_the_registry(tmp_path):
    """The log line's fields and their order are the same as when load_models wired YOLO
    and MTCNN by hand; each registered detector adds its own after them."""
    from structlog.testing import capture_logs

    settings = load_settings(
        {
            "DETECT_MODEL": "none",
            "SEGMENT_MODEL": "NONE",
            "FACES_ENABLED": "false",
            "MODEL_BACKEND": "torch",
            "TEMP_MEDIA_DIR": str(tmp_path / "tmp"),
        }
    )
    with capture_logs() as logs:
        load_models(settings)
        load_models(settings, _with(brightness.KIND))
    lines = [line for line in logs if line["event"] == "models_loaded"]
    fields = ["device", "backend", "detect", "segment", "faces"]
    after = ["identities", "lanes", "threads_per_lane"]
    assert [[k for k in line if k not in ("event", "log_level")] for line in lines] == [
        [*fields, *after],
        [*fields, "brightness", *after],
    ]
    assert [lines[0][k] for k in ("detect", "segment", "faces")] == ["none", "NONE", False]


def test_weights_are_hashed_once_until_they_change(tmp_path, monkeypatch):
    """Every lane names the same weights by sha256: the file is read once per process,
    and again when its size or mtime changes."""
    import hashlib
    import os

    from vidwatch.detectors import weights

    path = tmp_path / "w.pt"
    path.write_bytes(b"one")
    reads = []
    real_open = open

    def counting_open(file, *args, **kwargs):
        reads.append(str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(weights, "open", counting_open, raising=False)
    first = weights.sha256_of(path)
    assert weights.sha256_of(path) == first == hashlib.sha256(b"one").hexdigest()
    assert len(reads) == 1
    path.write_bytes(b"other")
    os.utime(path, ns=(1, 1))
    assert weights.sha256_of(path) == hashlib.sha256(b"other").hexdigest()
    assert len(reads) == 2
