"""MTCNN's nets on OpenVINO: converted once from facenet-pytorch's, with their input
normalisation inside the graph, compiled for the CPU; and, with FACE_INT8, P-Net and R-Net
quantized with NNCF on calibration photos that Ultralytics ships (cached in MODEL_CACHE_DIR).

``vidwatch.detectors.mtcnn`` holds the algorithm that drives them (``detect_faces``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from vidwatch.detectors.mtcnn import (
    INPUT_MEAN,
    INPUT_SCALE,
    MtcnnParams,
    NetRunner,
    _normalise,
    detect_faces,
)

if TYPE_CHECKING:
    import openvino as ov
    import torch


def openvino_runners(
    nets: Callable[[], dict[str, torch.nn.Module]],
    *,
    cache: Path | None = None,
    config: dict[str, Any] | None = None,
    int8_cache: Path | None = None,
    int8: bool = False,
) -> tuple[dict[str, NetRunner], tuple[str, ...]]:
    """The three nets on OpenVINO (any batch; P-Net any size), compiled for the CPU, each
    taking what ``detect_faces`` hands it (BGR NHWC, normalised by the runner), and the
    names of those that run int8.

    ``nets`` gives facenet-pytorch's nets; it is called only when a net is not converted yet
    (a torch trace, about a second), whose result is saved in ``cache`` when given. With
    ``int8``, the nets of INT8_NETS run quantized (``int8_models``, kept in ``int8_cache``);
    where that cannot be done (no ``nncf``, no calibration photos, NNCF failing) they stay
    fp32."""
    import openvino as ov

    core = ov.Core()
    if int8 and int8_cache is not None:
        quantized = _read_models(core, int8_cache, INT8_NETS)
        if quantized is not None:  # the int8 nets need no fp32 twin
            fp32 = fp32_models(core, nets, cache, [n for n in NETS if n not in quantized])
            runners = {
                name: compile_runner(core, model, name, config, raw_input=name not in quantized)
                for name, model in {**fp32, **quantized}.items()
            }
            return runners, tuple(quantized)
    models = fp32_models(core, nets, cache)
    runners = {name: compile_runner(core, model, name, config) for name, model in models.items()}
    if not int8:
        return runners, ()
    try:
        quantized = int8_models(core, models, runners, int8_cache)
    except Exception as exc:  # noqa: BLE001 - any NNCF failure leaves the nets as they were
        import structlog

        structlog.get_logger("vidwatch.detectors").warning(
            "mtcnn_int8_failed", error=f"{type(exc).__name__}: {exc}"
        )
        return runners, ()
    for name, model in quantized.items():
        runners[name] = compile_runner(core, model, name, config, raw_input=False)
    return runners, tuple(quantized)


NETS = ("pnet", "rnet", "onet")


def fp32_models(
    core: ov.Core,
    nets: Callable[[], dict[str, torch.nn.Module]],
    cache: Path | None,
    names: Sequence[str] = NETS,
) -> dict[str, ov.Model]:
    """The three nets as OpenVINO models (fp32, without pre-processing), read from ``cache``
    or converted from ``nets()`` (and saved there)."""
    import openvino as ov

    out: dict[str, ov.Model] = {}
    torch_nets: dict[str, torch.nn.Module] | None = None
    for name in names:
        xml = cache / f"{name}.xml" if cache is not None else None
        if xml is not None and xml.is_file():
            out[name] = core.read_model(str(xml))
            continue
        import torch

        from vidwatch.detectors.quiet import export_warnings_silenced

        if torch_nets is None:
            torch_nets = nets()
        with export_warnings_silenced():  # the conversion traces with torch.jit
            model = ov.convert_model(
                torch_nets[name].eval(),
                example_input=torch.zeros(_EXAMPLES[name]),
                input=[_SHAPES[name]],
            )
        if xml is not None:
            _save(ov, model, xml)
        out[name] = model
    return out


def _plain_max_pools(model: ov.Model) -> ov.Model:
    """Torch's max pools come converted with an unused indices output (MaxPool-14, rounding
    ``ceil_torch``); as opset1 pools (``ceil``: the same windows without padding) the CPU
    plugin keeps int8 through them and computes no indices. The values are the same."""
    import openvino.opset1 as opset1

    for op in model.get_ordered_ops():
        if op.get_type_name() != "MaxPool" or op.get_type_info().version_id == "opset1":
            continue
        a = op.get_attributes()
        if (
            len(op.outputs()) != 2
            or op.output(1).get_target_inputs()
            or any(a["pads_begin"])
            or any(a["pads_end"])
            or any(d != 1 for d in a["dilations"])
        ):
            continue
        rounding = {"ceil_torch": "ceil"}.get(a["rounding_type"], a["rounding_type"])
        pool = opset1.max_pool(
            op.input_value(0), a["strides"], [0, 0], [0, 0], a["kernel"], rounding
        )
        pool.set_friendly_name(op.get_friendly_name())
        op.output(0).replace(pool.output(0))
    model.validate_nodes_and_infer_types()
    return model


def compile_runner(
    core: ov.Core,
    model: ov.Model,
    name: str,
    config: dict[str, Any] | None,
    *,
    raw_input: bool = True,
) -> NetRunner:
    """``model`` (without pre-processing) compiled for the CPU in fp32; its runner takes what
    ``detect_faces`` hands it (BGR NHWC: P-Net the uint8 scale, R-Net and O-Net float crops).

    With ``raw_input`` the net takes that as it is (``raw_input_model``: the normalisation
    folded into its first convolution); otherwise (the int8 nets, quantized on normalised
    inputs) numpy normalises it. Normalising inside the graph as separate operations
    (OpenVINO's PrePostProcessor) cost more than numpy: P-Net 5 to 9 ms a 720p frame."""
    from vidwatch.detectors.backends import compile_on_cpu

    # Both branches hand _plain_max_pools (which edits in place) a model of their own.
    if raw_input:
        model = raw_input_model(model, np.uint8 if name == "pnet" else np.float32)
    else:
        model = model.clone()
    options = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32", **(config or {})}
    compiled = compile_on_cpu(core, _plain_max_pools(model), options)
    return _ov_runner(compiled.create_infer_request(), len(compiled.outputs), raw_input)


def raw_input_model(model: ov.Model, dtype: type[np.generic]) -> ov.Model:
    """``model`` taking BGR NHWC of ``dtype`` instead of normalised RGB NCHW float.

    The nets' first convolution has no padding, so ``(x - 127.5) / 128`` in RGB folds into
    its weights and bias exactly (W' = W[:, ::-1] / 128, b' = b - 127.5 / 128 * sum(W)):
    the outputs differ from numpy's normalisation by float rounding (3e-6 on the bench
    frames). The conversion and the layout are left to the plugin: 3.6 ms less a 720p frame
    than normalising P-Net's scales with numpy (bench.perf)."""
    import openvino as ov
    import openvino.opset13 as ops

    m = model.clone()
    (param,) = m.get_parameters()
    conv = next(iter(param.output(0).get_target_inputs())).get_node()
    adds = [t.get_node() for t in conv.output(0).get_target_inputs()]
    if (
        conv.get_type_name() != "Convolution"
        or any(conv.get_attributes()["pads_begin"])
        or any(conv.get_attributes()["pads_end"])
        or len(adds) != 1
        or adds[0].get_type_name() != "Add"
    ):
        raise ValueError("the net does not start with an unpadded convolution and its bias")
    (add,) = adds
    (at,) = [i for i in range(2) if add.input_value(i).get_node().get_type_name() == "Constant"]
    weights = conv.input_value(1).get_node().get_data().astype(np.float64)
    bias = add.input_value(at).get_node().get_data().astype(np.float64)
    folded_w = weights[:, ::-1] * INPUT_SCALE
    folded_b = bias - (weights.sum(axis=(1, 2, 3)) * INPUT_MEAN * INPUT_SCALE).reshape(bias.shape)
    n, c, h, w = param.get_partial_shape()
    raw = ops.parameter(
        ov.PartialShape([n, h, w, c]), ov.Type.u8 if dtype is np.uint8 else ov.Type.f32, name="x"
    )
    x = raw.output(0) if dtype is not np.uint8 else ops.convert(raw, ov.Type.f32).output(0)
    nchw = ops.transpose(x, ops.constant(np.array([0, 3, 1, 2], np.int64)))
    conv.input(0).replace_source_output(nchw.output(0))
    conv.input(1).replace_source_output(ops.constant(folded_w.astype(np.float32)).output(0))
    add.input(at).replace_source_output(ops.constant(folded_b.astype(np.float32)).output(0))
    return ov.Model(m.get_results(), [raw], m.get_friendly_name())


def _ov_runner(request: ov.InferRequest, n_out: int, raw_input: bool) -> NetRunner:
    def run(x: np.ndarray) -> list[np.ndarray]:
        res = request.infer({0: np.ascontiguousarray(x) if raw_input else _normalise(x)})
        return [np.array(res[i]) for i in range(n_out)]

    return run


_EXAMPLES = {"pnet": (1, 3, 64, 64), "rnet": (4, 3, 24, 24), "onet": (4, 3, 48, 48)}
_SHAPES = {"pnet": [-1, 3, -1, -1], "rnet": [-1, 3, 24, 24], "onet": [-1, 3, 48, 48]}


def _save(ov: ModuleType, model: ov.Model, xml: Path) -> None:
    """Write the converted net beside its siblings, atomically (another process may too)."""
    import os
    import tempfile

    try:
        xml.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=xml.parent, prefix=".convert-") as tmp:
            part = Path(tmp) / xml.name
            ov.save_model(model, str(part), compress_to_fp16=False)
            os.replace(part.with_suffix(".bin"), xml.with_suffix(".bin"))
            os.replace(part, xml)
    except OSError:
        pass  # no cache: convert again next start


CALIBRATION_IMAGES = ("zidane.jpg", "bus.jpg")
CALIBRATION_SIDES = (360, 540, 720, 1080)


def _calibration_files() -> list[Path]:
    """The sample photos Ultralytics ships (found without importing it)."""
    from vidwatch.detectors.weights import package_folder

    folder = package_folder("ultralytics")
    if folder is None:
        return []
    files = [folder / "assets" / name for name in CALIBRATION_IMAGES]
    return [f for f in files if f.is_file()]


def calibration_images() -> list[np.ndarray]:
    """Calibration frames for int8: the sample photos Ultralytics ships (people and their
    faces, on every host that runs YOLO) with their short side at CALIBRATION_SIDES."""
    out = []
    for path in _calibration_files():
        img = cv2.imread(str(path))
        if img is None:
            continue
        for side in CALIBRATION_SIDES:
            f = side / min(img.shape[:2])
            size = (round(img.shape[1] * f), round(img.shape[0] * f))
            how = cv2.INTER_AREA if f < 1 else cv2.INTER_CUBIC
            out.append(cv2.resize(img, size, interpolation=how))
    return out


def recorded_inputs(
    runners: dict[str, NetRunner], images: Sequence[np.ndarray], params: MtcnnParams
) -> dict[str, list[np.ndarray]]:
    """Each net's inputs (as its runner gets them) while ``detect_faces`` runs on ``images``."""
    seen: dict[str, list[np.ndarray]] = {name: [] for name in NETS}

    def recording(name: str) -> NetRunner:
        def run(x: np.ndarray) -> Sequence[np.ndarray]:
            seen[name].append(x.copy())
            return runners[name](x)

        return run

    for img in images:
        detect_faces(
            img,
            pnet=recording("pnet"),
            rnet=recording("rnet"),
            onet=recording("onet"),
            params=params,
        )
    return seen


# int8 where it keeps the faces (docs/performance.md): P-Net, most of MTCNN's time, and
# R-Net. O-Net (about 2 ms a frame) gives the final boxes and landmarks: it stays fp32.
INT8_NETS = ("pnet", "rnet")
INT8_RECIPE = "mixed-heads-fp32-v1"
"""How the int8 nets are made (part of their cache key): NNCF's MIXED preset (symmetric
weights, asymmetric activations) with fast bias correction, the convolutions that give the
nets' outputs left in fp32, the calibration of ``int8_inputs``."""


def int8_key() -> str | None:
    """What an int8 net depends on besides the weights: NNCF's and OpenVINO's versions, the
    recipe and the calibration photos (by content); None when NNCF or the photos are
    missing (the nets then stay fp32)."""
    import hashlib
    from importlib.metadata import PackageNotFoundError, version

    from vidwatch.detectors.weights import sha256_of

    try:
        versions = f"nncf{version('nncf')}-openvino{version('openvino')}"
    except PackageNotFoundError:
        return None
    files = _calibration_files()
    if len(files) != len(CALIBRATION_IMAGES):
        return None
    what = [INT8_RECIPE, *INT8_NETS, *map(str, CALIBRATION_SIDES), *(sha256_of(f) for f in files)]
    return f"{versions}-{hashlib.sha256(' '.join(what).encode()).hexdigest()[:16]}"


def _read_models(core: ov.Core, folder: Path, names: Sequence[str]) -> dict[str, ov.Model] | None:
    xmls = {name: folder / f"{name}.xml" for name in names}
    if not all(xml.is_file() and xml.with_suffix(".bin").is_file() for xml in xmls.values()):
        return None
    return {name: core.read_model(str(xml)) for name, xml in xmls.items()}


def int8_models(
    core: ov.Core,
    models: dict[str, ov.Model],
    runners: dict[str, NetRunner],
    cache: Path | None,
) -> dict[str, ov.Model]:
    """INT8_NETS quantized (without pre-processing, like ``models``): read from ``cache``,
    or made from ``models`` calibrated on the nets' own inputs (``runners`` running
    ``detect_faces`` on ``calibration_images``) and saved there. Empty when NNCF or the
    calibration photos are missing."""
    import openvino as ov

    if cache is not None and (done := _read_models(core, cache, INT8_NETS)) is not None:
        return done
    if int8_key() is None:
        return {}
    inputs = int8_inputs(runners)
    out = {name: _quantized(models[name], inputs[name]) for name in INT8_NETS}
    if cache is not None:
        for name, model in out.items():
            _save(ov, model, cache / f"{name}.xml")
    return out


def int8_inputs(runners: dict[str, NetRunner]) -> dict[str, list[np.ndarray]]:
    """Each net's calibration batches: its real inputs on the calibration photos,
    normalised as the net without pre-processing takes them, crops 32 to a batch."""
    recorded = recorded_inputs(runners, calibration_images(), MtcnnParams())
    out: dict[str, list[np.ndarray]] = {}
    for name, batches in recorded.items():
        step = 1 if name == "pnet" else 32
        out[name] = [_normalise(b[i : i + step]) for b in batches for i in range(0, len(b), step)]
    return out


def _quantized(model: ov.Model, data: list[np.ndarray]) -> ov.Model:
    """``model`` through NNCF's post-training quantization, quietly and without telemetry
    (NNCF sends usage events unless NNCF_CI is set when it is first imported)."""
    import contextlib
    import io
    import logging
    import os

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        before = os.environ.get("NNCF_CI")
        os.environ["NNCF_CI"] = "1"
        try:
            import nncf
        finally:
            if before is None:
                del os.environ["NNCF_CI"]
            else:
                os.environ["NNCF_CI"] = before
        nncf.set_log_level(logging.ERROR)
        plain = _plain_max_pools(model.clone())
        return nncf.quantize(
            plain,
            nncf.Dataset(data),
            preset=nncf.QuantizationPreset.MIXED,
            subset_size=len(data),
            ignored_scope=nncf.IgnoredScope(names=_head_convolutions(plain)),
        )


def _head_convolutions(model: ov.Model) -> list[str]:
    """The convolutions whose outputs are the net's (through a softmax, a flatten...)."""
    names = []
    for result in model.get_results():
        node = result.input_value(0).get_node()
        while node.get_type_name() not in ("Convolution", "MatMul", "Parameter"):
            node = node.input_value(0).get_node()
        if node.get_type_name() != "Parameter":
            names.append(node.get_friendly_name())
    return names
