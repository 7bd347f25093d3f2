"""ONNX Runtime backend: CPU by default (the project's default everywhere); CUDA/TensorRT providers optional."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from hand_recon_ros.engines.base import Backend, BackendError, BackendUnavailableError, TensorSpec

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
    """ONNX Runtime with the CPU execution provider; options: ``intra_op_threads`` (0 = ORT default)."""

    name = "onnxruntime-cpu"
    providers: tuple[str, ...] = ("CPUExecutionProvider",)

    def __init__(self, model_path: str | Path, **options: Any) -> None:
        super().__init__(model_path, **options)
        self._session: Any = None
        self._output_names: list[str] = []

    def _provider_options(self) -> list[tuple[str, dict[str, str]] | str]:
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
        try:
            self._session = ort.InferenceSession(
                str(self.model_path), sess_options=sess_opts, providers=self._provider_options()
            )
        except Exception as exc:  # ORT raises its own exception types for invalid graphs
            raise BackendError(f"{self.name}: cannot load {self.model_path}: {exc}") from exc

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
            return f"{self.name} ({', '.join(self._session.get_providers())})"
        return self.name
