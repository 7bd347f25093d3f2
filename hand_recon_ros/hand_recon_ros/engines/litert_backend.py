"""LiteRT backend: the networks' original ``.tflite`` files run by ``ai-edge-litert`` (XNNPACK) on the CPU.

Nothing is converted: the model is MediaPipe's own file (weights stored as fp16 and dequantised to fp32 at load).
Precision fp32 (and auto) runs it through LiteRT's ``Interpreter``; precision fp16 through LiteRT's ``CompiledModel``
with XNNPACK's FORCE_FP16 flag (litert_compiled.py): fp16 arithmetic, for CPUs that have it (ARMv8.2+ cores, x86
with AVX512-FP16), opt-in because its keypoints move by up to ~1 px (docs/backends.md). Given an ONNX path from
the model cache it runs the ``.tflite`` beside it (``palm_detection_full.<key>.onnx`` → ``palm_detection_full.tflite``)
and takes the interface (input/output names, dynamic batch) from the ONNX file, so it is a drop-in for the other
backends. Interpreters are kept for a few batch sizes only (the file's own, two hands, ``max_batch``): XNNPACK
re-plans for 40-80 ms on every resize and each kept size costs 20-55 MB, so any other batch runs as chunks of the
kept sizes (5 crops: 2 + 2 + 1).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from hand_recon_ros.engines import engine_cache as ec
from hand_recon_ros.engines.base import Backend, BackendError, BackendUnavailableError, TensorSpec
from hand_recon_ros.engines.torch_backend import TFLITE_SUFFIX, tflite_beside

_LOG = logging.getLogger(__name__)

#: Precisions this backend can run: fp32 (auto), or fp16 through XNNPACK's FORCE_FP16 flag.
LITERT_PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "auto")  # auto = fp32 here
#: Batch sizes given their own interpreter besides the file's own and max_batch: two hands per frame.
KEPT_BATCH_SIZES: tuple[int, ...] = (2,)
DEFAULT_MAX_BATCH = 2
#: Most XNNPACK threads used when intra_op_threads is 0 (more threads than cores only add wake-up cost).
MAX_DEFAULT_THREADS = 4
_FP16_WARNED: set[str] = set()  # fp16-emulation warnings given (once per reason and process)
INSTALL_HINT = "pip install ai-edge-litert (wheels: CPython 3.9-3.13, manylinux x86_64/aarch64, macOS arm64)"


def litert_unavailable_reason() -> str | None:
    """None when ``ai_edge_litert`` imports, else the reason (missing wheel, unsupported platform)."""
    try:
        from ai_edge_litert import interpreter  # noqa: F401
    except ImportError as exc:
        return f"module ai_edge_litert not installed ({exc}); {INSTALL_HINT}"
    return None


def default_thread_count() -> int:
    """XNNPACK threads for intra_op_threads = 0: the cores this process may use, at most MAX_DEFAULT_THREADS."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, MAX_DEFAULT_THREADS))


class LiteRTBackend(Backend):
    """The original TFLite model through LiteRT/XNNPACK; options: ``intra_op_threads`` (0 = all cores, ≤ 4),
    ``precision`` (fp32 = auto, or fp16), ``warmup_runs``."""

    name = "litert"
    option_names = frozenset({"intra_op_threads", "precision", "warmup_runs", "max_batch"})

    def __init__(self, model_path: str | Path, **options: Any) -> None:
        super().__init__(model_path, **options)
        precision = options.get("precision")
        if precision is not None and str(precision).lower() not in LITERT_PRECISIONS:
            raise BackendError(
                f"{self.name}: precision '{precision}' is not supported: LiteRT runs the original .tflite in "
                f"fp32 or fp16 only (choose fp32 or fp16, or onnxruntime-cpu / a TensorRT backend for int8)"
            )
        self.precision = "fp16" if str(precision).lower() == "fp16" else "fp32"
        threads = options.get("intra_op_threads", 0)
        if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 0:
            raise BackendError(f"{self.name}: intra_op_threads must be an integer >= 0 (0 = default), got {threads!r}")
        self.threads = int(threads) or default_thread_count()
        self.tflite_path = self.model_path if self.model_path.suffix == TFLITE_SUFFIX else tflite_beside(model_path)
        self._interpreter_class: Any = None
        self._interpreters: dict[int, tuple[Any, list[int], list[int]]] = {}
        self._native_batch = 1
        self.max_batch = int(options.get("max_batch", DEFAULT_MAX_BATCH))
        if self.max_batch < 1:
            raise BackendError(f"{self.name}: max_batch must be >= 1, got {self.max_batch}")
        self._sizes: tuple[int, ...] = (1,)

    def _make_interpreter(self, batch: int | None) -> tuple[Any, list[int], list[int]]:
        """A ready interpreter (resized to ``batch`` when given) with its input and output tensor indices."""
        try:
            interpreter = self._interpreter_class(model_path=str(self.tflite_path), num_threads=self.threads)
        except (ValueError, TypeError, OverflowError) as exc:  # how LiteRT refuses a thread count or a bad file
            raise BackendError(f"{self.name}: LiteRT refused intra_op_threads={self.threads} or the model "
                               f"{self.tflite_path}: {exc}") from exc
        except Exception as exc:
            raise BackendError(f"{self.name}: cannot load {self.tflite_path}: {exc}") from exc
        inputs = interpreter.get_input_details()
        if batch is not None:
            for detail in inputs:
                interpreter.resize_tensor_input(detail["index"], [batch, *detail["shape"][1:]])
        try:
            interpreter.allocate_tensors()
        except Exception as exc:
            raise BackendError(f"{self.name}: {self.tflite_path.name}: cannot allocate batch {batch}: {exc}") from exc
        outputs = interpreter.get_output_details()
        by_name = {d["name"]: d["index"] for d in outputs}
        missing = [spec.name for spec in self.outputs if spec.name not in by_name] if self.outputs else []
        if missing:
            raise BackendError(f"{self.name}: {self.tflite_path.name} lacks output(s) {missing} "
                               f"(has {sorted(by_name)})")
        out_index = [by_name[spec.name] for spec in self.outputs] if self.outputs else [d["index"] for d in outputs]
        return interpreter, [d["index"] for d in inputs], out_index

    def _load_impl(self) -> tuple[list[TensorSpec], list[TensorSpec]]:
        reason = litert_unavailable_reason()
        if reason is not None:
            raise BackendUnavailableError(f"{self.name}: {reason}")
        from ai_edge_litert.interpreter import Interpreter

        if self.precision == "fp16":
            from hand_recon_ros.engines.litert_compiled import CompiledModelInterpreter, fp16_arithmetic_missing

            missing = fp16_arithmetic_missing()
            if missing is not None and missing not in _FP16_WARNED:
                _FP16_WARNED.add(missing)
                _LOG.warning("%s: precision fp16 runs, but %s: XNNPACK emulates fp16 there, usually slower than "
                             "fp32 (measure with hand-recon bench)", self.name, missing)
            self._interpreter_class = CompiledModelInterpreter
        else:
            self._interpreter_class = Interpreter
        if not self.tflite_path.is_file():
            raise BackendError(f"{self.name}: no TFLite file for {self.model_path.name}: expected {self.tflite_path} "
                               "(litert runs the original .tflite; for an ONNX file without one choose backend "
                               "onnxruntime-cpu)")
        interpreter, _, _ = self._make_interpreter(None)
        in_details, out_details = interpreter.get_input_details(), interpreter.get_output_details()
        self._native_batch = int(in_details[0]["shape"][0])
        if self.model_path.suffix == TFLITE_SUFFIX:  # the file's own names and fixed shapes
            inputs = [TensorSpec(d["name"], tuple(int(v) for v in d["shape"]), np.dtype(d["dtype"]))
                      for d in in_details]
            outputs = [TensorSpec(d["name"], tuple(int(v) for v in d["shape"]), np.dtype(d["dtype"]))
                       for d in out_details]
        else:  # the ONNX file's interface (its input is renamed, its batch may be dynamic)
            onnx_in, onnx_out = ec.read_onnx_io(self.model_path)
            if len(onnx_in) != len(in_details):
                raise BackendError(f"{self.name}: {self.model_path.name} has {len(onnx_in)} inputs, "
                                   f"{self.tflite_path.name} has {len(in_details)}")
            inputs = [TensorSpec(t.name, t.shape, t.dtype) for t in onnx_in]
            outputs = [TensorSpec(t.name, t.shape, t.dtype) for t in onnx_out]
        self.inputs, self.outputs = inputs, outputs
        dynamic = all(not isinstance(spec.shape[0], int) for spec in inputs)
        kept = {self._native_batch, self.max_batch, *KEPT_BATCH_SIZES} if dynamic else {self._native_batch}
        self._sizes = tuple(sorted(size for size in kept if size <= max(self.max_batch, self._native_batch)))
        self._interpreters = {self._native_batch: self._make_interpreter(None)}
        for _ in range(int(self.options.get("warmup_runs", 1))):
            self._invoke({spec.name: np.zeros([self._native_batch, *spec.shape[1:]], spec.dtype) for spec in inputs})
        return inputs, outputs

    def _invoke(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        batch = int(next(iter(feeds.values())).shape[0])
        entry = self._interpreters.get(batch)
        if entry is None:
            entry = self._interpreters[batch] = self._make_interpreter(batch)
            _LOG.debug("%s: %s: interpreter for batch %d", self.name, self.tflite_path.name, batch)
        interpreter, in_index, out_index = entry
        try:
            for spec, index in zip(self.inputs, in_index):
                interpreter.set_tensor(index, np.ascontiguousarray(feeds[spec.name]))
            interpreter.invoke()
        except (ValueError, RuntimeError) as exc:
            raise BackendError(f"{self.name}: {self.tflite_path.name}: inference failed: {exc}") from exc
        return {spec.name: interpreter.get_tensor(index) for spec, index in zip(self.outputs, out_index)}

    def run_filled(self, batch: int, fill: Any) -> dict[str, np.ndarray]:
        """Backend.run_filled writing straight into the interpreter's own input tensor (no set_tensor copy) for the
        kept batch sizes; any other batch goes through a buffer and chunks as ``run`` does."""
        if not self._loaded:
            self.load()
        if len(self.inputs) != 1 or batch not in self._sizes:
            return super().run_filled(batch, fill)
        entry = self._interpreters.get(batch)
        if entry is None:
            entry = self._interpreters[batch] = self._make_interpreter(batch)
        interpreter, in_index, out_index = entry
        view = interpreter.tensor(in_index[0])()  # valid until the next invoke: dropped before it
        try:
            fill(view)
        finally:
            del view
        try:
            interpreter.invoke()
        except (ValueError, RuntimeError) as exc:  # also a fill that kept the array (LiteRT refuses to invoke)
            raise BackendError(f"{self.name}: {self.tflite_path.name}: inference failed: {exc}") from exc
        return {spec.name: interpreter.get_tensor(index) for spec, index in zip(self.outputs, out_index)}

    def chunk_sizes(self, batch: int) -> list[int]:
        """How a batch is split over the kept interpreter sizes: largest kept size that fits first."""
        chunks, left = [], batch
        while left > 0:
            size = max(s for s in self._sizes if s <= left) if left >= self._sizes[0] else self._sizes[0]
            chunks.append(size)
            left -= size
        return chunks

    def _run_impl(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        batch = int(next(iter(feeds.values())).shape[0])
        if batch in self._sizes:
            return self._invoke(feeds)
        parts, start = [], 0
        for size in self.chunk_sizes(batch):
            parts.append(self._invoke({k: v[start:start + size] for k, v in feeds.items()}))
            start += size
        return {name: np.concatenate([p[name] for p in parts], axis=0) for name in parts[0]}

    def _close_impl(self) -> None:
        self._interpreters = {}

    def describe(self) -> str:
        """Backend, thread count and the file it runs."""
        return f"{self.name} (XNNPACK {self.precision}, {self.threads} threads, {self.tflite_path.name})"


def litert_model_reason(model_path: str | Path) -> str | None:
    """None when LiteRT can run ``model_path`` (a .tflite, or an ONNX export with its .tflite beside it), else why."""
    path = Path(model_path)
    tflite = path if path.suffix == TFLITE_SUFFIX else tflite_beside(path)
    return None if tflite.is_file() else f"no TFLite file for {path.name} (expected {tflite})"
