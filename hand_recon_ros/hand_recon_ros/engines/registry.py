"""Create a backend by name. The backends issue extends this with TensorRT, ORT CUDA/TRT, torch and 'auto'."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hand_recon_ros.engines.base import Backend, BackendError

BACKEND_NAMES: tuple[str, ...] = ("onnxruntime-cpu",)
DEFAULT_BACKEND = "onnxruntime-cpu"


def create_backend(name: str, model_path: str | Path, **options: Any) -> Backend:
    """Return an unloaded backend of the given name for ``model_path``; unknown names are an error."""
    if name in ("onnxruntime-cpu", "onnxruntime", "cpu"):
        from hand_recon_ros.engines.onnxruntime_backend import OnnxRuntimeBackend

        return OnnxRuntimeBackend(model_path, **options)
    raise BackendError(f"unknown backend '{name}'; choose one of {', '.join(BACKEND_NAMES)}")
