"""TensorRT 10 backend: builds an engine from the ONNX file (FP16 by default), caches it under a key, runs it.

``tensorrt`` (and torch-CUDA or pycuda for device memory) are imported only when this backend loads, so the
package works without them; a missing module is a ``BackendUnavailableError`` naming it and the fix.
Engine validity (key, sidecar, "build is running" log) lives in ``engine_cache`` and is tested without a GPU.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np

from hand_recon_ros.engines import engine_cache as ec
from hand_recon_ros.engines.base import Backend, BackendError, BackendUnavailableError, TensorSpec
from hand_recon_ros.engines.cuda_buffers import DeviceBuffers, create_device_buffers

_LOG = logging.getLogger(__name__)

DEFAULT_WARMUP_RUNS = 2
DEFAULT_CALIB_MAX_IMAGES = 256
CALIB_IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp")
TENSORRT_FIX = (
    "install the TensorRT 10 Python wheels ('pip install tensorrt-cu12') on a machine with an NVIDIA GPU, "
    "or on Jetson use JetPack's python3-libnvinfer; or choose backend onnxruntime-cpu"
)


def import_tensorrt() -> Any:
    """Import ``tensorrt`` (major version 10+) or raise BackendUnavailableError naming the module and the fix."""
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise BackendUnavailableError(f"tensorrt: module not installed ({exc}); fix: {TENSORRT_FIX}") from exc
    major = int(str(trt.__version__).split(".")[0])
    if major < 10:
        raise BackendUnavailableError(
            f"tensorrt: version {trt.__version__} found, this backend needs TensorRT 10 (execute_async_v3, "
            f"tensor-name API); fix: {TENSORRT_FIX}"
        )
    return trt


def _letterbox(image_rgb: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize keeping aspect ratio into height×width, zero border (MediaPipe's palm input convention)."""
    import cv2

    scale = min(height / image_rgb.shape[0], width / image_rgb.shape[1])
    new_h = max(1, round(image_rgb.shape[0] * scale))
    new_w = max(1, round(image_rgb.shape[1] * scale))
    resized = cv2.resize(image_rgb, (new_w, new_h), interpolation=cv2.INTER_AREA)
    out = np.zeros((height, width, image_rgb.shape[2]), dtype=resized.dtype)
    top, left = (height - new_h) // 2, (width - new_w) // 2
    out[top : top + new_h, left : left + new_w] = resized
    return out


def calibration_files(calib_dir: str | Path, max_images: int = DEFAULT_CALIB_MAX_IMAGES) -> list[Path]:
    """Sorted image files in ``calib_dir`` (at most ``max_images``); an empty or missing folder is an error."""
    folder = Path(calib_dir)
    if not folder.is_dir():
        raise BackendError(f"calibration folder not found: {folder}")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in CALIB_IMAGE_SUFFIXES)[:max_images]
    if not files:
        raise BackendError(f"calibration folder {folder} has no images ({', '.join(CALIB_IMAGE_SUFFIXES)})")
    return files


def calibration_digest(files: list[Path]) -> str:
    """sha256 over the calibration images' names and bytes (part of the INT8 engine key)."""
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode())
        digest.update(ec.sha256_file(path).encode())
    return digest.hexdigest()


def load_calibration_images(files: list[Path], input_shape: tuple[int, ...]) -> np.ndarray:
    """Images preprocessed like the network input: RGB, letterboxed to H×W, float32 in [0, 1], NHWC or NCHW.

    ``input_shape`` is one input's shape without the batch axis: (H, W, 3) or (3, H, W).
    """
    import cv2

    if len(input_shape) != 3 or 3 not in (input_shape[0], input_shape[-1]):
        raise BackendError(f"INT8 calibration needs an image input (H,W,3) or (3,H,W); the model has {input_shape}")
    channels_last = input_shape[-1] == 3
    height, width = (input_shape[0], input_shape[1]) if channels_last else (input_shape[1], input_shape[2])
    batch = []
    for path in files:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise BackendError(f"calibration image cannot be read: {path}")
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        image = _letterbox(rgb, height, width).astype(np.float32) / 255.0
        batch.append(image if channels_last else image.transpose(2, 0, 1))
    return np.ascontiguousarray(np.stack(batch))


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


def _make_calibrator(
    trt: Any, images: np.ndarray, batch: int, buffers: DeviceBuffers, cache_path: Path
) -> Any:
    """An ``IInt8EntropyCalibrator2`` feeding ``images`` in batches of ``batch`` through device buffers."""

    class _EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            self._next = 0
            buffers.allocate("__calibration__", (batch, *images.shape[1:]), images.dtype)

        def get_batch_size(self) -> int:
            return batch

        def get_batch(self, names: list[str]) -> list[int] | None:
            if self._next + batch > len(images):
                return None
            buffers.upload("__calibration__", images[self._next : self._next + batch])
            buffers.synchronize()
            self._next += batch
            return [buffers.pointer("__calibration__")]

        def read_calibration_cache(self) -> bytes | None:
            return cache_path.read_bytes() if cache_path.is_file() else None

        def write_calibration_cache(self, cache: Any) -> None:
            cache_path.write_bytes(bytes(cache))

    return _EntropyCalibrator()


class TensorRTBackend(Backend):
    """TensorRT 10 engine built from the ONNX file and cached by key; one execution context and one CUDA stream.

    Options: precision (fp16|fp32|int8), max_batch, opt_batch, workspace_mb, cache_dir, calib_dir,
    calib_max_images, warmup_runs, rebuild, buffers (auto|torch|pycuda), device_id.
    """

    name = "tensorrt"
    option_names = frozenset({
        "precision", "max_batch", "opt_batch", "workspace_mb", "cache_dir", "calib_dir", "calib_max_images",
        "warmup_runs", "rebuild", "buffers", "device_id",
    })

    def __init__(self, model_path: str | Path, **options: Any) -> None:
        super().__init__(model_path, **options)
        self.precision = str(options.get("precision", "fp16")).lower()
        if self.precision not in ec.PRECISIONS:
            raise BackendError(f"{self.name}: precision must be one of {', '.join(ec.PRECISIONS)}, "
                               f"got '{self.precision}'")
        if self.precision == "int8" and not options.get("calib_dir"):
            raise BackendError(f"{self.name}: precision int8 needs calib_dir (a folder of representative images)")
        self.max_batch = int(options.get("max_batch", ec.DEFAULT_MAX_BATCH))
        self.opt_batch = options.get("opt_batch")
        self.workspace_bytes = int(options.get("workspace_mb", ec.DEFAULT_WORKSPACE_MB)) << 20
        self.cache_dir = Path(options.get("cache_dir") or ec.engine_cache_dir_for(model_path))
        self.warmup_runs = int(options.get("warmup_runs", DEFAULT_WARMUP_RUNS))
        self.engine_path: Path | None = None
        self.built = False
        self._trt: Any = None
        self._engine: Any = None
        self._context: Any = None
        self._buffers: DeviceBuffers | None = None
        self._profile: ec.ProfileShapes = {}
        self._output_list: list[TensorSpec] = []
        self._chunk_warned = False
        self._lock = threading.Lock()
        self._gpu = ("", "")

    # -- build -----------------------------------------------------------------------------------------
    def _engine_key(self, profiles: ec.ProfileShapes, calib_sha: str) -> ec.EngineKey:
        return ec.EngineKey(
            onnx_sha256=ec.sha256_file(self.model_path),
            tensorrt_version=str(self._trt.__version__),
            gpu_name=self._gpu[0],
            compute_capability=self._gpu[1],
            precision=self.precision,
            profiles=ec.EngineKey.profiles_tuple(profiles),
            workspace_bytes=self.workspace_bytes,
            calibration_sha256=calib_sha,
        )

    def _build_plan(self, key: ec.EngineKey, profiles: ec.ProfileShapes, calib_files: list[Path]) -> bytes:
        trt = self._trt
        logger = self._trt_logger
        builder = trt.Builder(logger)
        network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
        parser = trt.OnnxParser(network, logger)
        if not parser.parse_from_file(str(self.model_path)):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise BackendError(f"{self.name}: TensorRT cannot parse {self.model_path}: {errors}")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, self.workspace_bytes)
        if self.precision in ("fp16", "int8"):
            config.set_flag(trt.BuilderFlag.FP16)
        # Shapes go only on inputs the parsed network leaves dynamic (-1); static inputs need no profile.
        profile = builder.create_optimization_profile()
        dynamic = [network.get_input(i).name for i in range(network.num_inputs)
                   if any(d < 0 for d in network.get_input(i).shape)]
        for name in dynamic:
            profile.set_shape(name, *profiles[name])
        if dynamic:
            config.add_optimization_profile(profile)
        if self.precision == "int8":
            assert self._buffers is not None
            if len(profiles) != 1:
                raise BackendError(f"{self.name}: INT8 calibration feeds one image input; {self.model_path.name} "
                                   f"has {sorted(profiles)}")
            first = next(iter(profiles))
            opt_shape = profiles[first][1]
            images = load_calibration_images(calib_files, tuple(opt_shape[1:]))
            calib_cache = self.cache_dir / f"{self.model_path.stem}.{key.calibration_sha256[:16]}.calib"
            config.set_flag(trt.BuilderFlag.INT8)
            config.int8_calibrator = _make_calibrator(trt, images, opt_shape[0], self._buffers, calib_cache)
            if dynamic:
                config.set_calibration_profile(profile)
        timing_path = ec.timing_cache_path_for(self.cache_dir, key)
        timing_bytes = timing_path.read_bytes() if timing_path.is_file() else b""
        timing_cache = config.create_timing_cache(timing_bytes)
        if not config.set_timing_cache(timing_cache, ignore_mismatch=False):
            _LOG.warning("%s: timing cache %s does not match this TensorRT/GPU; starting a new one", self.name,
                         timing_path)
            config.set_timing_cache(config.create_timing_cache(b""), ignore_mismatch=False)
        plan = builder.build_serialized_network(network, config)
        if plan is None:
            raise BackendError(f"{self.name}: TensorRT failed to build an engine for {self.model_path} "
                               "(see the TensorRT log lines above)")
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        timing_path.write_bytes(bytes(config.get_timing_cache().serialize()))
        return bytes(plan)

    # -- Backend ---------------------------------------------------------------------------------------
    def _load_impl(self) -> tuple[list[TensorSpec], list[TensorSpec]]:
        self._trt = import_tensorrt()
        trt = self._trt
        self._buffers = create_device_buffers(self.options.get("buffers", "auto"),
                                              int(self.options.get("device_id", 0)))
        # Building (INT8 calibration copies), deserialising and warm-up all need our device/context current.
        self._buffers.push()
        try:
            result = self._load_engine(trt)
        except Exception:
            self._buffers.pop()
            self._close_impl()
            raise
        self._buffers.pop()
        return result

    def _load_engine(self, trt: Any) -> tuple[list[TensorSpec], list[TensorSpec]]:
        assert self._buffers is not None
        self._gpu = self._buffers.device_identity()
        self._trt_logger = _make_trt_logger(trt)
        onnx_inputs = ec.read_onnx_inputs(self.model_path)
        profiles = ec.compute_profiles(onnx_inputs, self.max_batch,
                                       None if self.opt_batch is None else int(self.opt_batch))
        calib_files: list[Path] = []
        calib_sha = ""
        if self.precision == "int8":
            calib_files = calibration_files(self.options["calib_dir"],
                                            int(self.options.get("calib_max_images", DEFAULT_CALIB_MAX_IMAGES)))
            calib_sha = calibration_digest(calib_files)
        key = self._engine_key(profiles, calib_sha)
        self.engine_path = ec.engine_path_for(self.cache_dir, self.model_path, key)
        label = f"{self.name}: {self.model_path.name}"
        force = "rebuild requested" if self.options.get("rebuild") else None
        plan, self.built = ec.load_or_build_engine(
            self.engine_path, key, lambda: self._build_plan(key, profiles, calib_files), label, force)
        runtime = trt.Runtime(self._trt_logger)
        engine = runtime.deserialize_cuda_engine(plan)
        if engine is None and not self.built:
            plan, self.built = ec.load_or_build_engine(
                self.engine_path, key, lambda: self._build_plan(key, profiles, calib_files), label,
                "the cached engine failed to deserialise")
            engine = runtime.deserialize_cuda_engine(plan)
        if engine is None:
            raise BackendError(f"{label}: TensorRT cannot deserialise the engine it just built")
        self._runtime, self._engine = runtime, engine
        self._context = engine.create_execution_context()
        inputs, outputs = self._bind(trt, engine)
        self._warm_up(inputs)
        _LOG.info("%s: ready (%s)", label, self.describe())
        return inputs, outputs

    def _bind(self, trt: Any, engine: Any) -> tuple[list[TensorSpec], list[TensorSpec]]:
        """Read I/O specs, allocate every tensor at its largest shape, and set the tensor addresses once."""
        assert self._buffers is not None
        inputs: list[TensorSpec] = []
        outputs: list[TensorSpec] = []
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        for name in names:
            dtype = ec.numpy_dtype_for_trt(engine.get_tensor_dtype(name).name)
            shape = tuple(None if d < 0 else int(d) for d in engine.get_tensor_shape(name))
            if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                if None in shape:
                    lo, opt, hi = (tuple(int(d) for d in s) for s in engine.get_tensor_profile_shape(name, 0))
                else:
                    lo = opt = hi = tuple(int(d) for d in shape)
                self._profile[name] = (lo, opt, hi)
                self._context.set_input_shape(name, hi)
                self._buffers.allocate(name, hi, dtype)
                inputs.append(TensorSpec(name, shape, dtype))
            else:
                outputs.append(TensorSpec(name, shape, dtype))
        for spec in outputs:
            largest = tuple(int(d) for d in self._context.get_tensor_shape(spec.name))
            if any(d < 0 for d in largest):
                raise BackendError(f"{self.name}: output '{spec.name}' has a data-dependent shape {largest}; "
                                   "not supported")
            self._buffers.allocate(spec.name, largest, spec.dtype)
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
                    self._buffers.upload(name, array)
                if not self._context.execute_async_v3(self._buffers.stream_handle):
                    raise BackendError(f"{self.name}: {self.model_path.name}: execute_async_v3 failed")
                return {
                    spec.name: self._buffers.download(
                        spec.name, tuple(int(d) for d in self._context.get_tensor_shape(spec.name))
                    )
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
        if self._buffers is not None:
            self._buffers.release()
        self._buffers = None
        self._context = None
        self._engine = None
        self._profile = {}

    def describe(self) -> str:
        """Backend, precision, GPU and engine file."""
        engine = self.engine_path.name if self.engine_path else "not built"
        provider = self._buffers.provider if self._buffers else "-"
        return (f"{self.name} ({self.precision}, max_batch {self.max_batch}, GPU {self._gpu[0] or '?'} "
                f"sm {self._gpu[1] or '?'}, buffers {provider}, engine {engine})")
