"""``backend: auto``: the first backend that loads, in the order tensorrt → onnxruntime-tensorrt →
onnxruntime-cuda → litert → onnxruntime-cpu, with ONE log line naming the choice and why each earlier one was not taken.

Availability probes are cheap checks (module importable, provider compiled in, GPU visible); a candidate that
passes its probe must still be created, load and run one warm-up batch. ANY exception there (not only
BackendError: a TensorRT binding's AttributeError, a CUDA RuntimeError) is recorded as its reason, the candidate is
closed, and the next one is tried; the fallback is logged as one WARNING naming each failure's type and message
and the backend chosen instead.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from hand_recon_ros.engines.base import KNOWN_OPTIONS, Backend, BackendUnavailableError, TensorSpec
from hand_recon_ros.engines.litert_backend import litert_model_reason, litert_unavailable_reason

_LOG = logging.getLogger(__name__)

AUTO_ORDER: tuple[str, ...] = ("tensorrt", "onnxruntime-tensorrt", "onnxruntime-cuda", "litert", "onnxruntime-cpu")
#: A probe returns None when its backend may be tried, else a short reason it cannot.
Probe = Callable[[], "str | None"]

_logged_messages: set[str] = set()
_logged_lock = threading.Lock()


def probe_tensorrt() -> str | None:
    """TensorRT needs the ``tensorrt`` module (10.x or 11.x) and a CUDA GPU reachable through torch or pycuda."""
    try:
        import tensorrt as trt
    except ImportError as exc:
        return f"module not installed ({exc})"
    from hand_recon_ros.engines.tensorrt_version import unsupported_version_reason

    reason = unsupported_version_reason(getattr(trt, "__version__", "unknown"))
    if reason is not None:
        return reason
    from hand_recon_ros.engines.cuda_buffers import cuda_unavailable_reason

    return cuda_unavailable_reason()


def probe_ort_provider(provider: str) -> Probe:
    """A probe that passes when ``provider`` is compiled into the installed onnxruntime."""

    def probe() -> str | None:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            return f"module not installed ({exc})"
        available = ort.get_available_providers()
        if provider not in available:
            return f"{provider} not in this onnxruntime {ort.__version__} (has {', '.join(available)})"
        return None

    return probe


def default_probes() -> dict[str, Probe]:
    """The real availability probes, one per name in AUTO_ORDER."""
    return {
        "tensorrt": probe_tensorrt,
        "onnxruntime-tensorrt": probe_ort_provider("TensorrtExecutionProvider"),
        "onnxruntime-cuda": probe_ort_provider("CUDAExecutionProvider"),
        "litert": litert_unavailable_reason,
        "onnxruntime-cpu": probe_ort_provider("CPUExecutionProvider"),
    }


def warm_up(backend: Backend) -> None:
    """One run on zeros of every declared input (a dynamic axis becomes 1): proves the backend really runs."""
    feeds = {spec.name: np.zeros(tuple(d if isinstance(d, int) and d > 0 else 1 for d in spec.shape), spec.dtype)
             for spec in backend.inputs}
    backend.run(feeds)


def _log_once(message: str, level: int = logging.INFO) -> None:
    with _logged_lock:
        if message in _logged_messages:
            return
        _logged_messages.add(message)
    _LOG.log(level, "%s", message)


def select_backend(
    model_path: str | Path,
    options: dict[str, Any] | None = None,
    probes: dict[str, Probe] | None = None,
    order: tuple[str, ...] = AUTO_ORDER,
) -> tuple[Backend, str]:
    """Load and return the first backend in ``order`` that is available and loads, with the log message.

    The message ("backend auto: using X; not taken: a: why; b: why") is logged once per process; a later
    identical choice (the second network, a restart of the pipeline) does not repeat it.
    """
    from hand_recon_ros.engines.registry import create_backend

    probes = default_probes() if probes is None else probes
    options = options or {}
    rejected: list[str] = []
    failures: list[str] = []
    for name in order:
        probe = probes.get(name)
        reason = probe() if probe is not None else "no availability probe"
        if reason is None and name == "litert":  # it runs .tflite files only: a model without one is not for it
            reason = litert_model_reason(model_path)
        if reason is None:
            backend: Backend | None = None
            stage = "creating"
            try:
                backend = create_backend(name, model_path, **options)
                stage = "loading"
                backend.load()
                stage = "warming up"
                warm_up(backend)
            except Exception as exc:  # noqa: BLE001 - auto must fall back on anything a candidate raises
                reason = f"{stage} failed ({type(exc).__name__}: {exc})"
                failures.append(f"{name}: {reason}")
                if backend is not None:
                    _close_quietly(backend)
            else:
                message = f"backend auto: using {name}"
                message += f"; not taken: {'; '.join(rejected)}" if rejected else " (first choice)"
                if failures:  # one WARNING per distinct fallback, like the choice itself
                    _log_once(f"backend auto: {Path(model_path).name}: {'; '.join(failures)}; using {name} instead",
                              logging.WARNING)
                _log_once(message)
                return backend, message
        rejected.append(f"{name}: {reason}")
    raise BackendUnavailableError(f"backend auto: no backend can run {Path(model_path).name}: {'; '.join(rejected)}")


def _close_quietly(backend: Backend) -> None:
    """Close a failed candidate; an error while closing is logged, never raised over the original failure."""
    try:
        backend.close()
    except Exception as exc:  # noqa: BLE001
        _LOG.debug("backend auto: closing failed %s raised %s: %s", backend.name, type(exc).__name__, exc)


class AutoBackend(Backend):
    """Picks a backend at load (see ``select_backend``) and delegates to it; ``selected`` is the chosen one."""

    name = "auto"
    option_names = frozenset(KNOWN_OPTIONS)

    def __init__(self, model_path: str | Path, probes: dict[str, Probe] | None = None, **options: Any) -> None:
        super().__init__(model_path, **options)
        self._probes = probes
        self.selected: Backend | None = None
        self.selection_message = ""

    def _load_impl(self) -> tuple[list[TensorSpec], list[TensorSpec]]:
        self.selected, self.selection_message = select_backend(self.model_path, self.options, self._probes)
        return self.selected.inputs, self.selected.outputs

    def _run_impl(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        assert self.selected is not None
        return self.selected._run_impl(feeds)

    def run_filled(self, batch: int, fill: Any) -> dict[str, np.ndarray]:
        """The chosen backend's run_filled (LiteRT's writes straight into its interpreter)."""
        if not self._loaded:
            self.load()
        assert self.selected is not None
        return self.selected.run_filled(batch, fill)

    def _close_impl(self) -> None:
        if self.selected is not None:
            self.selected.close()
        self.selected = None

    def describe(self) -> str:
        """``auto → <the chosen backend's description>``."""
        return f"auto → {self.selected.describe()}" if self.selected else "auto (not loaded)"
