"""Precision as ONNX graphs: FP16 (onnxconverter-common) and INT8 Q/DQ (ONNX Runtime static quantisation) files
made from the FP32 ONNX file and cached under a key.

The precision lives in the graph, not in a builder flag: ONNX Runtime on the CPU runs (and so measures) the same
FP16/INT8 graph that a strongly typed TensorRT build (10.x and 11.x) compiles. Key = sha256 over the source file's
sha256, the converter and its version, the opset, the FP16 block list or the quantisation settings, and for INT8
the calibration set's digest and how samples are made from it.

INT8 recipe (v3, measured in docs/backends.md): the palm detector stays FP32 (INT8_FP32_MODELS); in other networks
the weighted nodes whose INT8 lowers the output SQNR most stay FP32 (INT8_FP32_SENSITIVE_FRACTION, ranked on the
calibration samples, recorded in the sidecar), and Q/DQ sit on Conv/Gemm inputs only.

Converter choice: onnxconverter-common (pure Python, needs only onnx/numpy, installs on Jetson and x86 alike;
``convert_float_to_float16(keep_io_types=True)``). NVIDIA ModelOpt AutoCast does the same job with accuracy-driven
node selection but pulls a large dependency tree for a model where nothing needs blocking (docs/backends.md).
"""

from __future__ import annotations

import atexit
import hashlib
import importlib
import json
import logging
import math
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hand_recon_ros.engines import calibration_set as cs
from hand_recon_ros.engines import engine_cache as ec
from hand_recon_ros.engines.base import BackendError

_LOG = logging.getLogger(__name__)

PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "int8")
#: ``precision: auto`` = each backend's own default (fp16 on TensorRT, fp32 on every other backend).
PRECISION_AUTO = "auto"
PRECISION_CHOICES: tuple[str, ...] = (PRECISION_AUTO, *PRECISIONS)
#: Bump when a graph made by this module would change for the same inputs (old files are then not reused).
GRAPH_FORMAT_VERSION = 3  # 3: INT8 FP32 nodes ranked by sensitivity; palm FP32; Q/DQ at op inputs
#: Ops kept FP32 in FP16 graphs: onnxconverter-common's default list (ML ops, NMS/TopK, and Resize/Upsample,
#: whose scales must stay float32) plus the ops named here. The hand networks need nothing more: measured FP16 vs
#: FP32 difference is far below a pixel (docs/backends.md).
FP16_EXTRA_BLOCK_OPS: tuple[str, ...] = ()
#: INT8 mixed precision, computed per model from its calibration samples (an automatic recipe, not a hand list):
#: every weighted node (INT8_WEIGHTED_OPS) is ranked by the SQNR of the graph outputs when that node alone is INT8
#: (ONNX Runtime's qdq_loss_debug SQNR, on at most INT8_SENSITIVITY_SAMPLES samples), and the
#: INT8_FP32_SENSITIVE_FRACTION most sensitive ones stay FP32. Measured on the hand networks (docs/backends.md):
#: the landmark network's first convolutions and output heads rank first, as the former hand list had them.
INT8_WEIGHTED_OPS: tuple[str, ...] = ("Conv", "Gemm", "MatMul")
INT8_FP32_SENSITIVE_FRACTION = 0.35
INT8_SENSITIVITY_SAMPLES = 24
#: Models that ``int8`` runs entirely FP32 (stem prefix → why): the palm detector's box regression moves the hand
#: crop, and every INT8 palm tried (all INT8, 45 of 66 convolutions FP32, Conv-only Q/DQ, PReLU fused) moved the
#: landmarks by 4.7-7 px at the 95th percentile with FP32 landmarks (docs/backends.md).
INT8_FP32_MODELS: dict[str, str] = {
    "palm_detection": "INT8 palm boxes move the hand crops by more than the landmark error budget",
}
#: Q/DQ flavours: "tensorrt" is symmetric INT8 activations and weights (the only INT8 TensorRT runs explicitly);
#: "cpu" is ONNX Runtime's x86 choice (uint8 activations, int8 weights), faster in ORT's CPU kernels.
INT8_FLAVOURS: tuple[str, ...] = ("tensorrt", "cpu")

#: A sample maker turns the calibration images into network inputs (N, ...) float32 for one model.
SampleMaker = Callable[[Path, list[np.ndarray], tuple[int, ...]], np.ndarray]
#: Model stem prefix → ("module:function" of a SampleMaker, method name that goes into the key). Models with no
#: entry are calibrated on letterboxed whole images.
_SAMPLE_MAKERS: dict[str, tuple[str, str]] = {
    "hand_landmark": ("hand_recon_ros.pipeline.calibration_crops:landmark_calibration_samples",
                      "fp32-detector-hand-crops+proposals-v2"),
}
LETTERBOX_METHOD = "letterbox-whole-image-v1"
_temp_dirs: list[str] = []


def resolve_precision(precision: str | None, default: str) -> str:
    """``precision`` lower-cased, with None/"auto" meaning ``default``; anything else unknown is an error."""
    value = PRECISION_AUTO if precision is None else str(precision).lower()
    if value == PRECISION_AUTO:
        return default
    if value not in PRECISIONS:
        raise BackendError(f"precision must be one of {', '.join(PRECISION_CHOICES)}, got '{precision}'")
    return value


def converter_version(precision: str) -> str:
    """Name and version of the tool that makes ``precision`` graphs (part of the key)."""
    if precision == "fp16":
        try:
            import onnxconverter_common
        except ImportError as exc:
            raise BackendError(f"precision fp16 needs onnxconverter-common ({exc}); fix: "
                               "pip install 'onnxconverter-common>=1.14'") from exc
        return f"onnxconverter-common {onnxconverter_common.__version__}"
    import onnxruntime

    return f"onnxruntime {onnxruntime.__version__}"


def model_opset(onnx_path: str | Path) -> int:
    """The default-domain opset of an ONNX file."""
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    return max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)


@dataclass(frozen=True)
class Calibration:
    """An INT8 calibration set: the image files and their digest."""

    files: tuple[Path, ...]
    digest: str

    @staticmethod
    def from_dir(calib_dir: str | Path, max_images: int = cs.DEFAULT_CALIB_MAX_IMAGES) -> Calibration:
        """The images of ``calib_dir`` (errors name the folder) and their digest."""
        files = cs.calibration_files(calib_dir, max_images)
        return Calibration(tuple(files), cs.calibration_digest(files))


def sample_method(onnx_path: str | Path) -> str:
    """How calibration samples are made for this model (part of the INT8 key)."""
    stem = Path(onnx_path).name
    for prefix, (_, method) in _SAMPLE_MAKERS.items():
        if stem.startswith(prefix):
            return method
    return LETTERBOX_METHOD


def graph_key(onnx_path: str | Path, precision: str, calibration: Calibration | None = None,
              int8_flavour: str = "tensorrt") -> dict[str, Any]:
    """Every input that decides the bytes of a precision graph (hash it with ``key_digest``)."""
    key: dict[str, Any] = {
        "source_sha256": ec.sha256_file(onnx_path),
        "precision": precision,
        "converter": converter_version(precision),
        "opset": model_opset(onnx_path),
        "format_version": GRAPH_FORMAT_VERSION,
    }
    if precision == "fp16":
        from onnxconverter_common import float16

        key["block_ops"] = sorted({*float16.DEFAULT_OP_BLOCK_LIST, *FP16_EXTRA_BLOCK_OPS})
        key["keep_io_types"] = True
    elif precision == "int8":
        if calibration is None:
            raise BackendError("precision int8 needs a calibration set (calib_dir / --calib-dir: a folder of "
                               "representative images); none given")
        if int8_flavour not in INT8_FLAVOURS:
            raise BackendError(f"int8 flavour must be one of {INT8_FLAVOURS}, got '{int8_flavour}'")
        key.update(calibration_sha256=calibration.digest, calibration_images=len(calibration.files))
        why_fp32 = int8_keeps_fp32(onnx_path)
        if why_fp32:  # the source graph runs: nothing is calibrated, so nothing else decides it
            key["int8_runs_fp32"] = why_fp32
        else:
            key.update(calibration_method=sample_method(onnx_path), quant=_quant_settings(int8_flavour))
    return key


def key_digest(key: dict[str, Any]) -> str:
    """Short hex sha256 over a key dict (canonical JSON)."""
    canonical = json.dumps(key, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[: ec.KEY_HEX_CHARS]


def _quant_settings(flavour: str) -> dict[str, Any]:
    symmetric = flavour == "tensorrt"
    return {"format": "QDQ", "per_channel": True, "weights": "QInt8",
            "activations": "QInt8" if symmetric else "QUInt8", "activation_symmetric": symmetric,
            "calibrate_method": "MinMax", "flavour": flavour,
            # Q/DQ on the inputs of weighted ops only (TensorRT's recommended placement): a Conv's raw output is not
            # quantised before its Clip/Relu, which in symmetric INT8 would spend half the range on clipped values.
            "no_output_qdq_ops": list(_NO_OUTPUT_QDQ_OPS),
            "fp32_nodes": {"rule": "output-sqnr-when-alone-int8", "ops": list(INT8_WEIGHTED_OPS),
                           "fraction": INT8_FP32_SENSITIVE_FRACTION, "samples": INT8_SENSITIVITY_SAMPLES}}


_NO_OUTPUT_QDQ_OPS: tuple[str, ...] = ("Conv", "Gemm")


def int8_keeps_fp32(onnx_path: str | Path) -> str:
    """Why ``int8`` runs this model entirely FP32 (INT8_FP32_MODELS), or "" when it is quantised."""
    name = Path(onnx_path).name
    return next((why for prefix, why in INT8_FP32_MODELS.items() if name.startswith(prefix)), "")


def output_sqnr_db(reference: list[np.ndarray], other: list[np.ndarray]) -> float:
    """Lowest SQNR (dB) over the graph outputs, ONNX Runtime's qdq_loss_debug definition."""
    from onnxruntime.quantization.qdq_loss_debug import compute_signal_to_quantization_noice_ratio as sqnr

    return min(float(sqnr(r, o)) for r, o in zip(reference, other))


def _run_outputs(path: Path, input_name: str, samples: np.ndarray) -> list[np.ndarray]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    runs = [session.run(None, {input_name: samples[i : i + 1]}) for i in range(len(samples))]
    return [np.concatenate([run[k] for run in runs]) for k in range(len(runs[0]))]


def sensitive_nodes(prepared: Path, samples: np.ndarray, quantize: Callable[[Path, list[str] | None, list[str]], None],
                    work_dir: Path) -> tuple[list[str], dict[str, float]]:
    """The weighted nodes INT8 keeps FP32 and every candidate's output SQNR when it alone is INT8 (lowest first).

    ``quantize(dst, nodes_to_quantize, nodes_to_exclude)`` writes a Q/DQ graph of ``prepared``.
    """
    import onnx

    model = onnx.load(str(prepared), load_external_data=False)
    candidates = [n.name for n in model.graph.node if n.op_type in INT8_WEIGHTED_OPS]
    if not candidates:
        return [], {}
    input_name = model.graph.input[0].name
    probe = samples[:: max(1, len(samples) // INT8_SENSITIVITY_SAMPLES)][:INT8_SENSITIVITY_SAMPLES]
    reference = _run_outputs(prepared, input_name, probe)
    scores: dict[str, float] = {}
    for name in candidates:
        alone = work_dir / "sensitivity.onnx"
        quantize(alone, [name], [])
        scores[name] = output_sqnr_db(reference, _run_outputs(alone, input_name, probe))
    ranked = sorted(candidates, key=lambda n: scores[n])
    count = math.ceil(INT8_FP32_SENSITIVE_FRACTION * len(candidates))
    return ranked[:count], {n: round(scores[n], 2) for n in ranked}


def graph_path_for(cache_dir: str | Path, onnx_path: str | Path, precision: str, digest: str) -> Path:
    """``<cache>/<onnx stem>.<precision>.<digest>.onnx``."""
    return Path(cache_dir) / f"{Path(onnx_path).stem}.{precision}.{digest}.onnx"


def precision_graph(
    onnx_path: str | Path,
    precision: str,
    cache_dir: str | Path | None = None,
    calib_dir: str | Path | None = None,
    calib_max_images: int = cs.DEFAULT_CALIB_MAX_IMAGES,
    int8_flavour: str = "tensorrt",
) -> Path:
    """The ONNX file to run for ``precision``: the source for fp32, else a cached converted graph (made if missing).

    A graph that cannot be written to the cache is still made (in a temporary folder, with one WARNING), so a
    read-only cache never stops a run.
    """
    onnx_path = Path(onnx_path)
    if precision not in PRECISIONS:
        raise BackendError(f"precision must be one of {', '.join(PRECISIONS)}, got '{precision}'")
    if precision == "fp32":
        return onnx_path
    calibration = None
    if precision == "int8":
        if not calib_dir:
            raise BackendError("precision int8 needs a calibration set: give calib_dir / --calib-dir, a folder of "
                               "representative images (the INT8 graph is calibrated and cached under its digest)")
        calibration = Calibration.from_dir(calib_dir, calib_max_images)
        why_fp32 = int8_keeps_fp32(onnx_path)
        if why_fp32:
            graph_key(onnx_path, precision, calibration, int8_flavour)  # same checks as a quantised model
            _LOG.info("%s: precision int8 runs this network FP32 (%s)", onnx_path.name, why_fp32)
            return onnx_path
    key = graph_key(onnx_path, precision, calibration, int8_flavour)
    folder = Path(cache_dir) if cache_dir else ec.engine_cache_dir_for(onnx_path)
    target = graph_path_for(folder, onnx_path, precision, key_digest(key))
    if _cached_graph_ok(target, key):
        return target
    _LOG.info("%s: making the %s graph %s", onnx_path.name, precision, target.name)
    with tempfile.TemporaryDirectory(prefix="hand_recon_graph_") as work:
        made = Path(work) / target.name
        if precision == "fp16":
            make_fp16_graph(onnx_path, made)
        else:
            assert calibration is not None
            samples = calibration_samples(onnx_path, calibration)
            recipe = make_int8_graph(onnx_path, made, samples, int8_flavour, Path(work))
            return _store(made, target, key, recipe)
        return _store(made, target, key)


def _cached_graph_ok(target: Path, key: dict[str, Any]) -> bool:
    sidecar = Path(str(target) + ".json")
    if not (target.is_file() and sidecar.is_file()):
        return False
    try:
        meta = json.loads(sidecar.read_text())
        return meta["key"] == key and meta["sha256"] == ec.sha256_file(target)
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _store(made: Path, target: Path, key: dict[str, Any], recipe: dict[str, Any] | None = None) -> Path:
    """Move ``made`` into the cache atomically with its sidecar (key, sha256 and, for INT8, the nodes kept FP32 and
    their ranking); on a write error keep a temporary copy."""
    meta = json.dumps({"key": key, "sha256": ec.sha256_file(made), **({"recipe": recipe} if recipe else {})},
                      indent=2, sort_keys=True).encode()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        shutil.copyfile(made, tmp)
        os.replace(tmp, target)
        ec.atomic_write(Path(str(target) + ".json"), meta)
        return target
    except OSError as exc:
        keep = Path(tempfile.mkdtemp(prefix="hand_recon_graph_"))
        _temp_dirs.append(str(keep))
        kept = keep / target.name
        shutil.copyfile(made, kept)
        _LOG.warning("cannot cache %s (%s: %s); using a temporary copy %s for this run", target, type(exc).__name__,
                     exc, kept)
        return kept


@atexit.register
def _remove_temp_dirs() -> None:
    for folder in _temp_dirs:
        shutil.rmtree(folder, ignore_errors=True)


def make_fp16_graph(src: Path, dst: Path) -> None:
    """FP16 weights and activations, FP32 inputs/outputs, the block-listed ops kept FP32."""
    import onnx
    from onnxconverter_common import float16

    model = onnx.load(str(src))
    block = sorted({*float16.DEFAULT_OP_BLOCK_LIST, *FP16_EXTRA_BLOCK_OPS})
    converted = float16.convert_float_to_float16(model, keep_io_types=True, op_block_list=block)
    onnx.save(converted, str(dst))


class _SampleReader:
    """ONNX Runtime CalibrationDataReader over a sample array, one sample per call (the graph's batch may be 1)."""

    def __init__(self, input_name: str, samples: np.ndarray) -> None:
        self._name = input_name
        self._samples = samples
        self._next = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._next >= len(self._samples):
            return None
        sample = self._samples[self._next : self._next + 1]
        self._next += 1
        return {self._name: np.ascontiguousarray(sample, np.float32)}

    def rewind(self) -> None:
        self._next = 0


def make_int8_graph(src: Path, dst: Path, samples: np.ndarray, flavour: str, work_dir: Path) -> dict[str, Any]:
    """INT8 Q/DQ graph: ``quant_pre_process``, the sensitive nodes ranked and kept FP32, then ``quantize_static``
    (QDQ, per-channel weights) on ``samples``; returns what was kept FP32 and the ranking (for the sidecar)."""
    import inspect

    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    inputs = ec.read_onnx_inputs(src)
    if len(inputs) != 1:
        raise BackendError(f"INT8 calibration feeds one image input; {src.name} has {[i.name for i in inputs]}")
    cs.check_sample_count(samples, src.name)
    prepared = work_dir / f"{src.stem}.pre.onnx"
    quant_pre_process(str(src), str(prepared), skip_symbolic_shape=True)
    settings = _quant_settings(flavour)
    model = onnx.load(str(prepared))
    for index, node in enumerate(model.graph.node):  # exclusions go by node name: every node needs one
        if not node.name:
            node.name = f"{node.op_type}_{index}"
    onnx.save(model, str(prepared))
    # MinMax ranges do not depend on which nodes are quantised: newer ONNX Runtime (calibration_cache_path)
    # calibrates once for all sensitivity runs; older versions recompute the same ranges each time.
    cache = ({"calibration_cache_path": str(work_dir / "ranges.json")}
             if "calibration_cache_path" in inspect.signature(quantize_static).parameters else {})

    def quantize(out: Path, nodes_to_quantize: list[str] | None, nodes_to_exclude: list[str]) -> None:
        quantize_static(
            str(prepared), str(out), _SampleReader(inputs[0].name, samples),
            quant_format=QuantFormat.QDQ, per_channel=True,
            nodes_to_quantize=nodes_to_quantize, nodes_to_exclude=nodes_to_exclude,
            activation_type=QuantType.QInt8 if settings["activations"] == "QInt8" else QuantType.QUInt8,
            weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax,
            extra_options={"ActivationSymmetric": settings["activation_symmetric"], "WeightSymmetric": True,
                           "OpTypesToExcludeOutputQuantization": list(_NO_OUTPUT_QDQ_OPS)},
            **cache,
        )

    keep, ranking = sensitive_nodes(prepared, samples, quantize, work_dir)
    _LOG.info("%s: INT8 keeps %d of %d weighted nodes FP32 (lowest output SQNR when INT8 alone): %s", src.name,
              len(keep), len(ranking), ", ".join(keep))
    quantize(dst, None, keep)
    return {"fp32_nodes": keep, "output_sqnr_db_when_alone_int8": ranking}


def calibration_samples(onnx_path: Path, calibration: Calibration) -> np.ndarray:
    """Network inputs made from the calibration images (hand crops for the landmark network, else letterboxed)."""
    inputs = ec.read_onnx_inputs(onnx_path)
    if len(inputs) != 1:
        raise BackendError(f"INT8 calibration feeds one image input; {onnx_path.name} has {[i.name for i in inputs]}")
    sample_shape = tuple(int(d) for d in inputs[0].shape[1:] if isinstance(d, int))
    if len(sample_shape) != len(inputs[0].shape) - 1:
        raise BackendError(f"INT8 calibration: {onnx_path.name} input has dynamic image axes {inputs[0].shape}")
    for prefix, (target, _) in _SAMPLE_MAKERS.items():
        if onnx_path.name.startswith(prefix):
            module, function = target.split(":")
            maker: SampleMaker = getattr(importlib.import_module(module), function)
            images = cs.read_rgb_images(list(calibration.files))
            return cs.check_sample_count(maker(onnx_path, images, sample_shape),
                                         f"{onnx_path.name} (hand crops found by the FP32 detector in "
                                         f"{len(images)} image(s) of {calibration.files[0].parent})")
    images = cs.read_rgb_images(list(calibration.files))
    samples = _letterboxed(images, sample_shape)
    return cs.check_sample_count(samples, f"{calibration.files[0].parent} ({len(images)} readable image(s))")


def _letterboxed(images: list[np.ndarray], sample_shape: tuple[int, ...]) -> np.ndarray:
    if len(sample_shape) != 3 or 3 not in (sample_shape[0], sample_shape[-1]):
        raise BackendError(f"INT8 calibration needs an image input (H,W,3) or (3,H,W); the model has {sample_shape}")
    channels_last = sample_shape[-1] == 3
    height, width = sample_shape[:2] if channels_last else sample_shape[1:]
    out = [cs.letterbox(img, height, width).astype(np.float32) / 255.0 for img in images]
    if not channels_last:
        out = [o.transpose(2, 0, 1) for o in out]
    return np.ascontiguousarray(np.stack(out)) if out else np.zeros((0, *sample_shape), np.float32)
