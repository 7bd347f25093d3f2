"""TensorRT 10.x / 11.x backend: a strongly typed engine built from the precision graph, cached by key, run.

The precision is in the ONNX graph (``precision_graphs``: FP16 tensors, INT8 Q/DQ nodes), never in builder flags:
TensorRT 11 removed ``BuilderFlag.FP16/INT8`` and implicit INT8 calibration, and TensorRT 10 builds the same graph
with ``NetworkDefinitionCreationFlag.STRONGLY_TYPED``, so one code path serves both (test_tensorrt_api_names.py
checks every TensorRT name used here against both releases' bindings). ``tensorrt`` (and torch-CUDA or pycuda for
device memory) are imported only when this backend loads; the key is ``engine_key.engine_key_for_options``.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np

from hand_recon_ros.engines import engine_cache as ec
from hand_recon_ros.engines import engine_key as ek
from hand_recon_ros.engines import precision_graphs as pg
from hand_recon_ros.engines.base import Backend, BackendError, BackendUnavailableError, TensorSpec
from hand_recon_ros.engines.calibration_set import (  # noqa: F401 - re-exported for existing callers
    CALIB_IMAGE_SUFFIXES,
    DEFAULT_CALIB_MAX_IMAGES,
    calibration_digest,
    calibration_files,
    load_calibration_images,
)
from hand_recon_ros.engines.cuda_buffers import DeviceBuffers, create_device_buffers
from hand_recon_ros.engines.tensorrt_version import TENSORRT_FIX, unsupported_version_reason

_LOG = logging.getLogger(__name__)

DEFAULT_WARMUP_RUNS = 2
#: Lowest compute capability with fast FP16 / INT8 kernels (TensorRT 11 has no platform_has_fast_* query).
MIN_FP16_COMPUTE_CAPABILITY = (5, 3)
MIN_INT8_COMPUTE_CAPABILITY = (6, 1)


def import_tensorrt() -> Any:
    """Import ``tensorrt`` (10.x or 11.x) or raise BackendUnavailableError naming the module/version and the fix."""
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise BackendUnavailableError(f"tensorrt: module not installed ({exc}); fix: {TENSORRT_FIX}") from exc
    reason = unsupported_version_reason(getattr(trt, "__version__", "unknown"))
    if reason is not None:
        raise BackendUnavailableError(f"tensorrt: {reason}")
    return trt


def precision_support_problem(precision: str, device: ek.DeviceIdentity) -> str | None:
    """Why ``device`` cannot run ``precision`` fast (names the GPU and the fix), or None."""
    needed = {"fp16": MIN_FP16_COMPUTE_CAPABILITY, "int8": MIN_INT8_COMPUTE_CAPABILITY}.get(precision)
    if needed is None:
        return None
    try:
        have = tuple(int(p) for p in device.compute_capability.split("."))
    except ValueError:
        return None
    if have < needed:
        return (f"GPU {device.name} (compute capability {device.compute_capability}) has no fast {precision} "
                f"kernels (needs {needed[0]}.{needed[1]}+); fix: precision fp32")
    return None


def oversized_batch(label: str, shapes: dict[str, tuple[int, ...]], profile: ec.ProfileShapes) -> int | None:
    """None when every input shape fits the engine profile; the batch when only a dynamic axis 0 is too large
    (the backend then runs it in chunks); a BackendError naming the input for any other misfit."""
    oversized = None
    for name, shape in shapes.items():
        lo, _, hi = profile[name]
        bad_axes = [i for i, (a, low, high) in enumerate(zip(shape, lo, hi)) if a < low or a > high]
        if bad_axes == [0] and shape[0] > hi[0] and lo[0] != hi[0]:
            oversized = shape[0]
        elif bad_axes:
            raise BackendError(f"{label}: input '{name}' has shape {tuple(shape)}, outside the engine profile "
                               f"{lo}..{hi}")
    batches = {shape[0] for shape in shapes.values() if shape}
    if oversized is not None and len(batches) != 1:
        raise BackendError(f"{label}: inputs disagree on the batch size ({sorted(batches)}); cannot run in chunks")
    return oversized


def _make_trt_logger(trt: Any) -> Any:
    """A ``trt.ILogger`` that forwards TensorRT's messages to Python logging."""
    levels = {
        trt.ILogger.Severity.INTERNAL_ERROR: logging.CRITICAL,
        trt.ILogger.Severity.ERROR: logging.ERROR,
        trt.ILogger.Severity.WARNING: logging.WARNING,
        trt.ILogger.Severity.INFO: logging.DEBUG,
        trt.ILogger.Severity.VERBOSE: logging.DEBUG,
    }

    class _PythonLogger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)

        def log(self, severity: Any, msg: str) -> None:
            _LOG.log(levels.get(severity, logging.INFO), "TensorRT: %s", msg)

    return _PythonLogger()


class TensorRTBackend(Backend):
    """Strongly typed TensorRT engine from the precision graph, cached by key; one execution context, one stream.

    Options: precision (auto = fp16 | fp32 | int8 with calib_dir), max_batch, opt_batch, workspace_mb, cache_dir,
    calib_dir, calib_max_images, warmup_runs, rebuild, buffers (auto|torch|pycuda), device_id.
    """

    name = "tensorrt"
    option_names = frozenset({
        "precision", "max_batch", "opt_batch", "workspace_mb", "cache_dir", "calib_dir", "calib_max_images",
        "warmup_runs", "rebuild", "buffers", "device_id",
    })

    def __init__(self, model_path: str | Path, **options: Any) -> None:
        super().__init__(model_path, **options)
        try:
            self.precision = pg.resolve_precision(options.get("precision"), ek.TENSORRT_DEFAULT_PRECISION)
        except BackendError as exc:
            raise BackendError(f"{self.name}: {exc}") from None
        if self.precision == "int8" and not options.get("calib_dir"):
            raise BackendError(f"{self.name}: precision int8 needs calib_dir (a folder of representative images)")
        self.max_batch = int(options.get("max_batch", ec.DEFAULT_MAX_BATCH))
        self.opt_batch = options.get("opt_batch")
        self.workspace_bytes = int(options.get("workspace_mb", ec.DEFAULT_WORKSPACE_MB)) << 20
        self.cache_dir = Path(options.get("cache_dir") or ec.engine_cache_dir_for(model_path))
        self.warmup_runs = int(options.get("warmup_runs", DEFAULT_WARMUP_RUNS))
        self.device_id = int(options.get("device_id", 0))
        self.engine_path: Path | None = None
        self.graph_path: Path | None = None
        self.built = False
        self._trt: Any = None
        self._runtime: Any = None
        self._engine: Any = None
        self._context: Any = None
        self._buffers: DeviceBuffers | None = None
        self._profile: ec.ProfileShapes = {}
        self._output_list: list[TensorSpec] = []
        self._device_dtypes: dict[str, np.dtype] = {}
        self._chunk_warned = False
        self._lock = threading.Lock()
        self._gpu = ("", "")
        self._device: ek.DeviceIdentity | None = None

    # -- build -----------------------------------------------------------------------------------------
    def _build_plan(self, key: ec.EngineKey, profiles: ec.ProfileShapes) -> bytes:
        trt = self._trt
        logger = self._trt_logger
        # The graph is made (FP16 conversion, INT8 calibration on the CPU) only when an engine must be built.
        self.graph_path = pg.precision_graph(
            self.model_path, self.precision, self.options.get("cache_dir"), self.options.get("calib_dir"),
            int(self.options.get("calib_max_images", DEFAULT_CALIB_MAX_IMAGES)), ek.TENSORRT_INT8_FLAVOUR)
        builder = trt.Builder(logger)
        # Strongly typed: the graph's tensor types (FP16, Q/DQ INT8) decide the precision; no precision flags.
        network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
        parser = trt.OnnxParser(network, logger)
        if not parser.parse_from_file(str(self.graph_path)):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise BackendError(f"{self.name}: TensorRT cannot parse {self.graph_path}: {errors}")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, self.workspace_bytes)
        # Shapes go only on inputs the parsed network leaves dynamic (-1); static inputs need no profile.
        profile = builder.create_optimization_profile()
        dynamic = [network.get_input(i).name for i in range(network.num_inputs)
                   if any(d < 0 for d in network.get_input(i).shape)]
        for name in dynamic:
            profile.set_shape(name, *profiles[name])
        if dynamic:
            config.add_optimization_profile(profile)
        timing_path = ec.timing_cache_path_for(self.cache_dir, key)
        timing_bytes = timing_path.read_bytes() if timing_path.is_file() else b""
        timing_cache = config.create_timing_cache(timing_bytes)
        if not config.set_timing_cache(timing_cache, ignore_mismatch=False):
            _LOG.warning("%s: timing cache %s does not match this TensorRT/GPU; starting a new one", self.name,
                         timing_path)
            config.set_timing_cache(config.create_timing_cache(b""), ignore_mismatch=False)
        plan = builder.build_serialized_network(network, config)
        if plan is None:
            raise BackendError(f"{self.name}: TensorRT failed to build an engine for {self.graph_path} "
                               "(see the TensorRT log lines above)")
        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            ec.atomic_write(timing_path, bytes(config.get_timing_cache().serialize()))
        except OSError as exc:  # the engine is built; a timing cache that cannot be saved only costs the next build
            _LOG.warning("%s: cannot save the timing cache %s (%s: %s)", self.name, timing_path,
                         type(exc).__name__, exc)
        return bytes(plan)

    # -- Backend ---------------------------------------------------------------------------------------
    def _load_impl(self) -> tuple[list[TensorSpec], list[TensorSpec]]:
        self._trt = import_tensorrt()
        self._buffers = create_device_buffers(self.options.get("buffers", "auto"), self.device_id)
        # Building, deserialising and warm-up all need our device/context current.
        self._buffers.push()
        try:
            result = self._load_engine(self._trt)
        except Exception:
            self._buffers.pop()
            self._close_impl()
            raise
        self._buffers.pop()
        return result

    def _deserialise(self, runtime: Any, plan: bytes) -> Any:
        """The engine, or None when TensorRT refuses the plan (corrupt, foreign, other TensorRT version)."""
        try:
            return runtime.deserialize_cuda_engine(plan)
        except Exception as exc:  # noqa: BLE001 - some bindings raise instead of returning None
            _LOG.warning("%s: TensorRT refused the engine plan (%s: %s)", self.name, type(exc).__name__, exc)
            return None

    def _load_engine(self, trt: Any) -> tuple[list[TensorSpec], list[TensorSpec]]:
        assert self._buffers is not None
        self._device = ek.device_identity_of(self._buffers)
        self._gpu = (self._device.name, self._device.compute_capability)
        problem = precision_support_problem(self.precision, self._device)
        if problem:
            raise BackendUnavailableError(f"{self.name}: {problem}")
        self._trt_logger = _make_trt_logger(trt)
        options = {**self.options, "precision": self.precision}
        key, self.engine_path = ek.engine_path_for_options(self.model_path, options, str(trt.__version__), self._device)
        profiles = ec.compute_profiles(ec.read_onnx_inputs(self.model_path), self.max_batch,
                                       None if self.opt_batch is None else int(self.opt_batch))
        label = f"{self.name}: {self.model_path.name}"
        force = "rebuild requested" if self.options.get("rebuild") else None
        plan, self.built = ec.load_or_build_engine(
            self.engine_path, key, lambda: self._build_plan(key, profiles), label, force)
        runtime = trt.Runtime(self._trt_logger)
        engine = self._deserialise(runtime, plan)
        if engine is None and not self.built:
            plan, self.built = ec.load_or_build_engine(
                self.engine_path, key, lambda: self._build_plan(key, profiles), label,
                "the cached engine failed to deserialise (corrupt, or built by another TensorRT)")
            engine = self._deserialise(runtime, plan)
        if engine is None:
            raise BackendError(f"{label}: TensorRT cannot deserialise the engine it just built")
        self._runtime, self._engine = runtime, engine
        self._context = engine.create_execution_context()
        if self._context is None:
            raise BackendError(f"{label}: TensorRT could not create an execution context (GPU memory?)")
        inputs, outputs = self._bind(trt, engine)
        self._warm_up(inputs)
        _LOG.info("%s: ready (%s; device memory %d MiB)", label, self.describe(),
                  int(engine.device_memory_size_v2) >> 20)
        return inputs, outputs

    def _bind(self, trt: Any, engine: Any) -> tuple[list[TensorSpec], list[TensorSpec]]:
        """Read I/O specs, allocate every tensor at its largest shape, and set the tensor addresses once.

        Host-side dtypes are the FP32 source graph's; a tensor the engine keeps in another type (FP16 I/O) is
        cast on the way in and out.
        """
        assert self._buffers is not None
        declared_in, declared_out = ec.read_onnx_io(self.model_path)
        declared = {spec.name: spec.dtype for spec in [*declared_in, *declared_out]}
        inputs: list[TensorSpec] = []
        outputs: list[TensorSpec] = []
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        for name in names:
            device_dtype = ec.numpy_dtype_for_trt(engine.get_tensor_dtype(name).name)
            self._device_dtypes[name] = device_dtype
            dtype = declared.get(name, device_dtype)
            shape = tuple(None if d < 0 else int(d) for d in engine.get_tensor_shape(name))
            if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                if None in shape:
                    lo, opt, hi = (tuple(int(d) for d in s) for s in engine.get_tensor_profile_shape(name, 0))
                else:
                    lo = opt = hi = tuple(int(d) for d in shape)
                self._profile[name] = (lo, opt, hi)
                if not self._context.set_input_shape(name, hi):
                    raise BackendError(f"{self.name}: {self.model_path.name}: TensorRT refused shape {hi} for input "
                                       f"'{name}' (profile {lo}..{hi})")
                self._buffers.allocate(name, hi, device_dtype)
                inputs.append(TensorSpec(name, shape, dtype))
            else:
                outputs.append(TensorSpec(name, shape, dtype))
        for spec in outputs:
            largest = tuple(int(d) for d in self._context.get_tensor_shape(spec.name))
            if any(d < 0 for d in largest):
                raise BackendError(f"{self.name}: output '{spec.name}' has a data-dependent shape {largest}; "
                                   "not supported")
            self._buffers.allocate(spec.name, largest, self._device_dtypes[spec.name])
        for name in names:
            self._context.set_tensor_address(name, self._buffers.pointer(name))
        self._output_list = outputs
        return inputs, outputs

    def _warm_up(self, inputs: list[TensorSpec]) -> None:
        feeds = {spec.name: np.zeros(self._profile[spec.name][1], dtype=spec.dtype) for spec in inputs}
        for _ in range(self.warmup_runs):
            self._execute(feeds)

    def _execute(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        assert self._buffers is not None
        with self._lock:
            self._buffers.push()
            try:
                for name, array in feeds.items():
                    if not self._context.set_input_shape(name, tuple(array.shape)):
                        raise BackendError(f"{self.name}: {self.model_path.name}: TensorRT refused shape "
                                           f"{array.shape} for input '{name}'")
                    self._buffers.upload(name, array.astype(self._device_dtypes[name], copy=False))
                if not self._context.execute_async_v3(self._buffers.stream_handle):
                    raise BackendError(f"{self.name}: {self.model_path.name}: execute_async_v3 failed")
                return {
                    spec.name: self._buffers.download(
                        spec.name, tuple(int(d) for d in self._context.get_tensor_shape(spec.name))
                    ).astype(spec.dtype, copy=False)
                    for spec in self._output_list
                }
            finally:
                self._buffers.pop()

    def _run_impl(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        label = f"{self.name}: {self.model_path.name}"
        batch = oversized_batch(label, {k: v.shape for k, v in feeds.items()}, self._profile)
        if batch is None:
            return self._execute(feeds)
        # More hands than the engine's profile: run in chunks of max_batch (rows are independent), warn once.
        step = min(self._profile[name][2][0] for name in feeds)
        if not self._chunk_warned:
            self._chunk_warned = True
            _LOG.warning("%s: %s: batch %d exceeds the engine's max_batch %d; running it in chunks (rebuild with "
                         "max_batch >= %d to run it in one call)", self.name, self.model_path.name, batch, step, batch)
        parts = [self._execute({k: v[i : i + step] for k, v in feeds.items()}) for i in range(0, batch, step)]
        return {name: np.concatenate([p[name] for p in parts], axis=0) for name in parts[0]}

    def _close_impl(self) -> None:
        """Execution context, engine and runtime go first, with our CUDA context current; then the buffers."""
        buffers = self._buffers
        if buffers is not None:
            buffers.push()
        try:
            self._context = None
            self._engine = None
            self._runtime = None
        finally:
            if buffers is not None:
                buffers.pop()
        if buffers is not None:
            buffers.release()
        self._buffers = None
        self._profile = {}

    def describe(self) -> str:
        """Backend, precision, GPU and engine file."""
        engine = self.engine_path.name if self.engine_path else "not built"
        provider = self._buffers.provider if self._buffers else "-"
        return (f"{self.name} ({self.precision}, max_batch {self.max_batch}, GPU {self._gpu[0] or '?'} "
                f"sm {self._gpu[1] or '?'}, device {self.device_id}, buffers {provider}, engine {engine})")
