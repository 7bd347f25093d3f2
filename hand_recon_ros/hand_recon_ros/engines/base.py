"""The one backend interface every network in the project runs through (ONNX model in, numpy out).

Public ``load``/``run``/``close`` do the checks and bookkeeping; a backend implements the ``_impl`` parts.
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

_LOG = logging.getLogger(__name__)

#: Every option any backend understands (name → meaning, with units). A backend reads its own subset
#: (``Backend.option_names``) and ignores the others, so one options dict can serve ``auto``; a name in
#: no backend's list is a typo and an error.
KNOWN_OPTIONS: dict[str, str] = {
    "intra_op_threads": "CPU threads per inference: ONNX Runtime intra-op, LiteRT XNNPACK (0 = runtime default)",
    "allow_spinning": "ONNX Runtime: let idle intra-op threads spin (default False: sessions share few cores)",
    "device_id": "CUDA device index (default 0)",
    "max_batch": "largest batch (hands per call) the engine/profile must accept (default 2)",
    "opt_batch": "batch size TensorRT tunes kernels for (default = max_batch)",
    "precision": "TensorRT precision: fp16 (default), fp32 or int8",
    "workspace_mb": "TensorRT builder workspace limit in MiB (default 1024)",
    "cache_dir": "folder for engines, timing caches and ORT TensorRT caches (default engines/ beside the ONNX file)",
    "calib_dir": "folder of images for INT8 calibration (precision int8 only)",
    "calib_max_images": "most calibration images read from calib_dir (default 256)",
    "warmup_runs": "inference runs at load so the first frame is not slow (default 2)",
    "rebuild": "TensorRT: ignore any cached engine and build a new one (default False)",
    "buffers": "TensorRT device buffers: auto (torch if it has CUDA, else pycuda), torch or pycuda",
    "device": "torch backend device: cpu (default) or cuda",
    "module": "torch backend: a torch.nn.Module to run instead of looking one up",
}


class BackendError(RuntimeError):
    """A backend could not load a model or run it; the message names the model, tensor or reason."""


class BackendUnavailableError(BackendError):
    """The backend's runtime (module, provider or device) is not present on this machine."""


@dataclass(frozen=True)
class TensorSpec:
    """Name, shape (None or a string for a dynamic axis) and numpy dtype of one model input or output."""

    name: str
    shape: tuple[int | str | None, ...]
    dtype: np.dtype


class Backend(abc.ABC):
    """Runs one ONNX model. Usable as a context manager; ``run`` takes and returns numpy arrays by name."""

    #: Short name used in configs, logs and diagnostics (e.g. ``onnxruntime-cpu``).
    name: str = "base"
    #: Options (keys of KNOWN_OPTIONS) this backend reads; the others are ignored with a debug line.
    option_names: frozenset[str] = frozenset()

    def __init__(self, model_path: str | Path, **options: Any) -> None:
        unknown = sorted(set(options) - set(KNOWN_OPTIONS))
        if unknown:
            raise BackendError(
                f"{self.name}: unknown option(s) {unknown}; options this backend reads: {sorted(self.option_names)}"
            )
        ignored = sorted(set(options) - self.option_names)
        if ignored:
            _LOG.debug("%s: ignoring option(s) %s (used by other backends)", self.name, ignored)
        self.model_path = Path(model_path)
        self.options = options
        self._loaded = False
        self.inputs: list[TensorSpec] = []
        self.outputs: list[TensorSpec] = []
        self._fill_buffers: dict[int, np.ndarray] = {}  # run_filled's input arrays, one per batch size

    # -- public API ---------------------------------------------------------------------------------
    @property
    def input_names(self) -> list[str]:
        """Declared input names, in model order (empty before ``load``)."""
        return [spec.name for spec in self.inputs]

    @property
    def output_names(self) -> list[str]:
        """Declared output names, in model order (empty before ``load``)."""
        return [spec.name for spec in self.outputs]

    def load(self) -> Backend:
        """Load the model (idempotent); raises BackendError naming the file when it is missing or invalid."""
        if self._loaded:
            return self
        if not self.model_path.is_file():
            raise BackendError(f"{self.name}: model file not found: {self.model_path}")
        self.inputs, self.outputs = self._load_impl()
        self._loaded = True
        return self

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one batch. ``feeds`` maps every input name to an array of the declared dtype and rank."""
        if not self._loaded:
            self.load()
        self._check_feeds(feeds)
        return self._run_impl(feeds)

    def run_filled(self, batch: int, fill: Callable[[np.ndarray], None]) -> dict[str, np.ndarray]:
        """Run one batch of a single-input model whose input ``fill`` writes in place.

        ``fill`` gets a writable array (batch, *input shape) of the input's dtype and must write all of it; a
        backend with a runtime-owned input buffer (LiteRT) hands over that buffer, saving the copy ``run`` makes.
        ``fill`` must not keep the array. Other backends fill a kept buffer and ``run`` it.
        """
        if not self._loaded:
            self.load()
        buffer = self._input_buffer(batch)
        fill(buffer)
        return self.run({self.inputs[0].name: buffer})

    def _input_buffer(self, batch: int) -> np.ndarray:
        """A kept array (batch, *input shape) for run_filled (one per batch size); BackendError when the model
        has several inputs or a dynamic dimension besides the batch."""
        buffers = self._fill_buffers
        buffer = buffers.get(batch)
        if buffer is None:
            if len(self.inputs) != 1:
                raise BackendError(f"{self.name}: {self.model_path.name}: run_filled needs a single-input model, "
                                   f"this one has {self.input_names}")
            spec = self.inputs[0]
            if batch < 1 or not all(isinstance(d, int) and d > 0 for d in spec.shape[1:]):
                raise BackendError(f"{self.name}: {self.model_path.name}: run_filled needs batch >= 1 and a fixed "
                                   f"input shape besides the batch, got batch {batch} for {spec.shape}")
            buffer = buffers[batch] = np.zeros((batch, *spec.shape[1:]), spec.dtype)
        return buffer

    def close(self) -> None:
        """Release the model and any device memory (idempotent)."""
        if self._loaded:
            self._close_impl()
            self._loaded = False

    def describe(self) -> str:
        """One line for logs and diagnostics: backend name and details (providers, precision, device)."""
        return self.name

    def __enter__(self) -> Backend:
        return self.load()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- checks ---------------------------------------------------------------------------------------
    def _check_feeds(self, feeds: dict[str, np.ndarray]) -> None:
        expected = {spec.name: spec for spec in self.inputs}
        missing = sorted(set(expected) - set(feeds))
        extra = sorted(set(feeds) - set(expected))
        if missing or extra:
            raise BackendError(
                f"{self.name}: {self.model_path.name}: inputs do not match the model: "
                f"missing {missing}, unexpected {extra}, expected {sorted(expected)}"
            )
        for name, array in feeds.items():
            spec = expected[name]
            if array.dtype != spec.dtype:
                raise BackendError(
                    f"{self.name}: {self.model_path.name}: input '{name}' has dtype {array.dtype}, "
                    f"expected {spec.dtype}"
                )
            if array.ndim != len(spec.shape):
                raise BackendError(
                    f"{self.name}: {self.model_path.name}: input '{name}' has shape {array.shape}, "
                    f"expected rank {len(spec.shape)} {spec.shape}"
                )
            for axis, (got, want) in enumerate(zip(array.shape, spec.shape)):
                if isinstance(want, int) and want > 0 and got != want:
                    raise BackendError(
                        f"{self.name}: {self.model_path.name}: input '{name}' has shape {array.shape}, "
                        f"expected {spec.shape} (axis {axis} must be {want})"
                    )

    # -- to implement ---------------------------------------------------------------------------------
    @abc.abstractmethod
    def _load_impl(self) -> tuple[list[TensorSpec], list[TensorSpec]]:
        """Load the model; return input and output specs."""

    @abc.abstractmethod
    def _run_impl(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the checked feeds; return every output by name."""

    @abc.abstractmethod
    def _close_impl(self) -> None:
        """Free what ``_load_impl`` allocated."""
