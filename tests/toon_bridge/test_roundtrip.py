"""Round trip of realistic frame documents through the bridge, alone, batched and threaded."""

from __future__ import annotations

import json
import random
import threading
from concurrent.futures import ThreadPoolExecutor

from vidwatch.toon_bridge import ToonBridge, json_difference
from vidwatch.toon_bridge.samples import JOB_ID, frame_document, frame_documents


def _as_written(doc: object) -> object:
    """The document as the pipeline's frame JSON file holds it (json.dumps -> json.loads)."""
    return json.loads(json.dumps(doc))


def test_frame_documents_round_trip_exactly(bridge: ToonBridge) -> None:
    docs = [_as_written(d) for d in frame_documents(120)]
    texts = bridge.encode_many(docs)
    assert len(texts) == len(docs)
    for doc, text in zip(docs, texts, strict=True):
        assert text.startswith(f"schema_version: 1\njob_id: {JOB_ID}\n")
        back = bridge.decode(text)
        diff = json_difference(doc, back)
        assert diff is None, f"frame {doc['frame']}: {diff}"


def test_the_example_frame_of_the_issue(bridge: ToonBridge) -> None:
    doc = {
        "schema_version": 1,
        "job_id": JOB_ID,
        "frame": 50,
        "time_s": 2.0,
        "scene": 1,
        "objects": [
            {
                "label": "person",
                "class_id": 0,
                "confidence": 0.91,
                "box_xyxy": [12.0, 30.5, 200.0, 355.0],
            }
        ],
        "segments": [
            {
                "label": "person",
                "class_id": 0,
                "confidence": 0.89,
                "box_xyxy": [12.5, 30.0, 199.0, 354.0],
                "polygon": [[12.0, 30.5], [15.0, 31.0], [20.0, 40.0]],
            }
        ],
        "faces": [
            {
                "confidence": 0.99,
                "box_xyxy": [181.0, 62.1, 267.7, 172.0],
                "landmarks": [[201.2, 103.5], [240.1, 101.9], [221.0, 125.3], [205.7, 148.8]],
            }
        ],
        "images": {"original": f"jobs/{JOB_ID}/frames/original/frame_50.jpg", "det": "d.jpg"},
    }
    text = bridge.encode(doc)
    assert text.splitlines()[:8] == [
        "schema_version: 1",
        f"job_id: {JOB_ID}",
        "frame: 50",
        "time_s: 2",
        "scene: 1",
        "objects[1]:",
        "  - label: person",
        "    class_id: 0",
    ]
    assert "    box_xyxy[4]: 12,30.5,200,355" in text
    assert "      - [2]: 12,30.5" in text
    assert json_difference(doc, bridge.decode(text)) is None


def test_frames_without_detections(bridge: ToonBridge) -> None:
    doc = frame_document(0, random.Random(1))
    doc.update(objects=[], segments=[], faces=[])
    text = bridge.encode(doc)
    assert "objects: []\nsegments: []\nfaces: []" in text
    assert json_difference(doc, bridge.decode(text)) is None


def test_batch_equals_one_by_one(bridge: ToonBridge) -> None:
    docs = frame_documents(40, seed=11)
    assert bridge.encode_many(docs) == [bridge.encode(d) for d in docs]
    assert bridge.encode_many([]) == []


def test_concurrent_writers_get_their_own_answers(bridge: ToonBridge) -> None:
    docs = frame_documents(160, seed=3)
    expected = bridge.encode_many(docs)
    start = threading.Barrier(8)

    def writer(chunk: int) -> list[tuple[int, str]]:
        start.wait()
        mine = range(chunk, len(docs), 8)
        out = [(i, bridge.encode(docs[i])) for i in mine if i % 3]
        batch = [i for i in mine if not i % 3]
        out += list(zip(batch, bridge.encode_many([docs[i] for i in batch]), strict=True))
        return out

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = [pair for part in pool.map(writer, range(8)) for pair in part]
    assert sorted(i for i, _ in results) == list(range(len(docs)))
    for i, text in results:
        assert text == expected[i], f"document {i} got another document's answer"
    assert bridge.stats["in_flight"] == 0
