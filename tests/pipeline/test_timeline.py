"""The whole-video views built from frame documents: label segments, people, scene casts;
and the online identity assignment with a describer whose descriptors the test chooses."""

from __future__ import annotations

import numpy as np
import pytest

from tests import documents
from vidwatch.detectors.types import FaceDetection
from vidwatch.pipeline import timeline
from vidwatch.pipeline.identities import IdentityTracker, visible_fraction


def _frame(n, t, scene, objects=(), segments=(), faces=()):
    [entry] = documents.frames(
        [
            {
                "frame": n,
                "time_s": t,
                "scene": scene,
                "objects": [{"label": label, "confidence": c} for label, c in objects],
                "segments": [{"label": label, "confidence": c} for label, c in segments],
                "faces": [{"person": p} for p in faces],
            }
        ]
    )
    return entry


def _json(models):
    """The entries as results.json holds them (the fields they were made with)."""
    return [m.model_dump(exclude_unset=True) for m in models]


SCENES = documents.scenes([{"index": 0, "end_s": 2.5}, {"index": 1, "end_s": 4.0}])


def test_label_segments_runs_within_scenes_end_at_the_next_sample_or_the_scene_end():
    frames = [
        _frame(0, 0.0, 0, objects=[("person", 0.9)]),
        _frame(25, 1.0, 0, objects=[("person", 0.5), ("dog", 0.4)], segments=[("person", 0.95)]),
        _frame(50, 2.0, 0, objects=[("dog", 0.6)]),
        _frame(62, 2.5, 1, objects=[("person", 0.7), ("dog", 0.3)]),
        _frame(87, 3.5, 1, segments=[("person", 0.8)]),
    ]
    assert _json(timeline.label_segments(frames, SCENES)) == [
        {"label": "person", "scene": 0, "start_s": 0.0, "end_s": 2.0, "samples": 2,
         "max_confidence": 0.95},
        {"label": "dog", "scene": 0, "start_s": 1.0, "end_s": 2.5, "samples": 2,
         "max_confidence": 0.6},
        {"label": "dog", "scene": 1, "start_s": 2.5, "end_s": 3.5, "samples": 1,
         "max_confidence": 0.3},
        {"label": "person", "scene": 1, "start_s": 2.5, "end_s": 4.0, "samples": 2,
         "max_confidence": 0.8},
    ]  # fmt: skip


def test_label_segments_of_a_label_seen_again_after_a_gap_are_two_runs():
    frames = [
        _frame(0, 0.0, 0, objects=[("cat", 0.5)]),
        _frame(1, 0.5, 0),
        _frame(2, 1.0, 0, objects=[("cat", 0.6)]),
    ]
    runs = timeline.label_segments(frames, documents.scenes([{"index": 0, "end_s": 1.5}]))
    assert [(r.start_s, r.end_s, r.samples) for r in runs] == [
        (0.0, 0.5, 1),
        (1.0, 1.5, 1),
    ]
    assert timeline.label_segments([], []) == []


def test_people_and_scene_casts():
    frames = [
        _frame(0, 0.0, 0, faces=[0]),
        _frame(10, 1.0, 0, faces=[0, 1, None]),
        _frame(20, 2.0, 1, faces=[None]),
        _frame(30, 3.0, 2, faces=[1, 1]),
    ]
    people = _json(timeline.people(frames, {0: "k0", 1: "k1"}))
    assert people == [
        {"person": 0, "faces": 2, "frames": [0, 10], "scenes": [0], "first_s": 0.0,
         "last_s": 1.0, "thumbnail": "k0"},
        {"person": 1, "faces": 3, "frames": [10, 30], "scenes": [0, 2], "first_s": 1.0,
         "last_s": 3.0, "thumbnail": "k1"},
    ]  # fmt: skip
    assert timeline.scene_people(frames, 3) == [[0, 1], [], [1]]


class _Describer:
    """Descriptors chosen by the test: the face whose box starts at x gets ``by_x[x]``."""

    def __init__(self, by_x: dict[float, np.ndarray]) -> None:
        self.by_x = by_x
        self.calls: list[int] = []

    def describe(self, image, boxes):
        self.calls.append(len(boxes))
        return [self.by_x[box[0]] for box in boxes]


def _unit(i: int, scale: float = 1.0) -> np.ndarray:
    v = np.zeros(128, np.float32)
    v[i] = scale
    return v


def _face(x: float, side: float = 50.0, y: float = 10.0) -> FaceDetection:
    return FaceDetection.make(0.99, (x, y, x + side, y + side))


IMAGE = np.zeros((100, 400, 3), np.uint8)


def test_new_people_are_numbered_left_to_right_and_join_within_the_threshold():
    a, b = _unit(0), _unit(1)  # distance sqrt(2): two people
    near_a = a + _unit(2, 0.5)  # 0.5 from a: the same person at 0.6
    d = _Describer({200.0: a, 10.0: b, 300.0: near_a})
    tracker = IdentityTracker(d, threshold=0.6, min_px=20, reuse_iou=0)
    got = tracker.assign(IMAGE, 0, (_face(200.0), _face(10.0)))
    assert [f.person for f in got] == [1, 0]  # the left face is person 0
    assert [f.person for f in tracker.assign(IMAGE, 1, (_face(300.0),))] == [1]
    tight = IdentityTracker(_Describer({200.0: a, 300.0: near_a}), threshold=0.4, min_px=20)
    assert [f.person for f in tight.assign(IMAGE, 0, (_face(200.0),))] == [0]
    assert [f.person for f in tight.assign(IMAGE, 1, (_face(300.0),))] == [1]


def test_a_face_continuing_the_previous_sample_keeps_its_person_until_the_recheck():
    d = _Describer({10.0: _unit(0), 12.0: _unit(0), 200.0: _unit(1)})
    tracker = IdentityTracker(d, threshold=0.6, min_px=20, reuse_iou=0.5, recheck_every=3)
    tracker.assign(IMAGE, 0, (_face(10.0),))
    assert d.calls == [1]
    for _ in range(2):  # overlapping boxes in the same scene: no descriptor
        assert [f.person for f in tracker.assign(IMAGE, 0, (_face(12.0),))] == [0]
    assert d.calls == [1] and tracker.reused == 2
    tracker.assign(IMAGE, 0, (_face(12.0),))  # the third continued sample is checked again
    assert d.calls == [1, 1]
    tracker.assign(IMAGE, 1, (_face(12.0),))  # a new scene: described again
    assert d.calls == [1, 1, 1]
    # A face elsewhere in the frame is not a continuation.
    assert [f.person for f in tracker.assign(IMAGE, 1, (_face(200.0),))] == [1]


@pytest.mark.parametrize(
    ("face", "why"),
    [(_face(10.0, side=19.0), "below min_px"), (_face(370.0, side=60.0), "cut by the edge")],
)
def test_small_and_cut_faces_get_no_person_and_no_descriptor(face, why):
    d = _Describer({})
    tracker = IdentityTracker(d, threshold=0.6, min_px=20)
    assert [f.person for f in tracker.assign(IMAGE, 0, (face,))] == [None], why
    assert d.calls == [] and tracker.people == []


def test_visible_fraction():
    assert visible_fraction((0, 0, 10, 10), 100, 100) == 1.0
    assert visible_fraction((-5, 0, 5, 10), 100, 100) == 0.5
    assert visible_fraction((95, 95, 105, 105), 100, 100) == 0.25
