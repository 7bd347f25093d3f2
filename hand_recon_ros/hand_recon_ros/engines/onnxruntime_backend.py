"""ONNX Runtime backend: CPU by default (the project's default everywhere); CUDA/TensorRT providers optional.

``precision`` (fp32 | fp16 | int8, ``auto`` = the backend's default: fp32 on CPU and CUDA, fp16 on the TensorRT
provider) picks the graph the session loads: the FP32 file itself or the FP16 / INT8 Q/DQ graph made from it
by ``precision_graphs`` (int8 needs ``calib_dir``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from hand_recon_ros.engines import engine_cache as ec
from hand_recon_ros.engines import precision_graphs as pg
from hand_recon_ros.engines.base import Backend, BackendError, BackendUnavailableError, TensorSpec

_LOG = logging.getLogger(__name__)
ORT_TRT_CACHE_SUBDIR = "ort_tensorrt"
# ONNX Runtime session config keys (onnxruntime_session_options_config_keys.h).
ALLOW_SPINNING_KEY = "session.intra_op.allow_spinning"
FORCE_SPINNING_STOP_KEY = "session.force_spinning_stop"

_ORT_TYPES = {
    "tensor(float)": np.dtype(np.float32),
    "tensor(float16)": np.dtype(np.float16),
    "tensor(double)": np.dtype(np.float64),
    "tensor(int64)": np.dtype(np.int64),
    "tensor(int32)": np.dtype(np.int32),
    "tensor(uint8)": np.dtype(np.uint8),
    "tensor(bool)": np.dtype(np.bool_),
}


class OnnxRuntimeBackend(Backend):
    """ONNX Runtime with the CPU execution provider; options: ``intra_op_threads`` (0 = ORT default), ``precision``
    (default fp32), ``calib_dir``/``calib_max_images`` (int8), ``cache_dir`` (where converted graphs go)."""

    name = "onnxruntime-cpu"
    providers: tuple[str, ...] = ("CPUExecutionProvider",)
    option_names = frozenset({"intra_op_threads", "allow_spinning", "precision", "calib_dir", "calib_max_images",
                              "cache_dir"})
    #: Precision when the option is absent or "auto".
    default_precision = "fp32"
    #: Q/DQ flavour of the INT8 graph (see precision_graphs.INT8_FLAVOURS).
    int8_flavour = "cpu"

    def __init__(self, model_path: str | Path, **options: Any) -> None:
        super().__init__(model_path, **options)
        try:
            self.precision = pg.resolve_precision(options.get("precision"), self.default_precision)
        except BackendError as exc:
            raise BackendError(f"{self.name}: {exc}") from None
        if self.precision == "int8" and not options.get("calib_dir"):
            raise BackendError(f"{self.name}: precision int8 needs calib_dir (--calib-dir): a folder of "
                               "representative images to calibrate the INT8 graph on")
        self.graph_path = self.model_path
        self._session: Any = None
        self._output_names: list[str] = []

    def _graph(self) -> Path:
        """The ONNX file this precision runs (made and cached on first use)."""
        return pg.precision_graph(
            self.model_path, self.precision, self.options.get("cache_dir"), self.options.get("calib_dir"),
            int(self.options.get("calib_max_images", pg.cs.DEFAULT_CALIB_MAX_IMAGES)), self.int8_flavour)

    def _provider_options(self) -> list[tuple[str, dict[str, Any]] | str]:
        return list(self.providers)

    def _load_impl(self) -> tuple[list[TensorSpec], list[TensorSpec]]:
        try:
            import onnxruntime as ort
        except ImportError as exc:  # pragma: no cover - onnxruntime is a hard dependency
            raise BackendUnavailableError(
                f"{self.name}: cannot import onnxruntime ({exc}); install it with 'pip install onnxruntime'"
            ) from exc
        available = set(ort.get_available_providers())
        missing = [p for p in self.providers if p not in available]
        if missing:
            raise BackendUnavailableError(
                f"{self.name}: execution provider(s) {missing} not in this onnxruntime build "
                f"(available: {sorted(available)})"
            )
        sess_opts = ort.SessionOptions()
        threads = int(self.options.get("intra_op_threads", 0))
        if threads < 0:
            raise BackendError(f"{self.name}: intra_op_threads must be >= 0, got {threads}")
        sess_opts.intra_op_num_threads = threads
        sess_opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if bool(self.options.get("allow_spinning", False)):
            # Spin between the operators of one Run (waking sleeping pool threads for each of a few hundred
            # operators costs milliseconds), but stop when the Run returns, so idle spinners do not steal the
            # cores that the rest of the frame (3D lift, DDS, the other session) needs.
            sess_opts.add_session_config_entry(ALLOW_SPINNING_KEY, "1")
            sess_opts.add_session_config_entry(FORCE_SPINNING_STOP_KEY, "1")
        else:
            # Each session owns a thread pool whose idle threads spin by default; with two networks per frame
            # on a small CPU the palm session's spinners steal the cores the landmark session needs.
            sess_opts.add_session_config_entry(ALLOW_SPINNING_KEY, "0")
        self.graph_path = self._graph()
        try:
            self._session = ort.InferenceSession(
                str(self.graph_path), sess_options=sess_opts, providers=self._provider_options()
            )
        except Exception as exc:  # ORT raises its own exception types for invalid graphs
            raise BackendError(f"{self.name}: cannot load {self.model_path}: {exc}") from exc
        # ORT silently drops a provider whose libraries (CUDA, cuDNN, TensorRT) fail to load: refuse that here.
        in_use = self._session.get_providers()
        if self.providers[0] not in in_use:
            self._session = None
            raise BackendUnavailableError(
                f"{self.name}: {self.providers[0]} is in this onnxruntime build but did not start "
                f"(session runs on {in_use}); check the CUDA/cuDNN/TensorRT libraries ORT needs"
            )

        def spec(node: Any) -> TensorSpec:
            dtype = _ORT_TYPES.get(node.type)
            if dtype is None:
                raise BackendError(f"{self.name}: tensor '{node.name}' has unsupported type {node.type}")
            shape = tuple(d if isinstance(d, int) else (d or None) for d in node.shape)
            return TensorSpec(node.name, shape, dtype)

        inputs = [spec(n) for n in self._session.get_inputs()]
        outputs = [spec(n) for n in self._session.get_outputs()]
        self._output_names = [o.name for o in outputs]
        return inputs, outputs

    def _run_impl(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        try:
            values = self._session.run(self._output_names, feeds)
        except Exception as exc:
            raise BackendError(f"{self.name}: {self.model_path.name}: inference failed: {exc}") from exc
        return dict(zip(self._output_names, values))

    def _close_impl(self) -> None:
        self._session = None

    def describe(self) -> str:
        """Backend name and the providers in use."""
        if self._session is not None:
            precision = self.precision
            if precision == "int8" and self.graph_path == self.model_path:  # precision_graphs.INT8_FP32_MODELS
                precision = "int8 recipe: this network FP32"
            return f"{self.name} ({precision}, {', '.join(self._session.get_providers())})"
        return self.name


class OnnxRuntimeCudaBackend(OnnxRuntimeBackend):
    """ONNX Runtime with the CUDA execution provider (CPU for nodes CUDA lacks); options: ``device_id``."""

    name = "onnxruntime-cuda"
    providers = ("CUDAExecutionProvider", "CPUExecutionProvider")
    option_names = OnnxRuntimeBackend.option_names | {"device_id"}
    int8_flavour = "tensorrt"  # symmetric Q/DQ: what GPU INT8 kernels run

    def _provider_options(self) -> list[tuple[str, dict[str, Any]] | str]:
        device = str(int(self.options.get("device_id", 0)))
        return [("CUDAExecutionProvider", {"device_id": device}), "CPUExecutionProvider"]


class OnnxRuntimeTensorRTBackend(OnnxRuntimeBackend):
    """ONNX Runtime with its TensorRT execution provider: engine and timing caches on disk, FP16 by default.

    Options: precision (fp16 default | fp32 | int8 with calib_dir: the same precision graphs as every backend),
    cache_dir, workspace_mb, max_batch, opt_batch, device_id.
    """

    name = "onnxruntime-tensorrt"
    providers = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
    option_names = OnnxRuntimeBackend.option_names | {"device_id", "workspace_mb", "max_batch", "opt_batch"}
    default_precision = "fp16"
    int8_flavour = "tensorrt"

    def __init__(self, model_path: str | Path, **options: Any) -> None:
        super().__init__(model_path, **options)
        self.cache_dir = Path(options.get("cache_dir") or ec.engine_cache_dir_for(model_path)) / ORT_TRT_CACHE_SUBDIR

    def trt_provider_options(self) -> dict[str, Any]:
        """The TensorrtExecutionProvider options: caches, FP16, workspace, and profiles for a dynamic batch."""
        options: dict[str, Any] = {
            "device_id": int(self.options.get("device_id", 0)),
            # The precision is in the graph (FP16 tensors, Q/DQ nodes); the FP16 flag lets a weakly typed TensorRT 10
            # build keep the graph's FP16 layers in FP16.
            "trt_fp16_enable": self.precision == "fp16",
            # A Q/DQ graph carries its own scales (explicit quantisation); a weakly typed TensorRT 10 build still
            # needs INT8 allowed to run them in INT8. No calibration table: the scales are in the graph.
            "trt_int8_enable": self.precision == "int8",
            "trt_int8_use_native_calibration_table": False,
            "trt_max_workspace_size": int(self.options.get("workspace_mb", ec.DEFAULT_WORKSPACE_MB)) << 20,
            "trt_engine_cache_enable": True,
            "trt_engine_cache_path": str(self.cache_dir),
            "trt_timing_cache_enable": True,
            "trt_timing_cache_path": str(self.cache_dir),
        }
        inputs = ec.read_onnx_inputs(self.graph_path)
        if any(not isinstance(d, int) for spec in inputs for d in spec.shape):
            opt = self.options.get("opt_batch")
            profiles = ec.compute_profiles(inputs, int(self.options.get("max_batch", ec.DEFAULT_MAX_BATCH)),
                                           None if opt is None else int(opt))
            lo, mid, hi = ec.profile_to_ort_strings(profiles)
            options.update(trt_profile_min_shapes=lo, trt_profile_opt_shapes=mid, trt_profile_max_shapes=hi)
        return options

    def _provider_options(self) -> list[tuple[str, dict[str, Any]] | str]:
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        if not any(self.cache_dir.glob("*.engine")):
            _LOG.warning(
                "%s: %s: no TensorRT engine cached in %s yet; ONNX Runtime is building one, which may take "
                "several minutes", self.name, self.model_path.name, self.cache_dir,
            )
        device = {"device_id": str(int(self.options.get("device_id", 0)))}
        return [("TensorrtExecutionProvider", self.trt_provider_options()), ("CUDAExecutionProvider", device),
                "CPUExecutionProvider"]
