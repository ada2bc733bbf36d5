"""TOON beside every frame JSON of a real job, decoded back by the same library."""

from __future__ import annotations

import json

import pytest

from tests.pipeline.test_pipeline import _run
from vidwatch.pipeline.toon import open_toon
from vidwatch.r2 import keys
from vidwatch.toon_bridge import json_difference

pytestmark = pytest.mark.models


def test_every_frame_toon_decodes_to_its_json_exactly(media, models, make_settings):
    settings = make_settings(toon_enabled="true")
    toon = open_toon(settings)
    try:
        store, job_id, manifest = _run(media / "cuts_h264.mp4", settings, models, toon=toon)
        assert manifest.state == "completed", manifest.error
        results = json.loads(store.get_bytes(keys.results_key(job_id)))
        assert results["provenance"]["toon"] == {
            "enabled": True,
            "library": f"@toon-format/toon {toon.version}",
        }
        assert len(results["frames"]) == 14
        for frame in results["frames"]:
            assert frame["toon"] == keys.frame_toon_key(job_id, frame["frame"])
            doc = json.loads(store.get_bytes(frame["json"]))
            text = store.get_bytes(frame["toon"]).decode()
            assert text and text != json.dumps(doc)
            assert json_difference(doc, toon.decode(text)) is None
    finally:
        toon.close()


def test_toon_off_writes_no_toon_and_says_so(media, models, make_settings):
    settings = make_settings(toon_enabled="false")
    store, job_id, _manifest = _run(media / "single_shot.mp4", settings, models, toon=None)
    results = json.loads(store.get_bytes(keys.results_key(job_id)))
    assert results["provenance"]["toon"] == {"enabled": False, "library": None}
    assert all(f["toon"] is None for f in results["frames"])
    assert not any("/analysis/toon/" in i.key for i in store.list(keys.job_prefix(job_id)))
