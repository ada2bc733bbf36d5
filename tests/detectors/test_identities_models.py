"""dlib's models load from face-recognition-models without importing that package (its
``__init__`` needs the removed ``pkg_resources``), and describe real faces."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.models


def test_model_files_are_found_without_running_the_packages_init():
    code = (
        "import sys; from vidwatch.detectors.identities import model_files; "
        "paths = model_files(); "
        "assert 'face_recognition_models' not in sys.modules, 'imported'; "
        "print(*[p.stat().st_size for p in paths])"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    predictor, resnet = (int(v) for v in proc.stdout.split())
    assert predictor > 5_000_000 and resnet > 20_000_000


def test_the_two_portraits_are_two_people_and_a_mirror_is_the_same():
    import cv2
    import numpy as np
    from skimage import data

    from vidwatch.detectors.identities import DlibFaceDescriber

    describer = DlibFaceDescriber()
    astronaut = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    camera = cv2.cvtColor(data.camera(), cv2.COLOR_GRAY2BGR)
    a, c = (181.0, 62.0, 268.0, 172.0), (199.0, 119.0, 254.0, 192.0)  # MTCNN's boxes
    mirrored = np.ascontiguousarray(astronaut[:, ::-1])
    a_m = (512 - a[2], a[1], 512 - a[0], a[3])
    (da,) = describer.describe(astronaut, [a])
    (dc,) = describer.describe(camera, [c])
    (dm,) = describer.describe(mirrored, [a_m])
    assert da.shape == (128,) and da.dtype == np.float32
    assert np.linalg.norm(da - dc) > 0.7
    assert np.linalg.norm(da - dm) < 0.3
    assert describer.describe(astronaut, []) == []
    assert describer.infos[0].role == "identities" and len(describer.infos[0].sha256) == 64
