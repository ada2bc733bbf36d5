"""The performance benchmark: this checkout against an earlier commit, in one run.

    uv run python -m bench.perf [--minutes 1 5] [--before REF] [--out bench/out]
    uv run python -m bench.perf --report        # the table again, from OUT/perf.json

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
def measure(args: argparse.Namespace) -> dict:
    out: Path = args.out
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_CONFIG_DIR", str(out / "ultralytics"))
    weights = ensure_weights(out)
    seg = weights["BENCH_SEGMENT_WEIGHTS"]
    base = {
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


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv and argv[0] in ("_job", "_peer", "_models"):
        p = argparse.ArgumentParser()
        p.add_argument("video", type=Path)
        p.add_argument("--sample-fps", type=float, default=1.0)
        a = p.parse_args(argv[1:])
        if argv[0] == "_models":
            _models_main(a.video)
        else:
            (_job_main if argv[0] == "_job" else _peer_main)(a.video, a.sample_fps)
        return 0
    parser = argparse.ArgumentParser(prog="bench.perf", description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[1.0, 5.0])
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out")
    parser.add_argument("--before", default=BEFORE_REF, help="the commit 'before' runs")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each job on each side")
    parser.add_argument("--report", action="store_true", help="the table again, from OUT/perf.json")
    args = parser.parse_args(argv)
    if args.report:
        report = json.loads((args.out / "perf.json").read_text())
        derive(report)
        print(markdown(report))
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    report = measure(args)
    (args.out / "perf.json").write_text(json.dumps(report, indent=2))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
