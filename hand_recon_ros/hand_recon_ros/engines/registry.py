"""Create a backend by name: TensorRT, ONNX Runtime (CPU/CUDA/TensorRT providers), LiteRT, torch, or ``auto``.

Backend modules are imported only when their backend is asked for, so optional runtimes stay optional.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from hand_recon_ros.engines.base import Backend, BackendError

# name → "module:Class" (imported lazily).
_BACKENDS: dict[str, str] = {
    "auto": "hand_recon_ros.engines.auto_select:AutoBackend",
    "tensorrt": "hand_recon_ros.engines.tensorrt_backend:TensorRTBackend",
    "onnxruntime-tensorrt": "hand_recon_ros.engines.onnxruntime_backend:OnnxRuntimeTensorRTBackend",
    "onnxruntime-cuda": "hand_recon_ros.engines.onnxruntime_backend:OnnxRuntimeCudaBackend",
    "onnxruntime-cpu": "hand_recon_ros.engines.onnxruntime_backend:OnnxRuntimeBackend",
    "torch": "hand_recon_ros.engines.torch_backend:TorchBackend",
    "litert": "hand_recon_ros.engines.litert_backend:LiteRTBackend",
}
_ALIASES: dict[str, str] = {
    "onnxruntime": "onnxruntime-cpu", "cpu": "onnxruntime-cpu", "trt": "tensorrt", "tflite": "litert",
}

BACKEND_NAMES: tuple[str, ...] = tuple(_BACKENDS)
# The CPU default: the faster of LiteRT and ONNX Runtime for the whole pipeline (docs/pipeline.md, "CPU backends").
DEFAULT_BACKEND = "litert"


def canonical_backend_name(name: str) -> str:
    """The registered name for ``name`` or an alias of it; unknown names are an error listing the choices."""
    key = _ALIASES.get(name, name)
    if key not in _BACKENDS:
        raise BackendError(f"unknown backend '{name}'; choose one of {', '.join(BACKEND_NAMES)}")
    return key


def backend_class(name: str) -> type[Backend]:
    """The Backend subclass registered under ``name`` (imports its module)."""
    module_name, class_name = _BACKENDS[canonical_backend_name(name)].split(":")
    return getattr(importlib.import_module(module_name), class_name)


def create_backend(name: str, model_path: str | Path, **options: Any) -> Backend:
    """Return an unloaded backend of the given name for ``model_path``; unknown names are an error."""
    return backend_class(name)(model_path, **options)
