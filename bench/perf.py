"""The performance benchmark: this checkout against an earlier commit, in one run.

    uv run python -m bench.perf [--minutes 1 5] [--before REF] [--out bench/out]
    uv run python -m bench.perf --report        # the table again, from OUT/perf.json
    uv run python -m bench.perf --writecost     # only the rest of a sampled frame, both sides

Inputs are built at run time from the shared test media (looped and concatenated into
720p H.264 videos of 1 and 5 minutes, cached in bench/out, never committed). The models are
the real classes; without real weights on the host YOLO is built from Ultralytics' yaml
(random weights: the same network and pre-processing, fewer detections to post-process).

Two sides are measured on the same files, the same interpreter and the same packages, one
after the other: "before", the code of ``--before`` (a git worktree made in OUT, default
the commit this work started from), and "after", this checkout. Each side runs on its
defaults (MODEL_BACKEND auto, one lane per core, one -seg pass for objects and masks). Each
process of a side imports that side's ``vidwatch`` (PYTHONPATH); the measuring code is
this file's for both.

For each side:
  - start-up to the first frame of a second start (a short clip is analysed first, so the
    models' conversions, exports, compiled blobs and Python's bytecode are cached, as on a
    host that has started before);
  - model time per sampled frame, one lane alone, with its stages, and with every lane
    busy; face recall on the 20-400 px face set (bench/face_set.py);
  - whole jobs on the local store (1 minute at SAMPLE_FPS 1 and 5, 5 minutes at 1), each in
    a process of its own, the sides taking turns, ``--repeat`` times (the median run
    counts): wall and CPU time, realtime factor, peak RSS, faces per sampled
    frame, people, cuts, the pipeline's stage timings;
  - the rest of a sampled frame, part by part (``_writecost``; alone: ``--writecost``):
    the job's sampled frames of the first video with the side's models' detections, then
    identities (descriptors and reuse), the frame document, its JSON and TOON (the Node
    helper's CPU counted), the four JPEGs and the drawing of each, the local store's write
    and the writer as a job runs it, each timed on its own in ms of CPU (and wall) per
    sampled frame; once with the bench's weights and once with a -seg model calibrated to
    find objects and masks (random weights find none, so nothing is drawn on det and seg);
  - `vidwatch analyze` on the 1-minute video, process start to exit, against the plain
    peer script (``_peer``: OpenCV reads every frame; each sampled frame goes to YOLO and
    facenet-pytorch's MTCNN on PyTorch as the libraries ship; it writes nothing).
Then: the scenedetect CLI's cut list against every job's; faces per sampled frame and
people per job, after against before (every difference listed).
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

REPO = Path(__file__).resolve().parent.parent
MEDIA = Path(os.environ.get("VIDWATCH_TEST_MEDIA", REPO.parent / "shared" / "media"))
SOURCES = ("cuts_h264.mp4", "cuts_vp9.webm", "single_shot.mp4")
WIDTH, HEIGHT, FPS = 1280, 720, 25
BEFORE_REF = "d89fff6"
"""The commit issue 26 started from: the defaults 'before' measures."""
WARM_MINUTES = 0.1
SIDES = ("before", "after")


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
        cuts += tracker.push(frame.index, frame)  # as the pipeline: no full-size BGR
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
        "cli_cut_list": cli_cuts,
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


def time_process(cmd: list[str], env: dict, cwd: Path = REPO) -> dict:
    """Wall time of a whole process, start to exit, and its peak RSS."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run(
        cmd, env={**os.environ, **env}, cwd=cwd, capture_output=True, text=True, check=False
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


# --- the two sides ------------------------------------------------------------------------------
def side_root(side: str, ref: str, out: Path) -> Path:
    """The code a side runs: this checkout for "after"; for "before", a worktree of ``ref``
    in OUT (made once, detached, left for the next run)."""
    if side == "after":
        return REPO
    sha = subprocess.run(
        ["git", "rev-parse", "--short=12", ref],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    root = out / f"before-{sha}"
    if not (root / "vidwatch").is_dir():
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(root), sha],
            cwd=REPO,
            check=True,
            capture_output=True,
        )
    return root


def side_env(base: dict[str, str], root: Path) -> dict[str, str]:
    # Python writes the bytecode of what a start imports (the warm-up does), as a checkout
    # does where PYTHONDONTWRITEBYTECODE is not set and the systemd install does once.
    return {**base, "PYTHONPATH": str(root), "PYTHONDONTWRITEBYTECODE": ""}


def _this_file() -> list[str]:
    """This file run as a script: its ``vidwatch`` is the side's (PYTHONPATH), not the
    checkout's that the environment installs."""
    return [sys.executable, str(Path(__file__).resolve())]


def run_mode(mode: str, args: list[str], env: dict[str, str]) -> dict:
    """``python bench/perf.py <mode> ...`` in a process of its own; its last line is JSON."""
    cmd = [*_this_file(), mode, *args]
    env = {**env, "VIDWATCH_BENCH_T0": repr(time.time())}
    proc = subprocess.run(
        cmd, env={**os.environ, **env}, cwd=REPO, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{mode} failed: {proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_job_subprocess(path: Path, env: dict, sample_fps: float) -> dict:
    return run_mode("_job", [str(path), "--sample-fps", str(sample_fps)], env)


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
    frames = results["frames"]
    print(
        json.dumps(
            {
                "state": manifest.state,
                "job_id": job_id,
                "backend": models.backend,
                "startup_s": startup,
                "wall_s": round(wall, 3),
                "cpu_s": round(cpu, 3),
                "frames": results["video"]["frames"],
                "sampled": len(frames),
                "faces": sum(len(f["faces"]) for f in frames),
                "faces_per_frame": {str(f["frame"]): len(f["faces"]) for f in frames},
                "objects": sum(len(f["objects"]) for f in frames),
                "cuts": [s["start_frame"] for s in results["scenes"][1:]],
                "duration_s": results["video"]["duration_s"],
                "timings_s": results["timings_s"],
                "decodes_per_frame": results.get("stats", {}).get("decodes_per_frame"),
                "stats": results.get("stats", {}),
                "people": len(results.get("people", [])),
                "rss_models_mb": round(rss_before / 1024, 1),
                "peak_rss_mb": round(_peak_rss_kb() / 1024, 1),
            }
        )
    )
    sys.stdout.flush()
    os._exit(0)  # the interpreter's teardown of the model runtimes is not the job's


def _yolo_stage_times(det, frames: list) -> dict[str, float] | None:
    """YOLO's stages in ms per frame: the OpenVINO runner's own clock where the side has
    one (``_native``), else Ultralytics' timers."""
    native = getattr(det, "_native", None)
    if native is not None:
        native.stage_times = {}
        for f in frames:
            det.detect([f])
        times, native.stage_times = native.stage_times, None
        return {k: 1000 * v / len(frames) for k, v in times.items()}
    if hasattr(det, "_predict"):
        speed: dict[str, float] = {}
        for f in frames:
            for r in det._predict([f]):
                for k, v in r.speed.items():
                    speed[k] = speed.get(k, 0.0) + v
        return {k: v / len(frames) for k, v in speed.items()}
    return None


def _models_main(path: Path) -> None:
    """One side's models alone: ms per sampled frame on one lane (batch 1) by detector and
    by stage, every lane busy, and face recall on the face set."""
    from vidwatch.config import load_settings
    from vidwatch.detectors.registry import load_models

    models = load_models(load_settings())
    frames = _sample_frames(path, 24)
    out: dict = {"lanes": len(models.lanes), "ms_per_frame": {}, "stages_ms": {}}
    for det in models.lanes[0]:
        name = "+".join(i.role for i in det.infos)
        for f in frames[:2]:
            det.detect([f])  # warm-up
        started = time.perf_counter()
        for f in frames:
            det.detect([f])
        out["ms_per_frame"][name] = round(1000 * (time.perf_counter() - started) / len(frames), 1)
        stages = None
        if hasattr(det, "stage_times"):  # MTCNN on OpenVINO
            det.stage_times = {}
            for f in frames:
                det.detect([f])
            stages = {k: 1000 * v / len(frames) for k, v in det.stage_times.items()}
            det.stage_times = None
        elif type(det).__name__ == "YoloDetector":
            stages = _yolo_stage_times(det, frames)
        if stages:
            out["stages_ms"][name] = {k: round(v, 1) for k, v in stages.items()}
    out["every_lane_busy_ms_per_frame"] = bench_lanes(models, frames)
    face = next((d for d in models.lanes[0] if "faces" in [i.role for i in d.infos]), None)
    if face is not None:
        out["face_recall"] = face_recall(face)
    print(json.dumps(out))
    sys.stdout.flush()
    os._exit(0)


# --- the rest of a sampled frame: images, documents, identities, the store -------------------
WRITE_PARTS = (
    ("identities", "identities (descriptors and reuse, model-stage thread)"),
    ("documents", "frame entry and document (model-stage thread)"),
    ("json", "JSON text"),
    ("toon", "TOON text (the Node bridge)"),
    ("encode_original", "JPEG original"),
    ("draw_det", "draw det"),
    ("encode_det", "JPEG det"),
    ("draw_seg", "draw seg"),
    ("encode_seg", "JPEG seg"),
    ("draw_face", "draw face"),
    ("encode_face", "JPEG face"),
    ("store", "store write (local store, 6 files)"),
    ("writer", "the whole writer as a job runs it (draw, encode, JSON, TOON, store)"),
)


def _node_cpu_s(pid: int | None) -> float:
    """CPU seconds (user + system) of a process, from /proc (the TOON helper's)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _writecost_main(path: Path, sample_fps: float, repeat: int) -> None:  # noqa: C901
    """The work a sampled frame costs besides the models, part by part, on this side's code.

    The sampled frames are the job's (this side's sampler over the whole video); their
    detections come from running the side's models once (every lane busy). Each part then
    runs on its own over every sampled frame, ``repeat`` times (the median counts), with
    nothing else running: ms of CPU (the whole process: OpenCV's and the store's threads
    count; for TOON the Node helper's CPU is added) and of wall, per sampled frame. A part
    that a frame does not need (nothing to draw: the original's JPEG serves again) costs
    that frame nothing; ``frames`` says on how many frames it ran."""
    import dataclasses
    import statistics
    from concurrent.futures import ThreadPoolExecutor

    from vidwatch.config import load_settings
    from vidwatch.detectors.registry import load_models
    from vidwatch.jobs.staging import new_job_id
    from vidwatch.pipeline import analysis, draw
    from vidwatch.pipeline.documents import FrameDocument
    from vidwatch.pipeline.toon import open_toon
    from vidwatch.pipeline.video import decode, probe
    from vidwatch.r2 import keys, open_store
    from vidwatch.r2.store import PutItem

    settings = load_settings(sample_fps=sample_fps)
    models = load_models(settings)
    toon = open_toon(settings)
    store = open_store(settings)
    options = analysis.AnalysisOptions.from_settings(settings)
    quality = options.jpeg_quality
    info = probe(path, max_pixels=options.max_pixels, max_duration_s=options.max_duration_s)
    sampler = analysis._Sampler(models.scene_tracker(info.fps), 1.0 / sample_fps)
    sampled = []
    for frame in decode(path):
        sampled.extend(sampler.push(frame))
    sampled.extend(sampler.finish())
    n = len(sampled)
    # Each lane's first inference in this thread: OpenVINO's Python binding deadlocked here
    # when two lanes made their first inference at the same instant (one thread held the
    # GIL waiting for a C++ static another thread was initialising, which waited for the GIL).
    # The code since 695b6d9 prevents it (backends.binding_ready); older sides do not.
    _ = [models.detect([sampled[0][0].image])[0] for _ in models.lanes]
    with ThreadPoolExecutor(len(models.lanes)) as pool:
        found = list(pool.map(lambda item: models.detect([item[0].image])[0], sampled))
    time.sleep(1.0)  # the runtimes' threads settle before anything is clocked

    def clock(fn, items) -> dict:
        """ms per sampled frame (CPU of the process, wall) of ``fn`` over ``items``."""
        cpus, walls = [], []
        for _ in range(repeat):
            cpu0, wall0 = time.process_time(), time.perf_counter()
            for item in items:
                fn(item)
            cpus.append(time.process_time() - cpu0)
            walls.append(time.perf_counter() - wall0)
        return {
            "cpu_ms": round(1000 * statistics.median(cpus) / n, 2),
            "wall_ms": round(1000 * statistics.median(walls) / n, 2),
            "frames": len(items),
        }

    out: dict = {"sampled": n, "repeat": repeat, "jpeg_quality": quality, "parts": {}}
    parts = out["parts"]

    # Identities, in frame order as the job assigns them (a fresh tracker each run).
    tracker = analysis._identity_tracker(models, options)
    if tracker is not None:
        people_runs = []
        for reuse in (options.face_identity_reuse_iou, 0.0):
            # A fresh tracker for each run, made before the clock starts.
            trackers = [
                analysis._identity_tracker(
                    models, dataclasses.replace(options, face_identity_reuse_iou=reuse)
                )
                for _ in range(repeat)
            ]
            assigned: list = []

            def assign_all(_, trackers=trackers, assigned=assigned) -> None:
                t = trackers[len(assigned)]
                assigned.append(
                    [
                        d.replace(faces=t.assign(f.image, scene, d.faces))
                        if hasattr(d, "replace")
                        else type(d)(d.objects, d.segments, t.assign(f.image, scene, d.faces))
                        for (f, scene), d in zip(sampled, found, strict=True)
                    ]
                )

            run = clock(assign_all, [None])
            t = trackers[-1]
            run.update(
                frames=sum(1 for d in found if d.faces),
                descriptors=t.descriptors,
                reused=t.reused,
                people=len(t.people),
            )
            people_runs.append({"reuse_iou": reuse, **run})
            if reuse == options.face_identity_reuse_iou:
                found_people = assigned[-1]
        parts["identities"] = people_runs[0]
        out["identities_without_reuse"] = people_runs[1]
        found = found_people

    job_id = new_job_id()
    toon_on = toon is not None
    work = list(zip(sampled, found, strict=True))
    entries = [analysis.frame_entry(job_id, f, scene, d, toon=toon_on) for (f, scene), d in work]
    docs = [FrameDocument.of(job_id, e).to_json() for e in entries]
    parts["documents"] = clock(
        lambda w: FrameDocument.of(
            job_id, analysis.frame_entry(job_id, w[0][0], w[0][1], w[1], toon=toon_on)
        ).to_json(),
        work,
    )
    texts = [json.dumps(doc, ensure_ascii=False).encode() for doc in docs]
    parts["json"] = clock(lambda doc: json.dumps(doc, ensure_ascii=False).encode(), docs)
    if toon is not None:
        pid = toon.pid
        node0 = _node_cpu_s(pid)
        parts["toon"] = clock(lambda doc: toon.encode(doc).encode(), docs)
        node_ms = 1000 * (_node_cpu_s(pid) - node0) / repeat / n
        parts["toon"]["node_cpu_ms"] = round(node_ms, 2)
        parts["toon"]["cpu_ms_with_node"] = round(parts["toon"]["cpu_ms"] + node_ms, 2)
    images = [f.image for (f, _), _ in work]
    parts["encode_original"] = clock(lambda img: draw.encode_jpeg(img, quality), images)
    for kind, fn, name in (
        ("det", draw.draw_det, "objects"),
        ("seg", draw.draw_seg, "segments"),
        ("face", draw.draw_faces, "faces"),
    ):
        todo = [(f.image, d) for (f, _), d in work if getattr(d, name)]
        parts[f"draw_{kind}"] = clock(lambda x, fn=fn: fn(*x), todo)
        drawn = [fn(*x) for x in todo]
        parts[f"encode_{kind}"] = clock(lambda img: draw.encode_jpeg(img, quality), drawn)

    # The store: the six files of each frame, as the writer puts them (bytes made once).
    def items(i: int) -> list:
        (f, _), d = work[i]
        original = draw.encode_jpeg(f.image, quality)
        drawn = {
            "original": None,
            "det": draw.draw_det(f.image, d) if d.objects else None,
            "seg": draw.draw_seg(f.image, d) if d.segments else None,
            "face": draw.draw_faces(f.image, d) if d.faces else None,
        }
        out_items = [
            PutItem(
                keys.frame_image_key(job_id, kind, f.index),
                original if img is None else draw.encode_jpeg(img, quality),
                "image/jpeg",
            )
            for kind, img in drawn.items()
        ]
        out_items.append(
            PutItem(keys.frame_json_key(job_id, f.index), texts[i], "application/json")
        )
        if toon is not None:
            out_items.append(
                PutItem(
                    keys.frame_toon_key(job_id, f.index),
                    toon.encode(docs[i]).encode(),
                    "text/plain; charset=utf-8",
                )
            )
        return out_items

    batches = [items(i) for i in range(n)]
    parts["store"] = clock(store.put_many, batches)

    # The writer as the job runs it: its pool, back-pressure and all.
    def run_writer() -> None:
        writer = analysis._Writer(store, job_id, quality, toon, options, analysis._Timings())
        for ((f, _), d), e in zip(work, entries, strict=True):
            writer.submit(f, d, e)
        writer.finish()

    parts["writer"] = clock(lambda _: run_writer(), [None])
    parts["writer"]["frames"] = n
    store.delete_many([o.key for o in store.list(keys.job_prefix(job_id))])
    out["objects_frames"] = sum(1 for d in found if d.objects)
    out["faces_frames"] = sum(1 for d in found if d.faces)
    if toon is not None:
        toon.close()
    print(json.dumps(out))
    sys.stdout.flush()
    os._exit(0)


def face_recall(det) -> dict:
    """Recall at p >= 0.9 and false positives on faces of 20 to 400 px in 720p frames
    (bench/face_set.py), and the time a frame."""
    sys.path.insert(0, str(REPO))
    from bench import face_set

    def found(img):
        keep = det._min_confidence
        det._min_confidence = 0.0
        try:
            (dets,) = det.detect([img])
        finally:
            det._min_confidence = keep
        return [(f.box_xyxy, f.confidence) for f in dets.faces]

    crops = face_set.face_crops(MEDIA, lambda img: [b for b, p in found(img) if p >= 0.9])
    cases = face_set.build(MEDIA, crops)
    started = time.perf_counter()
    got = [found(img) for img, _ in cases]
    ms = 1000 * (time.perf_counter() - started) / len(cases)
    return {**face_set.score(got, [t for _, t in cases]), "ms_per_frame": round(ms, 1)}


def _load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


# --- the run --------------------------------------------------------------------------------
def run_writecost(path: Path, env: dict[str, str]) -> dict:
    """``_writecost`` on one side; a side whose code lacks a part it calls says so."""
    try:
        return run_mode("_writecost", [str(path)], env)
    except RuntimeError as exc:
        return {"error": str(exc)[-500:]}


def calibrated_weights(out: Path, video: Path) -> str:
    """A random-weight ``-seg`` model calibrated on frames of ``video``
    (``bench.equivalence``): it finds objects and masks on every frame, as real weights
    would, where the bench's random weights find none; so drawing the det and seg images
    and their JPEGs get measured too."""
    path = out / "yolo11n-seg-calibrated.pt"
    if not path.is_file():
        import cv2

        sys.path.insert(0, str(REPO))
        from bench.equivalence import calibrated_yolo

        cap = cv2.VideoCapture(str(video))
        frames = []
        for i in range(0, 60 * FPS, 5 * FPS):
            cap.set(cv2.CAP_PROP_POS_FRAMES, i)
            ok, img = cap.read()
            if ok:
                frames.append(img)
        cap.release()
        calibrated_yolo("yolo11n-seg.yaml", path, frames)
    return str(path)


def writecost_sides(base: dict[str, str], path: Path, ref: str, out: Path) -> dict:
    """``_writecost`` on both sides, with the bench's weights and with calibrated ones."""
    calibrated = calibrated_weights(out, path)
    found: dict = {}
    for side in SIDES:
        env = side_env(base, side_root(side, ref, out))
        found[side] = {
            "bench_weights": run_writecost(path, env),
            "calibrated_weights": run_writecost(
                path, {**env, "DETECT_MODEL": calibrated, "SEGMENT_MODEL": calibrated}
            ),
        }
    return found


def measure_writecost(args: argparse.Namespace) -> dict:
    """``--writecost``: the rest of a sampled frame alone, on both sides, the first video."""
    base = bench_env(args.out)
    first, _ = build_input(args.minutes[0], args.out)
    report: dict = {"before_ref": args.before, "minutes": args.minutes[0], "load": _load()}
    found = writecost_sides(base, first, args.before, args.out)
    report["sides"] = {side: {"writecost": found[side]} for side in SIDES}
    report["load_at_end"] = _load()
    return report


def bench_env(out: Path) -> dict[str, str]:
    """The settings every process of the bench runs with (both sides' defaults, the
    bench's weights, its store and caches in OUT)."""
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_CONFIG_DIR", str(out / "ultralytics"))
    weights = ensure_weights(out)
    seg = weights["BENCH_SEGMENT_WEIGHTS"]
    return {
        "ALLOW_MODEL_DOWNLOAD": "false",
        "TOON_ENABLED": "true",
        "LOCAL_STORE_DIR": str(out / "store"),
        "TEMP_MEDIA_DIR": str(out / "tmp_media"),
        "MODEL_CACHE_DIR": str(out / "model_cache"),
        # The defaults: one -seg model serves objects and masks.
        "DETECT_MODEL": seg,
        "SEGMENT_MODEL": seg,
        "MODEL_BACKEND": "auto",
        "MODEL_WORKERS": "0",
    }


def measure(args: argparse.Namespace) -> dict:
    out: Path = args.out
    base = bench_env(out)
    report: dict = {
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "load_at_start": _load(),
        },
        "before_ref": args.before,
        "sides": {},
    }
    inputs = {m: build_input(m, out) for m in args.minutes}
    warm, _ = build_input(WARM_MINUTES, out)
    first, _ = inputs[args.minutes[0]]
    report["decode"] = bench_decode(first)
    report["scenes"] = {**bench_scenes(first, FPS), "minutes": args.minutes[0]}
    envs = {s: side_env(base, side_root(s, args.before, out)) for s in SIDES}
    for side in SIDES:
        # A first start on this host: conversions, exports and bytecode are made here.
        run_job_subprocess(warm, envs[side], 1.0)
    for side in SIDES:
        entry: dict = {"root": envs[side]["PYTHONPATH"], "load": _load(), "jobs": {}}
        entry["models"] = run_mode("_models", [str(first)], envs[side])
        report["sides"][side] = entry
        _save_partial(out, report)
    for side, found in writecost_sides(base, first, args.before, out).items():
        report["sides"][side]["writecost"] = found
    # Whole jobs, the sides taking turns, each job ``--repeat`` times (the 5-minute one at
    # most twice); each side's figures are its median run by wall time.
    runs: dict[tuple[str, str], list[dict]] = {}
    for rep in range(args.repeat):
        for minutes, (path, _) in inputs.items():
            if minutes != args.minutes[0] and rep >= 2:
                continue
            for sfps in (1.0, 5.0) if minutes == args.minutes[0] else (1.0,):
                for side in SIDES:
                    job = run_job_subprocess(path, envs[side], sfps)
                    job["load"] = _load()
                    runs.setdefault((side, f"{minutes:g}min_fps{sfps:g}"), []).append(job)
        for (side, name), jobs in runs.items():
            ordered = sorted(jobs, key=lambda j: j["wall_s"])
            median = dict(ordered[(len(ordered) - 1) // 2])
            median["wall_s_runs"] = [j["wall_s"] for j in jobs]
            median["cpu_s_runs"] = [j["cpu_s"] for j in jobs]
            report["sides"][side]["jobs"][name] = median
        _save_partial(out, report)
    # Whole processes, start to exit: the peer once, `vidwatch analyze` on each side.
    report["peer_script_s"] = time_process([*_this_file(), "_peer", str(first)], envs["after"])
    for side in SIDES:
        report["sides"][side]["analyze"] = time_process(
            # -m puts the working folder first on sys.path: the side's root.
            [sys.executable, "-m", "vidwatch.cli", "analyze", str(first), "-q"],
            envs[side],
            cwd=Path(envs[side]["PYTHONPATH"]),
        )
    # What the work itself costs at the least here (bench/floor.py): the models' multiply-adds
    # at one core's measured fp32 peak, and decoding.
    from bench import floor

    report["floor"] = floor.measure(first, out / "model_cache")
    report["machine"]["load_at_end"] = _load()
    derive(report)
    return report


def _save_partial(out: Path, report: dict) -> None:
    """What is measured so far (a long run on a shared machine may be cut short)."""
    (out / "perf.partial.json").write_text(json.dumps(report, indent=2))


def derive(report: dict) -> None:
    """Ratios and comparisons from the measurements."""
    cli_cuts = report["scenes"]["cli_cut_list"]
    peer = report["peer_script_s"]["wall_s"]
    for side in report["sides"].values():
        for name, job in side["jobs"].items():
            job["realtime_factor"] = round(job["duration_s"] / job["wall_s"], 2)
            if name.startswith(f"{report['scenes']['minutes']:g}min"):
                job["cuts_equal_cli"] = job["cuts"] == cli_cuts
        side["analyze"]["over_peer"] = round(side["analyze"]["wall_s"] / peer, 3)
    before, after = report["sides"]["before"], report["sides"]["after"]
    same: dict = {}
    for name, job in after["jobs"].items():
        old = before["jobs"][name]
        diff = {
            k: (old["faces_per_frame"].get(k), v)
            for k, v in job["faces_per_frame"].items()
            if old["faces_per_frame"].get(k) != v
        }
        diff.update(
            {
                k: (v, None)
                for k, v in old["faces_per_frame"].items()
                if k not in job["faces_per_frame"]
            }
        )
        same[name] = {
            "faces_per_frame_differences": diff,
            "people": [old["people"], job["people"]],
            "cuts_equal": old["cuts"] == job["cuts"],
        }
    report["same_answers"] = same
    least = report.get("floor")
    if least:
        # Per job: its sampled frames at the models' floor, plus decoding its minutes.
        per_frame = least["floor_ms_per_sampled_frame"]["all"] / 1000
        decode = least["decode"]["cpu_s_per_minute"]
        for job in after["jobs"].values():
            cpu = job["sampled"] * per_frame + decode * job["duration_s"] / 60
            job["floor"] = {
                "least_cpu_s": round(cpu, 2),
                "best_realtime_factor": round(job["duration_s"] * least["cores"] / cpu, 2),
            }


def markdown(r: dict) -> str:
    b, a = r["sides"]["before"], r["sides"]["after"]
    lines = [
        f"Load average (1, 5, 15 min) at start {r['machine']['load_at_start']}, "
        f"at end {r['machine'].get('load_at_end')}. Before: `{r['before_ref']}`.",
        "",
        "| measure | before | after |",
        "|---|---|---|",
    ]

    def row(label: str, before: object, after: object) -> None:
        lines.append(f"| {label} | {before} | {after} |")

    for name in a["jobs"]:
        jb, ja = b["jobs"][name], a["jobs"][name]
        row(
            f"job {name}: realtime factor (wall, CPU)",
            f"x{jb['realtime_factor']} ({jb['wall_s']} s, {jb['cpu_s']} s CPU; "
            f"runs {jb.get('wall_s_runs')})",
            f"x{ja['realtime_factor']} ({ja['wall_s']} s, {ja['cpu_s']} s CPU; "
            f"runs {ja.get('wall_s_runs')})",
        )
    for name in a["jobs"]:
        row(
            f"job {name}: peak RSS MB",
            b["jobs"][name]["peak_rss_mb"],
            a["jobs"][name]["peak_rss_mb"],
        )
    first = next(iter(a["jobs"]))
    row(
        "second start-up to the first frame, s",
        b["jobs"][first]["startup_s"]["total_s"],
        a["jobs"][first]["startup_s"]["total_s"],
    )
    row(
        "start-up by part, s",
        ", ".join(f"{k} {v}" for k, v in b["jobs"][first]["startup_s"].items()),
        ", ".join(f"{k} {v}" for k, v in a["jobs"][first]["startup_s"].items()),
    )
    peer = r["peer_script_s"]["wall_s"]
    row(
        f"`vidwatch analyze` 1 minute, start to exit / peer script ({peer} s)",
        f"{b['analyze']['wall_s']} s: x{b['analyze']['over_peer']}",
        f"{a['analyze']['wall_s']} s: x{a['analyze']['over_peer']}",
    )
    for key in sorted(set(a["models"]["ms_per_frame"]) | set(b["models"]["ms_per_frame"])):
        row(
            f"{key}, ms per sampled frame, one lane",
            b["models"]["ms_per_frame"].get(key, "-"),
            a["models"]["ms_per_frame"].get(key, "-"),
        )
    for key in sorted(set(a["models"]["stages_ms"]) | set(b["models"]["stages_ms"])):
        row(
            f"{key}: by stage, ms",
            ", ".join(f"{k} {v}" for k, v in b["models"]["stages_ms"].get(key, {}).items()),
            ", ".join(f"{k} {v}" for k, v in a["models"]["stages_ms"].get(key, {}).items()),
        )

    def per_sampled(job: dict) -> str:
        t = job["timings_s"]
        parts = ("decode", "scenes", "models", "identities", "write")
        return ", ".join(f"{k} {1000 * t[k] / job['sampled']:.1f}" for k in parts if k in t)

    row(
        f"job {first}: the pipeline's clocks per sampled frame, ms (threads summed)",
        per_sampled(b["jobs"][first]),
        per_sampled(a["jobs"][first]),
    )
    row(
        "models per sampled frame, every lane busy, ms",
        b["models"]["every_lane_busy_ms_per_frame"],
        a["models"]["every_lane_busy_ms_per_frame"],
    )
    lines.extend(writecost_rows(r, header=False))
    least = r.get("floor")
    if least:
        floor_ms = least["floor_ms_per_sampled_frame"]
        row(
            "floor: models' multiply-adds at one core's fp32 peak "
            f"({max(least['peak_gflops_one_core'].values())} GFLOP/s), ms per sampled frame",
            "-",
            ", ".join(f"{k} {v}" for k, v in floor_ms.items()),
        )
        decode = least["decode"]["cpu_s_per_minute"]
        for name, job in a["jobs"].items():
            if "floor" in job:
                row(
                    f"job {name}: least CPU (floor models + decoding {decode} s a minute)"
                    " and the best realtime factor it allows",
                    "-",
                    f"{job['floor']['least_cpu_s']} s: x{job['floor']['best_realtime_factor']}"
                    f" (measured {job['cpu_s']} s CPU)",
                )
    fb, fa = b["models"].get("face_recall", {}), a["models"].get("face_recall", {})
    row(
        "face recall, 20-400 px (false positives)",
        f"{fb.get('recall')} ({fb.get('false_positives')}) of {fb.get('faces')}",
        f"{fa.get('recall')} ({fa.get('false_positives')}) of {fa.get('faces')}",
    )
    for name, s in r["same_answers"].items():
        jb, ja = b["jobs"][name], a["jobs"][name]
        row(
            f"job {name}: faces, people; cuts = CLI",
            f"{jb['faces']}, {s['people'][0]}; {jb.get('cuts_equal_cli', '-')}",
            f"{ja['faces']}, {s['people'][1]}; {ja.get('cuts_equal_cli', '-')}"
            f" (frames with other face counts: {len(s['faces_per_frame_differences'])})",
        )
    lines.append("")
    lines.append(
        f"Decoding alone: {r['decode']['fps']} frames/s; decoding and scenes, ours "
        f"{r['scenes']['ours_decode_plus_scenes_s']} s against the `scenedetect` CLI "
        f"{r['scenes']['cli_s']} s ({r['scenes']['cuts']} cuts, agreeing: "
        f"{r['scenes']['cuts_agree']})."
    )
    return "\n".join(lines)


def writecost_rows(r: dict, *, header: bool = True) -> list[str]:
    """The rest of a sampled frame, part by part: ms per sampled frame, CPU (wall)."""
    sides = {s: r["sides"][s].get("writecost") or {} for s in SIDES}
    if not any(sides.values()):
        return []
    lines = ["| measure | before | after |", "|---|---|---|"] if header else []

    def cell(w: dict | None, part: str) -> str:
        if not w:
            return "-"
        if "error" in w:
            # An older side may lack a function the mode calls: the error is in the JSON.
            return "not measured: the mode failed on this side's code (its error is in the JSON)"
        p = w["parts"].get(part)
        if p is None:
            return "-"
        text = f"{p['cpu_ms']} ({p['wall_ms']})"
        if "node_cpu_ms" in p:
            text += f" + Node {p['node_cpu_ms']}"
        if part == "identities":
            text += f"; {p['descriptors']} descriptors, {p['reused']} reused"
        if p["frames"] != w["sampled"]:
            text += f"; on {p['frames']} of {w['sampled']} frames"
        return text

    for weights, title in (
        ("bench_weights", "bench weights"),
        ("calibrated_weights", "calibrated weights"),
    ):
        b, a = sides["before"].get(weights), sides["after"].get(weights)
        w = a if a and "parts" in a else b
        if not (w and "parts" in w):
            continue
        title += (
            f" (objects on {w['objects_frames']}, faces on {w['faces_frames']} "
            f"of {w['sampled']} sampled frames)"
        )
        for part, label in WRITE_PARTS:
            if weights == "calibrated_weights" and part == "identities":
                continue
            lines.append(
                f"| {title}: {label}, ms CPU (wall) per sampled frame "
                f"| {cell(b, part)} | {cell(a, part)} |"
            )
        if weights == "bench_weights":
            cells = []
            for s in SIDES:
                x = (sides[s].get(weights) or {}).get("identities_without_reuse")
                cells.append(
                    f"{x['cpu_ms']} ({x['wall_ms']}); {x['descriptors']} descriptors" if x else "-"
                )
            lines.append(
                f"| {title}: identities with every face described (reuse off), ms CPU (wall) "
                f"per sampled frame | {cells[0]} | {cells[1]} |"
            )
    return lines


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv and argv[0] in ("_job", "_peer", "_models", "_writecost"):
        p = argparse.ArgumentParser()
        p.add_argument("video", type=Path)
        p.add_argument("--sample-fps", type=float, default=1.0)
        p.add_argument("--repeat", type=int, default=3)
        a = p.parse_args(argv[1:])
        if argv[0] == "_models":
            _models_main(a.video)
        elif argv[0] == "_writecost":
            _writecost_main(a.video, a.sample_fps, a.repeat)
        else:
            (_job_main if argv[0] == "_job" else _peer_main)(a.video, a.sample_fps)
        return 0
    parser = argparse.ArgumentParser(prog="bench.perf", description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[1.0, 5.0])
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out")
    parser.add_argument("--before", default=BEFORE_REF, help="the commit 'before' runs")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each job on each side")
    parser.add_argument("--report", action="store_true", help="the table again, from OUT/perf.json")
    parser.add_argument(
        "--writecost",
        action="store_true",
        help="only the rest of a sampled frame (images, documents, identities, the store), "
        "both sides, into OUT/writecost.json",
    )
    args = parser.parse_args(argv)
    if args.report:
        report = json.loads((args.out / "perf.json").read_text())
        derive(report)
        print(markdown(report))
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    if args.writecost:
        report = measure_writecost(args)
        (args.out / "writecost.json").write_text(json.dumps(report, indent=2))
        print(
            f"Load average at start {report['load']}, at end {report['load_at_end']}. "
            f"Before: `{report['before_ref']}`.\n"
        )
        print("\n".join(writecost_rows(report)))
        return 0
    report = measure(args)
    (args.out / "perf.json").write_text(json.dumps(report, indent=2))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
