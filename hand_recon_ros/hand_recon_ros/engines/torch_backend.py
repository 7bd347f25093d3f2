"""Torch backend (reference and debugging): runs a ``torch.nn.Module`` that stands for an ONNX file.

The ONNX file still defines the interface (input/output names, shapes, dtypes), so feeds are checked exactly as
for the other backends and outputs come back under the ONNX output names. The module is found, in order:

1. the ``module`` option (an ``nn.Module`` you built, e.g. in a notebook);
2. an exported program beside the ONNX file as ``<stem>.pt2`` (``torch.export.save``), or TorchScript as
   ``<stem>.pt`` (``torch.jit.save``; deprecated by torch, still read);
3. a factory registered with ``register_torch_factory(stem_prefix, factory)``;
4. the TFLite file beside the ONNX in the model cache (``palm_detection_full.<key>.onnx`` →
   ``palm_detection_full.tflite``), rebuilt as a module by ``hand_recon_ros.models.tflite_import`` — the same
   module the ONNX file was exported from, so this backend is the reference for the exported graphs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from hand_recon_ros.engines import engine_cache as ec
from hand_recon_ros.engines.base import Backend, BackendError, BackendUnavailableError, TensorSpec

_LOG = logging.getLogger(__name__)

TORCHSCRIPT_SUFFIX = ".pt"
EXPORTED_PROGRAM_SUFFIX = ".pt2"
TFLITE_SUFFIX = ".tflite"

#: ONNX file stem prefix → factory(onnx_path) → nn.Module. Longest matching prefix wins.
_FACTORIES: dict[str, Callable[[Path], Any]] = {}


def register_torch_factory(stem_prefix: str, factory: Callable[[Path], Any]) -> None:
    """Register ``factory(onnx_path) -> nn.Module`` for ONNX files whose stem starts with ``stem_prefix``."""
    if not stem_prefix:
        raise ValueError("stem_prefix must not be empty")
    _FACTORIES[stem_prefix] = factory


def find_torch_factory(onnx_path: str | Path) -> Callable[[Path], Any] | None:
    """The registered factory with the longest prefix matching the ONNX file's stem, or None."""
    stem = Path(onnx_path).stem
    matches = [prefix for prefix in _FACTORIES if stem.startswith(prefix)]
    return _FACTORIES[max(matches, key=len)] if matches else None


def tflite_beside(onnx_path: str | Path) -> Path:
    """The TFLite file an ONNX export in the model cache came from: same name up to the first dot."""
    onnx_path = Path(onnx_path)
    return onnx_path.with_name(onnx_path.name.split(".")[0] + TFLITE_SUFFIX)


class TorchBackend(Backend):
    """Runs a torch module in eval mode under ``torch.inference_mode``; options: ``module``, ``device``."""

    name = "torch"
    option_names = frozenset({"module", "device", "precision"})

    def __init__(self, model_path: str | Path, **options: Any) -> None:
        super().__init__(model_path, **options)
        precision = str(options.get("precision") or "auto").lower()
        if precision not in ("auto", "fp32"):
            raise BackendError(f"{self.name}: runs the FP32 reference only, precision '{precision}' is not available "
                               "here; fix: precision auto/fp32, or backend onnxruntime-cpu for fp16/int8 graphs")
        self.device = str(options.get("device", "cpu"))
        self.source = ""
        self._module: Any = None
        self._torch: Any = None

    def _find_module(self) -> Any:
        torch = self._torch
        if self.options.get("module") is not None:
            module = self.options["module"]
            if not isinstance(module, torch.nn.Module):
                raise BackendError(f"{self.name}: option 'module' must be a torch.nn.Module, "
                                   f"got {type(module).__name__}")
            self.source = "module option"
            return module
        exported = self.model_path.with_suffix(EXPORTED_PROGRAM_SUFFIX)
        if exported.is_file():
            self.source = f"exported program {exported.name}"
            try:
                return torch.export.load(str(exported)).module()
            except Exception as exc:
                raise BackendError(f"{self.name}: cannot load exported program {exported}: {exc}") from exc
        scripted = self.model_path.with_suffix(TORCHSCRIPT_SUFFIX)
        if scripted.is_file():
            self.source = f"TorchScript {scripted.name}"
            try:
                return torch.jit.load(str(scripted), map_location="cpu")
            except Exception as exc:
                raise BackendError(f"{self.name}: cannot load TorchScript {scripted}: {exc}") from exc
        factory = find_torch_factory(self.model_path)
        if factory is not None:
            self.source = f"factory {getattr(factory, '__qualname__', factory)!s}"
            return factory(self.model_path)
        tflite = tflite_beside(self.model_path)
        if tflite.is_file():
            from hand_recon_ros.models.tflite_import import TFLiteImportError, load_tflite_module

            self.source = f"TFLite import of {tflite.name}"
            try:
                return load_tflite_module(tflite)
            except TFLiteImportError as exc:
                raise BackendError(f"{self.name}: cannot import {tflite}: {exc}") from exc
        raise BackendUnavailableError(
            f"{self.name}: no torch module for {self.model_path.name}: pass module=<nn.Module>, save torch.export "
            f"beside it as {exported.name} (or TorchScript {scripted.name}), put its source {tflite.name} "
            "beside it, or register a factory with hand_recon_ros.engines.torch_backend.register_torch_factory"
        )

    def _load_impl(self) -> tuple[list[TensorSpec], list[TensorSpec]]:
        try:
            import torch
        except ImportError as exc:
            raise BackendUnavailableError(
                f"{self.name}: module not installed ({exc}); fix: pip install torch"
            ) from exc
        self._torch = torch
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise BackendUnavailableError(f"{self.name}: device '{self.device}' requested but torch "
                                          f"{torch.__version__} has no CUDA device")
        inputs, outputs = ec.read_onnx_io(self.model_path)
        module = self._find_module().to(self.device)
        # Exported-program modules refuse .eval(); they are already in inference form.
        self._module = module.eval() if not isinstance(module, torch.fx.GraphModule) else module
        return ([TensorSpec(t.name, t.shape, t.dtype) for t in inputs],
                [TensorSpec(t.name, t.shape, t.dtype) for t in outputs])

    def _run_impl(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch = self._torch
        args = [torch.from_numpy(np.ascontiguousarray(feeds[spec.name])).to(self.device) for spec in self.inputs]
        try:
            with torch.inference_mode():
                result = self._module(*args)
        except (RuntimeError, ValueError) as exc:
            raise BackendError(f"{self.name}: {self.model_path.name}: inference failed: {exc}") from exc
        if isinstance(result, dict):
            values = [result[spec.name] for spec in self.outputs if spec.name in result]
        elif isinstance(result, (tuple, list)):
            values = list(result)
        else:
            values = [result]
        if len(values) != len(self.outputs):
            raise BackendError(
                f"{self.name}: {self.model_path.name}: the module returned {len(values)} output(s), the ONNX "
                f"file declares {len(self.outputs)} ({', '.join(self.output_names)})"
            )
        out = {}
        for spec, value in zip(self.outputs, values):
            array = value.detach().cpu().numpy()
            out[spec.name] = array.astype(spec.dtype, copy=False)
        return out

    def _close_impl(self) -> None:
        self._module = None

    def describe(self) -> str:
        """Backend, device and where the module came from."""
        return f"{self.name} ({self.device}, {self.source or 'not loaded'})"
