"""The YOLO adapter and the drawing, on real Ultralytics Results objects (random weights
find nothing, so the results a trained model gives are built with Ultralytics' own class)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ultralytics.engine.results import Results

from vidwatch.detectors.types import Detections, FaceDetection, ObjectDetection
from vidwatch.detectors.yolo import YoloDetector
from vidwatch.pipeline import draw

pytestmark = pytest.mark.models


def _results() -> Results:
    img = np.full((120, 160, 3), 40, np.uint8)
    boxes = torch.tensor(
        [[10.0, 20.0, 60.0, 90.0, 0.91, 0.0], [80.0, 10.0, 150.0, 60.0, 0.40, 15.0]]
    )
    masks = torch.zeros((2, 120, 160))
    masks[0, 20:90, 10:60] = 1
    masks[1, 10:60, 80:150] = 1
    return Results(img, path="frame.jpg", names={0: "person", 15: "cat"}, boxes=boxes, masks=masks)


def test_both_roles_from_one_segmentation_pass(weights):
    det = YoloDetector(
        weights["segment"], name="seg", roles=("objects", "segments"), confidence=0.25, device="cpu"
    )
    det._names = {0: "person", 15: "cat"}
    found = det._convert(_results())
    assert [o.label for o in found.objects] == ["person", "cat"]
    assert found.objects[0].box_xyxy == (10.0, 20.0, 60.0, 90.0)
    assert found.objects[0].confidence == pytest.approx(0.91)
    assert [s.label for s in found.segments] == ["person", "cat"]
    poly = np.array(found.segments[0].polygon)
    # The outline hugs the mask's rectangle, simplified to its corners.
    assert 4 <= len(poly) <= 8
    assert poly[:, 0].min() == pytest.approx(10, abs=1.5)
    assert poly[:, 1].max() == pytest.approx(89, abs=1.5)


def test_detect_only_model_fills_objects_only(weights):
    det = YoloDetector(
        weights["detect"], name="det", roles=("objects",), confidence=0.25, device="cpu"
    )
    found = det._convert(_results())
    assert len(found.objects) == 2 and found.segments == ()
    assert det.infos[0].role == "detect" and len(det.infos[0].sha256) == 64


def test_detect_model_refused_as_segmenter(weights):
    with pytest.raises(ValueError, match="not a segmentation model"):
        YoloDetector(
            weights["detect"], name="det", roles=("segments",), confidence=0.25, device="cpu"
        )


def test_real_inference_on_a_batch_returns_one_result_per_frame(weights):
    det = YoloDetector(
        weights["segment"], name="seg", roles=("objects", "segments"), confidence=0.25, device="cpu"
    )
    frames = [np.zeros((90, 160, 3), np.uint8) for _ in range(3)]
    assert len(det.detect(frames)) == 3


def test_drawings_change_only_where_there_is_something_to_draw():
    frame = np.full((120, 160, 3), 40, np.uint8)
    empty = Detections()
    for fn in (draw.draw_det, draw.draw_seg, draw.draw_faces):
        assert np.array_equal(fn(frame, empty), frame)
    found = Detections(
        objects=(ObjectDetection.make("person", 0, 0.9, (10, 20, 60, 90)),),
        segments=(
            ObjectDetection.make(
                "person", 0, 0.9, (10, 20, 60, 90), [(10, 20), (60, 20), (60, 90), (10, 90)]
            ),
        ),
        faces=(
            FaceDetection.make(
                0.99, (20, 30, 50, 70), [(30, 45), (40, 45), (35, 52), (30, 60), (40, 60)]
            ),
        ),
    )
    det, seg, face = (fn(frame, found) for fn in (draw.draw_det, draw.draw_seg, draw.draw_faces))
    for img in (det, seg, face):
        assert not np.array_equal(img, frame) and img.shape == frame.shape
    # The mask is translucent: the inside is tinted, not painted over.
    inside = seg[55, 35].astype(int)
    assert (inside != 40).any() and (np.abs(inside - 40) < 200).all()
    assert np.array_equal(frame[0, 159], det[0, 159])  # far corner untouched
    assert draw.encode_jpeg(det, 85)[:3] == b"\xff\xd8\xff"


def test_result_types_validate():
    with pytest.raises(ValueError):
        ObjectDetection.make("x", 0, 1.5, (0, 0, 1, 1))
    with pytest.raises(ValueError):
        ObjectDetection.make("x", 0, 0.5, (5, 0, 1, 1))
    with pytest.raises(ValueError):
        FaceDetection.make(0.5, (0, 0, float("nan"), 1))
    assert FaceDetection.make(0.5, (-0.001, 0, 1, 1)).box_xyxy[0] == 0.0  # no -0.0


def test_faces_on_tiny_frames_are_none_not_an_error(models):
    from vidwatch.detectors.faces import MtcnnFaceDetector

    face = next(d for d in models.detectors if isinstance(d, MtcnnFaceDetector))
    assert face.detect([np.zeros((16, 16, 3), np.uint8)]) == [Detections()]
