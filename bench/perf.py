"""The performance benchmark: where vidwatch stands against its floor and its peers.

    uv run python -m bench.perf [--minutes 1 5] [--out bench/out]

Inputs are built at run time from the shared test media (looped and concatenated into
720p H.264 videos of 1 and 5 minutes, cached in bench/out, never committed). The models are
the real classes; without real weights on the host they are built from Ultralytics' yaml
(random weights: the same network and pre-processing, fewer detections to post-process).

Three configurations are compared in one run (``configurations()``): "before" (PyTorch, one
model lane, separate detect and segment models), "two_models" (today's runtime with those
two models) and "after" (today's defaults: one -seg pass, OpenVINO, one lane per core).

It reports, as JSON (bench/out/perf.json) and as a markdown table, for each configuration:
  - decode frames/s (the floor's first part); the scene stage against the `scenedetect` CLI
    on the same file (the cut lists must agree);
  - model time per sampled frame at batch sizes 1, 4 and 8, and detection + segmentation
    from one -seg pass against two separate models; MTCNN batched against frame by frame;
  - end-to-end wall time of a job on the local store and on a moto server, divided by the
    floor (decode + scenes + models on the sampled frames, each measured alone), with the
    pipeline's own per-stage breakdown;
  - the realtime factor at SAMPLE_FPS 1 and 5; peak RSS of the 1- and 5-minute jobs;
  - decodes per frame (must be 1.0) and the plain frame-by-frame loop most hand-written
    pipelines use, as the model-stage peer;
  - face identities: the cost of one descriptor (dlib alignment + ResNet) on the faces of the
    sampled frames, and the realtime factor of the 1-minute job with and without
    FACE_IDENTITIES, alternated ``--repeat`` times (``--identities`` runs only this part).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
MEDIA = Path(os.environ.get("VIDWATCH_TEST_MEDIA", REPO.parent / "shared" / "media"))
SOURCES = ("cuts_h264.mp4", "cuts_vp9.webm", "single_shot.mp4")
WIDTH, HEIGHT, FPS = 1280, 720, 25


# --- inputs ---------------------------------------------------------------------------------
def build_input(minutes: float, out_dir: Path) -> tuple[Path, list[int]]:
    """A 720p H.264 video of ``minutes`` made of the test media, and its true cut list."""
    import av
    import cv2

    path = out_dir / f"input_{minutes:g}min_720p.mp4"
    truth_path = path.with_suffix(".cuts.json")
    if path.is_file() and truth_path.is_file():
        return path, json.loads(truth_path.read_text())
    clips = []
    for name in SOURCES:
        frames = []
        with av.open(str(MEDIA / name)) as c:
            for f in c.decode(video=0):
                frames.append(
                    cv2.resize(
                        f.to_ndarray(format="bgr24"), (WIDTH, HEIGHT), interpolation=cv2.INTER_AREA
                    )
                )
        truth = json.loads((MEDIA / name).with_suffix(".truth.json").read_text())
        clips.append((frames, [s["start_frame"] for s in truth["scenes"]]))
    total = int(minutes * 60 * FPS)
    tmp = path.with_suffix(".part")
    out = av.open(str(tmp), "w", format="mp4")
    stream = out.add_stream("libx264", rate=FPS)
    stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    stream.options = {"preset": "veryfast", "crf": "23"}
    cuts: list[int] = []
    n = 0
    while n < total:
        for frames, starts in clips:
            for s in starts:
                if n + s < total and n + s > 0:
                    cuts.append(n + s)
            for img in frames:
                if n >= total:
                    break
                for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="bgr24")):
                    out.mux(packet)
                n += 1
            if n >= total:
                break
    for packet in stream.encode():
        out.mux(packet)
    out.close()
    tmp.rename(path)
    truth_path.write_text(json.dumps(cuts))
    return path, cuts


# --- stages alone ---------------------------------------------------------------------------
def bench_decode(path: Path) -> dict:
    from vidwatch.pipeline.video import decode

    started = time.perf_counter()
    frames = sum(1 for _ in decode(path))
    seconds = time.perf_counter() - started
    return {"frames": frames, "seconds": round(seconds, 3), "fps": round(frames / seconds, 1)}


def bench_scenes(path: Path, fps: float) -> dict:
    """Our scene stage (decode + tracker, one pass) against the scenedetect CLI."""
    from vidwatch.detectors.scenes import ContentSceneTracker
    from vidwatch.pipeline.video import decode

    tracker = ContentSceneTracker(fps=fps)
    cuts: list[int] = []
    tracker_s = 0.0
    started = time.perf_counter()
    last = 0
    for frame in decode(path):
        t = time.perf_counter()
        cuts += tracker.push(frame.index, frame.image)
        tracker_s += time.perf_counter() - t
        last = frame.index
    cuts += tracker.finish(last)
    ours = time.perf_counter() - started

    out = Path(tempfile.mkdtemp(prefix="scenedetect-"))
    cli = shutil.which("scenedetect", path=str(Path(sys.executable).parent)) or "scenedetect"
    started = time.perf_counter()
    subprocess.run(
        [
            cli,
            "-q",
            "-i",
            str(path),
            "-o",
            str(out),
            "detect-content",
            "list-scenes",
            "-s",
            "-f",
            "scenes.csv",
        ],
        check=True,
    )
    cli_s = time.perf_counter() - started
    with open(out / "scenes.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    # The CLI's CSV numbers frames from 1; ours from 0.
    cli_cuts = [int(r["Start Frame"]) - 1 for r in rows[1:]]
    shutil.rmtree(out, ignore_errors=True)
    return {
        "ours_decode_plus_scenes_s": round(ours, 3),
        "tracker_only_s": round(tracker_s, 3),
        "cli_s": round(cli_s, 3),
        "cli_over_ours": round(cli_s / ours, 2),
        "cuts": len(cuts),
        "cuts_agree": sorted(cuts) == sorted(cli_cuts),
    }


def _sample_frames(path: Path, n: int) -> list:
    from vidwatch.pipeline.video import decode

    frames = []
    for frame in decode(path):
        if frame.index % FPS == 0:
            frames.append(frame.image)
            if len(frames) >= n:
                break
    return frames


def bench_models(models, frames: list) -> dict:
    """ms per frame for each detector at batch sizes 1 and 4, and where a sampled frame's
    time goes: YOLO's pre-processing, inference and post-processing (Ultralytics' own
    timers), MTCNN's stages (on the OpenVINO path, which times them)."""
    from vidwatch.detectors.faces import MtcnnFaceDetector
    from vidwatch.detectors.yolo import YoloDetector

    out: dict = {"stages_ms": {}}
    for det in models.detectors:
        name = "+".join(i.role for i in det.infos)
        det.detect(frames[:1])  # warm-up
        per_batch = {}
        for batch in (1, 4):
            started = time.perf_counter()
            for i in range(0, len(frames), batch):
                det.detect(frames[i : i + batch])
            per_batch[str(batch)] = round(1000 * (time.perf_counter() - started) / len(frames), 1)
        out[name] = per_batch
        if isinstance(det, YoloDetector):
            speed: dict[str, float] = {}
            for i in range(0, len(frames), 4):
                for r in det._predict(frames[i : i + 4]):
                    for k, v in r.speed.items():
                        speed[k] = speed.get(k, 0.0) + v
            out["stages_ms"][name] = {k: round(v / len(frames), 1) for k, v in speed.items()}
        if isinstance(det, MtcnnFaceDetector) and det.backend == "openvino":
            det.stage_times = {}
            for i in range(0, len(frames), 4):
                det.detect(frames[i : i + 4])
            out["stages_ms"][name] = {
                k: round(1000 * v / len(frames), 1) for k, v in det.stage_times.items()
            }
            det.stage_times = None
    return out


def bench_lanes(models, frames: list) -> float:
    """ms per sampled frame with every model lane busy (frames handed to ``ModelSet.detect``
    from as many threads as there are lanes): the model stage's throughput."""
    from concurrent.futures import ThreadPoolExecutor

    width = len(models.lanes)
    with ThreadPoolExecutor(width) as pool:
        list(pool.map(lambda f: models.detect([f]), frames[:width]))  # warm-up
        started = time.perf_counter()
        list(pool.map(lambda f: models.detect([f]), frames))
        seconds = time.perf_counter() - started
    return round(1000 * seconds / len(frames), 1)


def bench_one_pass(weights_seg: Path, weights_det: Path, frames: list, models) -> dict:
    """Objects + masks from one -seg pass against a detection and a segmentation model."""
    from vidwatch.detectors.yolo import YoloDetector

    kw = {
        "confidence": 0.25,
        "device": models.device,
        "backend": models.backend,
        "cache_dir": models.settings.model_cache_dir,
    }
    both = YoloDetector(weights_seg, name="seg", roles=("objects", "segments"), **kw)
    det = YoloDetector(weights_det, name="det", roles=("objects",), **kw)
    seg = YoloDetector(weights_seg, name="seg", roles=("segments",), **kw)
    for d in (both, det, seg):
        d.detect(frames[:1])

    def run(dets) -> float:
        started = time.perf_counter()
        for i in range(0, len(frames), 4):
            for d in dets:
                d.detect(frames[i : i + 4])
        return 1000 * (time.perf_counter() - started) / len(frames)

    one, two = run([both]), run([det, seg])
    return {
        "one_seg_pass_ms": round(one, 1),
        "two_models_ms": round(two, 1),
        "saving": round(1 - one / two, 3),
    }


def bench_descriptors(models, frames: list) -> dict:
    """ms per descriptor (alignment + ResNet) on the MTCNN faces of ``frames``."""
    from vidwatch.detectors.identities import DlibFaceDescriber
    from vidwatch.pipeline.identities import IdentityTracker

    faces_detector = next(d for d in models.detectors if "faces" in [i.role for i in d.infos])
    describer = models.describer or DlibFaceDescriber()
    found = [(img, [f.box_xyxy for f in dets.faces]) for img, dets in
             zip(frames, faces_detector.detect(frames), strict=True) if dets.faces]  # fmt: skip
    if not found:
        return {"faces": 0}
    describer.describe(*found[0])  # warm-up
    times = []
    for img, boxes in found:
        started = time.perf_counter()
        describer.describe(img, boxes)
        times.append((time.perf_counter() - started) / len(boxes))
    times.sort()
    # The bookkeeping of the online assignment alone (a describer that costs nothing).
    zero = [np.zeros(128, np.float32)]

    class Free:
        def describe(self, image, boxes):
            return zero * len(boxes)

    detected = faces_detector.detect(frames)
    tracker = IdentityTracker(Free(), threshold=0.6, min_px=32, reuse_iou=0)
    started = time.perf_counter()
    n = 0
    for scene, (img, dets) in enumerate(zip(frames, detected, strict=True)):
        tracker.assign(img, scene, dets.faces)
        n += len(dets.faces)
    assign_ms = 1000 * (time.perf_counter() - started) / max(n, 1)
    return {
        "faces": sum(len(b) for _, b in found),
        "ms_per_descriptor_median": round(1000 * times[len(times) // 2], 1),
        "ms_per_descriptor_min": round(1000 * times[0], 1),
        "ms_per_face_assignment_without_descriptor": round(assign_ms, 2),
        "online_against_chinese_whispers": _against_chinese_whispers(describer, frames, detected),
    }


def _against_chinese_whispers(describer, frames: list, detected: list) -> dict:
    """Online assignment (every face described) against dlib's Chinese Whispers over all the
    same descriptors at the same threshold: the frames whose ids a clustering settled at the
    end would have changed (documents to rewrite)."""
    import dlib

    from vidwatch.pipeline.identities import IdentityTracker

    kept: list[np.ndarray] = []

    class Recording:
        def describe(self, image, boxes):
            out = describer.describe(image, boxes)
            kept.extend(out)
            return out

    tracker = IdentityTracker(Recording(), threshold=0.6, min_px=32, reuse_iou=0)
    online: list[list[int | None]] = []
    order: list[tuple[int, int]] = []  # (frame, face) of each kept descriptor
    for n, (img, dets) in enumerate(zip(frames, detected, strict=True)):
        before = len(kept)
        got = tracker.assign(img, n, dets.faces)
        online.append([f.person for f in got])
        described = sorted(
            (i for i, f in enumerate(got) if f.person is not None),
            key=lambda i: (got[i].box_xyxy[0], got[i].box_xyxy[1]),
        )
        assert len(described) == len(kept) - before  # without reuse, each is described
        order += [(n, i) for i in described]
    if not kept:
        return {"faces": 0}
    labels = dlib.chinese_whispers_clustering([dlib.vector(v.tolist()) for v in kept], 0.6)
    renumber: dict[int, int] = {}
    settled = [row[:] for row in online]
    for (n, i), label in zip(order, labels, strict=True):
        settled[n][i] = renumber.setdefault(label, len(renumber))
    return {
        "faces": len(kept),
        "people_online": len(tracker.people),
        "people_chinese_whispers": len(renumber),
        "frames_that_would_be_rewritten": sum(
            1 for a, b in zip(online, settled, strict=True) if a != b
        ),
    }


def bench_identities_jobs(path: Path, env: dict, repeat: int) -> dict:
    """The 1-minute job with and without identities, alternated; medians."""
    runs: dict[str, list[dict]] = {"on": [], "off": []}
    for _ in range(repeat):
        for mode in ("off", "on"):
            flag = "true" if mode == "on" else "false"
            runs[mode].append(run_job_subprocess(path, {**env, "FACE_IDENTITIES": flag}, 1.0))
    out: dict = {}
    for mode, jobs in runs.items():
        walls = sorted(j["wall_s"] for j in jobs)
        wall = walls[len(walls) // 2]
        out[mode] = {
            "wall_s_runs": [j["wall_s"] for j in jobs],
            "wall_s_median": wall,
            "cpu_s_runs": [j.get("cpu_s") for j in jobs],
            "realtime_factor": round(jobs[0]["duration_s"] / wall, 2),
            "identities_s": [j["timings_s"].get("identities", 0.0) for j in jobs],
            "stats": jobs[-1]["stats"],
            "people": jobs[-1]["people"],
        }
    out["realtime_factor_ratio_on_over_off"] = round(
        out["on"]["realtime_factor"] / out["off"]["realtime_factor"], 3
    )
    # CPU seconds of the job process (every thread): what identities add, whatever the load.
    cpu = {m: sorted(j["cpu_s"] for j in runs[m])[len(runs[m]) // 2] for m in runs}
    out["cpu_s_ratio_on_over_off"] = round(cpu["on"] / cpu["off"], 3)
    return out


def _load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def plain_loop(path: Path, models, sample_fps: float) -> dict:
    """The peer: OpenCV reads every frame, models called one frame at a time."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    fps = cap.get(cv2.CAP_PROP_FPS) or FPS
    step = max(1, round(fps / sample_fps))
    started = time.perf_counter()
    n = sampled = 0
    while True:
        ok = cap.grab()
        if not ok:
            break
        if n % step == 0:
            _, img = cap.retrieve()
            for det in models.detectors:
                det.detect([img])
            sampled += 1
        n += 1
    cap.release()
    return {"seconds": round(time.perf_counter() - started, 3), "frames": n, "sampled": sampled}


# --- whole processes: the peer script and `vidwatch analyze`, process start to exit ---------
def _peer_main(path: Path, sample_fps: float) -> None:
    """The plain frame-by-frame peer script most hand-written pipelines are: OpenCV reads
    every frame; every 1/sample_fps s the frame goes to YOLO detect, YOLO segment (one pass
    where both settings name the same weights) and MTCNN (PyTorch, as the libraries ship),
    one frame at a time. It writes nothing."""
    import cv2
    from facenet_pytorch import MTCNN
    from ultralytics import YOLO

    seg = YOLO(os.environ["SEGMENT_MODEL"])
    # Where both settings name the same -seg weights, its one pass serves objects and masks.
    same = os.environ["DETECT_MODEL"] == os.environ["SEGMENT_MODEL"]
    det = None if same else YOLO(os.environ["DETECT_MODEL"])
    mtcnn = MTCNN(keep_all=True, device="cpu", post_process=False)
    cap = cv2.VideoCapture(str(path))
    step = max(1, round((cap.get(cv2.CAP_PROP_FPS) or FPS) / sample_fps))
    n = 0
    while cap.grab():
        if n % step == 0:
            _, img = cap.retrieve()
            if det is not None:
                det.predict(img, verbose=False)
            seg.predict(img, verbose=False)
            mtcnn.detect(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
        n += 1
    cap.release()


def time_process(cmd: list[str], env: dict) -> dict:
    """Wall time of a whole process, start to exit, and its peak RSS."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run(
        cmd, env={**os.environ, **env}, cwd=REPO, capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[:4]} failed: {proc.stderr[-2000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "load": [round(x, 2) for x in os.getloadavg()],
    }


# --- whole jobs (one subprocess each, for an honest peak RSS) -------------------------------
def run_job_subprocess(path: Path, env: dict, sample_fps: float) -> dict:
    cmd = [sys.executable, "-m", "bench.perf", "_job", str(path), "--sample-fps", str(sample_fps)]
    env = {**env, "VIDWATCH_BENCH_T0": repr(time.time())}
    proc = subprocess.run(
        cmd, env={**os.environ, **env}, cwd=REPO, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"job failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _peak_rss_kb() -> int:
    """This process's peak RSS (kB). ``/proc/self/status`` VmHWM is the high-water mark of the
    process's own memory; ``ru_maxrss`` is not: Linux carries it over from the parent at
    fork and keeps it across exec, so a job started by a bench holding models reported the
    bench's peak."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _job_main(path: Path, sample_fps: float) -> None:
    t_imports = time.time()
    from vidwatch.config import load_settings
    from vidwatch.detectors.registry import load_models
    from vidwatch.jobs.run import run_job
    from vidwatch.jobs.staging import JobSpec, new_job_id, stage_copy
    from vidwatch.pipeline.analysis import AnalysisOptions
    from vidwatch.pipeline.toon import open_toon
    from vidwatch.r2 import keys, open_store

    t_models = time.time()
    settings = load_settings(sample_fps=sample_fps)
    store = open_store(settings)
    models = load_models(settings)
    t_toon = time.time()
    toon = open_toon(settings)
    t_ready = time.time()
    t0 = float(os.environ.get("VIDWATCH_BENCH_T0", t_imports))
    startup = {
        "python_start_s": round(t_imports - t0, 3),
        "imports_s": round(t_models - t_imports, 3),
        "models_s": round(t_toon - t_models, 3),
        "toon_s": round(t_ready - t_toon, 3),
        "total_s": round(t_ready - t0, 3),
    }
    rss_before = _peak_rss_kb()
    job_id = new_job_id()
    staged = stage_copy(settings, job_id, path)
    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    manifest = run_job(
        JobSpec(job_id, staged, "cli", path.name),
        store=store,
        settings=settings,
        models=models,
        toon=toon,
        options=AnalysisOptions.from_settings(settings),
    )
    wall = time.perf_counter() - started
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    if toon is not None:
        toon.close()
    results = json.loads(store.get_bytes(keys.results_key(job_id)))
    print(
        json.dumps(
            {
                "state": manifest.state,
                "backend": models.backend,
                "startup_s": startup,
                "wall_s": round(wall, 3),
                "cpu_s": round(cpu, 3),
                "frames": results["video"]["frames"],
                "sampled": len(results["frames"]),
                "faces": sum(len(f["faces"]) for f in results["frames"]),
                "objects": sum(len(f["objects"]) for f in results["frames"]),
                "cuts": [s["start_frame"] for s in results["scenes"][1:]],
                "duration_s": results["video"]["duration_s"],
                "timings_s": results["timings_s"],
                "decodes_per_frame": results.get("stats", {}).get("decodes_per_frame"),
                "stats": results.get("stats", {}),
                "people": len(results.get("people", [])),
                "artifacts": sum(1 for _ in store.list(keys.job_prefix(job_id))),
                "rss_models_mb": round(rss_before / 1024, 1),
                "peak_rss_mb": round(_peak_rss_kb() / 1024, 1),
            }
        )
    )


def ensure_weights(out_dir: Path) -> dict[str, str]:
    """Weights for ``yolo11n.pt`` and ``yolo11n-seg.pt``: the host's (BENCH_DETECT_WEIGHTS,
    BENCH_SEGMENT_WEIGHTS) or random ones built from Ultralytics' yaml."""
    env = {}
    for setting, yaml in (
        ("BENCH_DETECT_WEIGHTS", "yolo11n.yaml"),
        ("BENCH_SEGMENT_WEIGHTS", "yolo11n-seg.yaml"),
    ):
        value = os.environ.get(setting, "")
        if value and Path(value).is_file():
            env[setting] = value
            continue
        path = out_dir / yaml.replace(".yaml", "-random.pt")
        if not path.is_file():
            from ultralytics import YOLO

            YOLO(yaml).save(str(path))
        env[setting] = str(path)
    return env


# The configurations compared, as settings. "before" is the previous release as it ran here
# (PyTorch, one model lane, DETECT_MODEL yolo11n.pt beside SEGMENT_MODEL yolo11n-seg.pt);
# "two_models" is today's runtime with those two models (a host that sets DETECT_MODEL to
# yolo11n.pt keeps them); "after" is today's defaults (one -seg pass serves objects and masks,
# OpenVINO, one single-threaded model lane per core).
def configurations(weights: dict[str, str]) -> dict[str, dict[str, str]]:
    det, seg = weights["BENCH_DETECT_WEIGHTS"], weights["BENCH_SEGMENT_WEIGHTS"]
    return {
        "before": {
            "MODEL_BACKEND": "torch",
            "MODEL_WORKERS": "1",
            "DETECT_MODEL": det,
            "SEGMENT_MODEL": seg,
        },
        "two_models": {
            "MODEL_BACKEND": "auto",
            "MODEL_WORKERS": "0",
            "DETECT_MODEL": det,
            "SEGMENT_MODEL": seg,
        },
        "after": {
            "MODEL_BACKEND": "auto",
            "MODEL_WORKERS": "0",
            "DETECT_MODEL": seg,
            "SEGMENT_MODEL": seg,
        },
    }


def _settings_of(config: dict[str, str]):
    from vidwatch.config import load_settings

    return load_settings(**{k.lower(): v for k, v in config.items()})


def bench_face_recall(media: Path, models_by_config: dict) -> dict:
    """Recall at p >= 0.9 on faces of 20 to 400 px in 720p frames, for each configuration's MTCNN
    (bench/face_set.py), and the same frames' MTCNN time."""
    from bench import face_set
    from vidwatch.detectors.faces import MtcnnFaceDetector

    faces = {
        b: next(d for d in m.detectors if isinstance(d, MtcnnFaceDetector))
        for b, m in models_by_config.items()
    }
    first = next(iter(faces.values()))

    def found(det, img):
        keep = det._min_confidence
        det._min_confidence = 0.0
        try:
            (dets,) = det.detect([img])
        finally:
            det._min_confidence = keep
        return [(f.box_xyxy, f.confidence) for f in dets.faces]

    crops = face_set.face_crops(media, lambda img: [b for b, p in found(first, img) if p >= 0.9])
    cases = face_set.build(media, crops)
    out = {}
    for b, det in faces.items():
        started = time.perf_counter()
        got = [found(det, img) for img, _ in cases]
        ms = 1000 * (time.perf_counter() - started) / len(cases)
        out[b] = {**face_set.score(got, [t for _, t in cases]), "ms_per_frame": round(ms, 1)}
    return out


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv and argv[0] in ("_job", "_peer"):
        p = argparse.ArgumentParser()
        p.add_argument("video", type=Path)
        p.add_argument("--sample-fps", type=float, default=1.0)
        a = p.parse_args(argv[1:])
        (_job_main if argv[0] == "_job" else _peer_main)(a.video, a.sample_fps)
        return 0
    parser = argparse.ArgumentParser(prog="bench.perf", description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[1.0, 5.0])
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out")
    parser.add_argument("--skip-moto", action="store_true")
    parser.add_argument(
        "--identities",
        action="store_true",
        help="only the face-identities figures (descriptor cost, 1-minute job on and off)",
    )
    parser.add_argument("--repeat", type=int, default=2, help="runs of each identities job")
    parser.add_argument(
        "--configs",
        nargs="+",
        default=["before", "two_models", "after"],
        choices=["before", "two_models", "after"],
        help="configurations to compare (see configurations()): the first is 'before', "
        "the last 'after'",
    )
    parser.add_argument(
        "--report",
        action="store_true",
        help="recompute the ratios and the table from OUT/perf.json",
    )
    args = parser.parse_args(argv)
    if args.report:
        report = json.loads((args.out / "perf.json").read_text())
        derive(report)
        (args.out / "perf.json").write_text(json.dumps(report, indent=2))
        print(markdown(report))
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_CONFIG_DIR", str(args.out / "ultralytics"))
    env = {
        **ensure_weights(args.out),
        "ALLOW_MODEL_DOWNLOAD": "false",
        "TOON_ENABLED": os.environ.get("TOON_ENABLED", "true"),
        "LOCAL_STORE_DIR": str(args.out / "store"),
        "TEMP_MEDIA_DIR": str(args.out / "tmp_media"),
        "MODEL_CACHE_DIR": str(args.out / "model_cache"),
    }
    os.environ.update(env)

    from vidwatch.config import load_settings
    from vidwatch.detectors.registry import load_models

    configs = configurations(env)
    report: dict = {
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "load_at_start": [round(x, 2) for x in os.getloadavg()],
        },
        "configs_compared": args.configs,
        "configurations": {name: configs[name] for name in args.configs},
    }
    import torch

    report["machine"]["torch"] = torch.__version__
    report["machine"]["cuda"] = torch.cuda.is_available()
    after_env = {**env, **configs[args.configs[-1]]}
    if args.identities:
        path, _ = build_input(1.0, args.out)
        models = load_models(_settings_of(configs[args.configs[-1]]))
        ident = {"load_before": _load()}
        ident["descriptor"] = bench_descriptors(models, _sample_frames(path, 60))
        del models
        ident["jobs_1min"] = bench_identities_jobs(path, after_env, args.repeat)
        ident["load_after"] = _load()
        report["identities"] = ident
        (args.out / "identities.json").write_text(json.dumps(report, indent=2))
        print(json.dumps(report, indent=2))
        return 0
    inputs = {m: build_input(m, args.out) for m in args.minutes}
    first, first_cuts = inputs[args.minutes[0]]
    report["decode"] = bench_decode(first)
    report["scenes"] = bench_scenes(first, FPS)
    report["scenes"]["cuts_match_truth"] = report["scenes"]["cuts"] == len(first_cuts)

    frames = _sample_frames(first, 16)
    models_by_config = {}
    report["configs"] = {}
    for name in args.configs:
        models = load_models(_settings_of(configs[name]))
        models_by_config[name] = models
        entry = {
            "resolved": models.backend,
            "lanes": len(models.lanes),
            "threads_per_lane": models.threads_per_lane,
            "load": _load(),
        }
        entry["models_ms_per_frame"] = bench_models(models, frames)
        entry["lanes_ms_per_frame"] = bench_lanes(models, frames)
        entry["one_seg_pass"] = bench_one_pass(
            Path(env["BENCH_SEGMENT_WEIGHTS"]), Path(env["BENCH_DETECT_WEIGHTS"]), frames, models
        )
        if name == args.configs[-1]:
            entry["plain_loop_peer"] = plain_loop(first, models, 1.0)
        report["configs"][name] = entry
        _save_partial(args.out, report)
    report["face_recall"] = bench_face_recall(MEDIA, models_by_config)
    _save_partial(args.out, report)
    models = models_by_config[args.configs[-1]]
    del models_by_config
    report["identities"] = {"load_before": _load()}
    report["identities"]["descriptor"] = bench_descriptors(models, frames)
    del models

    after = args.configs[-1]
    jobs = {}
    for name in args.configs:
        cenv = {**env, **configs[name]}
        for minutes, (path, _) in inputs.items():
            if minutes != args.minutes[0] and name != after:
                continue
            for sfps in (1.0, 5.0) if minutes == args.minutes[0] else (1.0,):
                key = f"{name}_{minutes:g}min_local_fps{sfps:g}"
                jobs[key] = run_job_subprocess(path, cenv, sfps)
                jobs[key]["config"] = name
                jobs[key]["load"] = _load()
                report["jobs"] = jobs
                _save_partial(args.out, report)
    if not args.skip_moto:
        key = f"{after}_{args.minutes[0]:g}min_moto_fps1"
        jobs[key] = _moto_job(first, after_env)
        jobs[key]["config"] = after
    report["jobs"] = jobs
    report["identities"]["jobs_1min"] = bench_identities_jobs(first, after_env, args.repeat)
    report["identities"]["load_after"] = _load()

    # Whole processes, start to exit: `vidwatch analyze` in each configuration, and the peer
    # script running the same models as that configuration (one -seg pass where DETECT_MODEL
    # and SEGMENT_MODEL name the same weights).
    vidwatch = str(Path(sys.executable).parent / "vidwatch")
    processes: dict = {}
    for name in args.configs:
        cenv = {**env, **configs[name]}
        if name != args.configs[0]:
            processes[f"peer_script_{name}_fps1"] = time_process(
                [sys.executable, "-m", "bench.perf", "_peer", str(first)], cenv
            )
        processes[f"vidwatch_analyze_{name}_fps1"] = time_process(
            [vidwatch, "analyze", str(first), "-q"], cenv
        )
        report["processes"] = processes
        _save_partial(args.out, report)
    report["machine"]["load_at_end"] = _load()

    report["model_batch_size"] = load_settings().model_batch_size
    derive(report)
    (args.out / "perf.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    print(markdown(report))
    return 0


def _save_partial(out: Path, report: dict) -> None:
    """What is measured so far (a long run on a shared machine may be cut short)."""
    (out / "perf.partial.json").write_text(json.dumps(report, indent=2))


def _per_frame_ms(report: dict, config: str) -> float:
    """Model time per sampled frame, alone: with several lanes their throughput (every lane
    busy), else the sum of the models one after the other."""
    entry = report["configs"][config]
    if entry.get("lanes", 1) > 1 and "lanes_ms_per_frame" in entry:
        return float(entry["lanes_ms_per_frame"])
    batch = str(min(report["model_batch_size"], 4))
    per = entry["models_ms_per_frame"]
    return sum(v[batch] for k, v in per.items() if k != "stages_ms")


def derive(report: dict) -> None:
    """The ratios, from the measurements: floor, wall/floor, realtime factor, RSS growth,
    model throughput alone against inside the pipeline, artifacts and drain."""
    for name, entry in report["configs"].items():
        entry["models_ms_per_sampled_frame_alone"] = round(_per_frame_ms(report, name), 1)
    for job in report["jobs"].values():
        config = job["config"]
        lanes = report["configs"][config].get("lanes", 1)
        per_frame_ms = _per_frame_ms(report, config)
        decode_s = job["frames"] / report["decode"]["fps"]
        scene_s = report["scenes"]["tracker_only_s"] * job["frames"] / report["decode"]["frames"]
        floor = decode_s + scene_s + job["sampled"] * per_frame_ms / 1000
        job["floor_s"] = round(floor, 3)
        job["wall_over_floor"] = round(job["wall_s"] / floor, 3)
        job["realtime_factor"] = round(job["duration_s"] / job["wall_s"], 2)
        # timings_s.models sums the lanes' busy time: per lane, per sampled frame.
        in_pipeline_ms = 1000 * job["timings_s"]["models"] / job["sampled"] / lanes
        job["models_ms_per_sampled_frame_in_pipeline"] = round(in_pipeline_ms, 1)
        job["models_alone_over_in_pipeline_throughput"] = round(in_pipeline_ms / per_frame_ms, 3)
        job["artifacts_per_s"] = round(job["artifacts"] / job["wall_s"], 1)
        job["drain_after_last_frame_s"] = job["timings_s"]["drain"]
    after = report["configs_compared"][-1]
    rss = [
        j["peak_rss_mb"]
        for k, j in report["jobs"].items()
        if k.startswith(f"{after}_") and k.endswith("local_fps1")
    ]
    if len(rss) == 2:
        report["peak_rss_ratio_long_over_short"] = round(rss[1] / rss[0], 3)
    procs = report.get("processes", {})
    for name, p in procs.items():
        if name.startswith("vidwatch_analyze_"):
            config = name.removeprefix("vidwatch_analyze_").removesuffix("_fps1")
            peer = procs.get(f"peer_script_{config}_fps1", {}).get("wall_s")
            if peer:
                p["over_peer"] = round(p["wall_s"] / peer, 3)


def _moto_job(path: Path, env: dict) -> dict:
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
        ).create_bucket(Bucket="vidwatch-bench")
        s3_env = {
            **env,
            "R2_ENDPOINT_URL": endpoint,
            "R2_BUCKET": "vidwatch-bench",
            "R2_ACCESS_KEY_ID": "bench",
            "R2_SECRET_ACCESS_KEY": "bench",
            "R2_REGION": "us-east-1",
        }
        return run_job_subprocess(path, s3_env, 1.0)
    finally:
        server.stop()


def markdown(r: dict) -> str:  # noqa: C901 - a flat report layout, one optional row per branch
    """The report as a markdown table: one column per configuration."""
    names = r["configs_compared"]
    cf = r["configs"]
    head = " | ".join(f"{n}: {cf[n]['resolved']}, {cf[n].get('lanes', 1)} lane(s)" for n in names)
    lines = [
        f"Load average (1, 5, 15 min) at start {r['machine']['load_at_start']}, "
        f"at end {r['machine'].get('load_at_end')}.",
        "",
        f"| measure | {head} |",
        "|---|" + "---|" * len(names),
    ]

    def row(label: str, cells: list) -> None:
        lines.append(f"| {label} | " + " | ".join(str(c) for c in cells) + " |")

    same = ["same"] * (len(names) - 1)
    row("decode (720p H.264)", [f"{r['decode']['fps']} frames/s", *same])
    sc = r["scenes"]
    row(
        "decode + scenes, ours / `scenedetect` CLI",
        [
            f"{sc['ours_decode_plus_scenes_s']} s / {sc['cli_s']} s "
            f"(cuts agree: {sc['cuts_agree']}; match truth: {sc.get('cuts_match_truth')})",
            *same,
        ],
    )
    models = sorted({m for n in names for m in cf[n]["models_ms_per_frame"] if m != "stages_ms"})
    for m in models:
        cells = []
        for n in names:
            v = cf[n]["models_ms_per_frame"].get(m)
            cells.append(f"{v['1']} / {v['4']}" if v else "-")
        row(f"{m}, ms/frame at batch 1 / 4 (one lane)", cells)
    row(
        "models per sampled frame, every lane busy",
        [f"{cf[n]['models_ms_per_sampled_frame_alone']} ms" for n in names],
    )
    stages = sorted({m for n in names for m in cf[n]["models_ms_per_frame"]["stages_ms"]})
    for m in stages:
        cells = []
        for n in names:
            d = cf[n]["models_ms_per_frame"]["stages_ms"].get(m, {})
            cells.append(", ".join(f"{k} {v}" for k, v in d.items()) or "-")
        row(f"{m}: ms per frame by stage", cells)
    row(
        "objects + masks: one -seg pass / two models",
        [
            f"{cf[n]['one_seg_pass']['one_seg_pass_ms']} / "
            f"{cf[n]['one_seg_pass']['two_models_ms']} ms/frame"
            for n in names
        ],
    )
    fr = r.get("face_recall", {})
    if fr:
        row(
            f"face recall at p >= 0.9, {next(iter(fr.values())).get('faces')} faces of "
            "20-400 px in 720p (false positives)",
            [
                f"{fr[n].get('recall')} ({fr[n].get('false_positives')}), "
                f"{fr[n].get('ms_per_frame')} ms/frame"
                if n in fr
                else "-"
                for n in names
            ],
        )
    jobs = r["jobs"]
    for key in sorted({k[len(n) + 1 :] for k in jobs for n in names if k.startswith(n + "_")}):
        some = next(j for n in names if (j := jobs.get(f"{n}_{key}")))

        def cell(j):
            if j is None:
                return "-"
            return (
                f"{j['wall_s']} s ({j.get('cpu_s')} s CPU), realtime x{j['realtime_factor']}; "
                f"x{j['wall_over_floor']} of floor; models "
                f"{j['models_ms_per_sampled_frame_in_pipeline']} ms/frame per lane; "
                f"peak RSS {j['peak_rss_mb']} MB; start-up {j['startup_s']['total_s']} s; "
                f"decodes/frame {j['decodes_per_frame']}; faces {j['faces']}; "
                f"load {j.get('load', ['?'])[0]}"
            )

        row(
            f"job {key} ({some['frames']} frames, {some['sampled']} sampled)",
            [cell(jobs.get(f"{n}_{key}")) for n in names],
        )
    for n in names:
        key = f"{n}_1min_local_fps1"
        if key in jobs:
            su = jobs[key]["startup_s"]
            row(
                f"start-up to the first frame ({n}), s",
                [", ".join(f"{k} {v}" for k, v in su.items()) if m == n else "" for m in names],
            )
    ident = r.get("identities", {})
    if "descriptor" in ident and ident["descriptor"].get("faces"):
        d = ident["descriptor"]
        lines.append(
            f"| face descriptor (dlib alignment + ResNet), ms/face, median / min | "
            f"{d['ms_per_descriptor_median']} / {d['ms_per_descriptor_min']} "
            f"({d['faces']} faces) |"
        )
        cw = d.get("online_against_chinese_whispers", {})
        if cw.get("faces"):
            lines.append(
                f"| online people / Chinese Whispers people; frames a settled-at-end "
                f"clustering would rewrite | {cw['people_online']} / "
                f"{cw['people_chinese_whispers']}; {cw['frames_that_would_be_rewritten']} |"
            )
    if "jobs_1min" in ident:
        j = ident["jobs_1min"]
        lines.append(
            f"| 1-min job ({names[-1]}), realtime factor without / with identities | "
            f"x{j['off']['realtime_factor']} / x{j['on']['realtime_factor']} "
            f"(ratio {j['realtime_factor_ratio_on_over_off']}; CPU time ratio "
            f"{j['cpu_s_ratio_on_over_off']}; "
            f"{j['on']['stats'].get('face_descriptors')} descriptors, "
            f"{j['on']['stats'].get('faces_reused')} faces reused, "
            f"{j['on']['people']} people) |"
        )
    if "peak_rss_ratio_long_over_short" in r:
        lines.append(
            f"| peak RSS 5 min / 1 min ({names[-1]}) | {r['peak_rss_ratio_long_over_short']} |"
        )
    p = r.get("processes", {})
    if p:
        cells = []
        for n in names:
            a = p.get(f"vidwatch_analyze_{n}_fps1")
            peer = p.get(f"peer_script_{n}_fps1")
            if a is None:
                cells.append("-")
                continue
            text = f"{a['wall_s']} s ({a['cpu_s']} s CPU)"
            if peer:
                text += f" / peer {peer['wall_s']} s ({peer['cpu_s']} s CPU): x{a.get('over_peer')}"
            cells.append(text)
        row("`vidwatch analyze` 1 min at 1 fps, process start to exit / peer script", cells)
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
