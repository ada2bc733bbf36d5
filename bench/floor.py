"""The floor under issue 26's realtime targets: what the fp32 models and the decoder cost at
the least on this machine, from the work they do and what one core can do.

    uv run python -m bench.floor [--video VIDEO] [--cache MODEL_CACHE_DIR]

- One core's fp32 peak: the best of a large single-threaded matrix product in OpenVINO and
  in numpy (GFLOP/s). Convolutions of small nets reach less than this, never more.
- The models' work per sampled frame, counted from their OpenVINO graphs (multiply-adds
  of every convolution and matrix product): the YOLO export in ``--cache`` at the 16:9
  input, MTCNN's P-Net over every pyramid scale of a 720p frame, R-Net and O-Net times the
  crops they get on the video's sampled frames (counted by running ``detect_faces``).
- Decoding: CPU seconds per minute of the video, PyAV as the pipeline opens it, no colour
  conversion (every frame is decoded whatever SAMPLE_FPS is; scenes need each one).

From these: the least CPU a job of that video can take at SAMPLE_FPS 1 and 5 (models at
one core's peak, decoding as measured, nothing else), and the best realtime factor on all
of this machine's cores. ``bench.perf`` puts it beside the measured run."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent


def peak_gflops(n: int = 2048, repeat: int = 5) -> dict[str, float]:
    """fp32 GFLOP/s of an n x n matrix product on one thread: OpenVINO's and numpy's best."""
    import openvino as ov
    import openvino.opset13 as ops

    a = np.random.default_rng(0).random((n, n), dtype=np.float32)
    flop = 2.0 * n**3
    x = ops.parameter([n, n], ov.Type.f32)
    model = ov.Model([ops.matmul(x, ops.constant(a), False, False)], [x])
    config = {
        "INFERENCE_NUM_THREADS": 1,
        "ENABLE_CPU_PINNING": False,
        "INFERENCE_PRECISION_HINT": "f32",
    }
    request = ov.Core().compile_model(model, "CPU", config).create_infer_request()
    request.infer({0: a})
    best_ov = min(_cpu(lambda: request.infer({0: a})) for _ in range(repeat))
    # numpy's BLAS on one thread: threadpoolctl where present, else its own threads count.
    try:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1):
            best_np = min(_cpu(lambda: a @ a) for _ in range(repeat))
    except ImportError:
        best_np = float("inf")
    return {
        "openvino_matmul": round(flop / best_ov / 1e9, 1),
        "numpy_matmul": round(flop / best_np / 1e9, 1) if best_np != float("inf") else 0.0,
    }


def _cpu(fn) -> float:
    started = time.process_time()
    fn()
    return time.process_time() - started


def model_gmac(xml: Path, shape: list[int]) -> float:
    """Multiply-adds (10^9) of one inference of the OpenVINO model at ``shape``."""
    import openvino as ov

    model = ov.Core().read_model(str(xml))
    model.reshape({0: shape})
    total = 0
    for op in model.get_ordered_ops():
        kind = op.get_type_name()
        if kind in ("Convolution", "GroupConvolution", "ConvolutionBackpropData"):
            out = [int(d) for d in op.output(0).get_shape()]
            w = [int(d) for d in op.input_value(1).get_shape()]
            outputs = int(np.prod(out))
            if kind == "Convolution":
                per = int(np.prod(w[1:]))
            elif kind == "GroupConvolution":
                per = int(np.prod(w[2:]))
            else:  # a transposed convolution: each input value feeds C_out * kh * kw outputs
                inp = [int(d) for d in op.input_value(0).get_shape()]
                total += int(np.prod(inp)) * int(np.prod(w[1:]))
                continue
            total += outputs * per
        elif kind == "MatMul":
            a = [int(d) for d in op.input_value(0).get_shape()]
            total += int(np.prod([int(d) for d in op.output(0).get_shape()])) * a[-1]
    return total / 1e9


def decode_cpu_per_minute(video: Path) -> dict[str, float]:
    """CPU seconds to decode a minute of ``video`` (frame threads as the pipeline sets them),
    frames left in the decoder's format."""
    import av

    started = time.process_time()
    frames = 0
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for _ in container.decode(stream):
            frames += 1
        duration = float(stream.duration * stream.time_base) if stream.duration else 0.0
    cpu = time.process_time() - started
    duration = duration or frames / 25.0
    per_minute = round(cpu * 60 / duration, 3)
    return {"frames": frames, "cpu_s": round(cpu, 3), "cpu_s_per_minute": per_minute}


def mtcnn_crops(video: Path, cache: Path, n: int = 24) -> dict[str, float]:
    """R-Net's and O-Net's crops per sampled frame (mean over ``n`` sampled frames)."""
    from vidwatch.detectors import mtcnn, mtcnn_openvino

    nets = _mtcnn_folder(cache)
    import openvino as ov

    core = ov.Core()
    models = {name: core.read_model(str(nets / f"{name}.xml")) for name in mtcnn_openvino.NETS}
    runners = {
        name: mtcnn_openvino.compile_runner(core, m, name, {"INFERENCE_NUM_THREADS": 1})
        for name, m in models.items()
    }
    counts = {"rnet": 0, "onet": 0}

    def counting(name):
        def run(x):
            if name in counts:
                counts[name] += len(x)
            return runners[name](x)

        return run

    from bench.perf import _sample_frames

    frames = _sample_frames(video, n)
    for f in frames:
        mtcnn.detect_faces(f, pnet=counting("pnet"), rnet=counting("rnet"), onet=counting("onet"))
    return {k: v / len(frames) for k, v in counts.items()}


def _mtcnn_folder(cache: Path) -> Path:
    found = sorted((cache / "mtcnn").glob("*/pnet.xml"))
    if not found:
        raise SystemExit(f"no converted MTCNN nets under {cache / 'mtcnn'}: run a job first")
    return found[0].parent


def _yolo_xml(cache: Path) -> Path:
    found = sorted((cache / "yolo").glob("*/*_openvino_model/*.xml"))
    if not found:
        raise SystemExit(f"no YOLO export under {cache / 'yolo'}: run a job first")
    return found[0]


def measure(video: Path, cache: Path, sampled: dict[str, int] | None = None) -> dict:
    """The floor for ``video``; ``sampled``: sampled frames per job name (e.g.
    ``{"1min_fps1": 89}``), from a run, else one a second (and none for cuts)."""
    from vidwatch.detectors import mtcnn

    peak = peak_gflops()
    best = max(peak.values())
    h, w = 720, 1280
    pnet_xml = _mtcnn_folder(cache) / "pnet.xml"
    pnet = 0.0
    for scale in mtcnn.pyramid_scales(h, w, mtcnn.MtcnnParams()):
        pnet += model_gmac(pnet_xml, [1, 3, int(h * scale + 1), int(w * scale + 1)])
    crops = mtcnn_crops(video, cache)
    rnet = model_gmac(pnet_xml.parent / "rnet.xml", [1, 3, 24, 24]) * crops["rnet"]
    onet = model_gmac(pnet_xml.parent / "onet.xml", [1, 3, 48, 48]) * crops["onet"]
    yolo = model_gmac(_yolo_xml(cache), [1, 3, 384, 640])
    gmac = {"yolo_seg_384x640": yolo, "pnet_all_scales": pnet, "rnet": rnet, "onet": onet}
    floor_ms = {k: round(2 * v / best * 1000, 1) for k, v in gmac.items()}
    frame_floor_ms = sum(2 * v / best * 1000 for v in gmac.values())
    decode = decode_cpu_per_minute(video)
    cores = os.cpu_count() or 1
    minutes = decode["frames"] / 25.0 / 60.0
    jobs = {}
    for name, count in (sampled or {"fps1": int(60 * minutes), "fps5": int(300 * minutes)}).items():
        cpu = count * frame_floor_ms / 1000 + decode["cpu_s_per_minute"] * minutes
        jobs[name] = {
            "sampled_frames": count,
            "least_cpu_s": round(cpu, 2),
            "best_realtime_factor": round(60 * minutes * cores / cpu, 2),
        }
    return {
        "cores": cores,
        "peak_gflops_one_core": peak,
        "gmac_per_sampled_frame": {k: round(v, 3) for k, v in gmac.items()},
        "mtcnn_crops_per_frame": {k: round(v, 1) for k, v in crops.items()},
        "floor_ms_per_sampled_frame": {**floor_ms, "all": round(frame_floor_ms, 1)},
        "decode": decode,
        "jobs": jobs,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--video", type=Path, default=REPO / "bench" / "out" / "input_1min_720p.mp4")
    p.add_argument("--cache", type=Path, default=REPO / "bench" / "out" / "model_cache")
    a = p.parse_args(argv)
    print(json.dumps(measure(a.video, a.cache), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
