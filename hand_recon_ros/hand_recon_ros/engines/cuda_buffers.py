"""CUDA device buffers and one stream for the TensorRT backend: torch CUDA tensors when torch has CUDA, else pycuda.

Both providers are optional imports. ``gpu_available()`` is what GPU-only tests and ``auto`` selection ask.
"""

from __future__ import annotations

import abc
from typing import Any

import numpy as np

from hand_recon_ros.engines.base import BackendUnavailableError

#: Set to 1 to make the GPU-only tests fail instead of skip when no GPU/module is found (for GPU CI jobs).
GPU_TESTS_ENV = "HAND_RECON_GPU_TESTS"
BUFFER_PROVIDERS: tuple[str, ...] = ("torch", "pycuda")


def _torch_cuda_reason() -> str | None:
    """None when torch can use a CUDA device, else why not."""
    try:
        import torch
    except ImportError as exc:
        return f"torch not installed ({exc})"
    if not torch.cuda.is_available():
        return f"torch {torch.__version__} sees no CUDA device (torch.cuda.is_available() is False)"
    return None


def _pycuda_reason() -> str | None:
    """None when pycuda can open a CUDA device, else why not."""
    try:
        import pycuda.driver as cuda
    except ImportError as exc:
        return f"pycuda not installed ({exc})"
    try:
        cuda.init()
        if cuda.Device.count() < 1:
            return "pycuda sees no CUDA device"
    except Exception as exc:  # pycuda raises its own LogicError/RuntimeError without a driver
        return f"pycuda cannot initialise CUDA ({exc})"
    return None


def cuda_unavailable_reason() -> str | None:
    """None when some buffer provider can reach a GPU, else the reasons for both providers."""
    torch_reason = _torch_cuda_reason()
    if torch_reason is None:
        return None
    pycuda_reason = _pycuda_reason()
    if pycuda_reason is None:
        return None
    return f"no CUDA GPU usable: {torch_reason}; {pycuda_reason}"


def gpu_available() -> bool:
    """True when a CUDA GPU is reachable through torch or pycuda."""
    return cuda_unavailable_reason() is None


class DeviceBuffers(abc.ABC):
    """Allocates device arrays, owns the one CUDA stream, and copies host↔device on that stream."""

    provider: str = "base"

    @property
    @abc.abstractmethod
    def stream_handle(self) -> int:
        """The raw ``cudaStream_t`` as an int, for ``execute_async_v3``."""

    @abc.abstractmethod
    def device_identity(self) -> tuple[str, str]:
        """GPU name and compute capability ``"major.minor"`` of the device in use."""

    def device_properties(self) -> tuple[int, int]:
        """SM count and total memory (MiB) of the device in use (part of the engine key); (0, 0) if unknown."""
        return 0, 0

    @abc.abstractmethod
    def allocate(self, name: str, shape: tuple[int, ...], dtype: np.dtype) -> int:
        """Allocate a device array for tensor ``name`` at its largest shape; returns its device pointer."""

    @abc.abstractmethod
    def upload(self, name: str, array: np.ndarray) -> None:
        """Copy ``array`` into the start of ``name``'s device array (async on the stream)."""

    @abc.abstractmethod
    def download(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """Copy the first ``shape`` elements of ``name`` back to the host after the stream finishes."""

    @abc.abstractmethod
    def synchronize(self) -> None:
        """Wait for all work on the stream."""

    @abc.abstractmethod
    def release(self) -> None:
        """Free every device array and the stream."""

    @abc.abstractmethod
    def push(self) -> None:
        """Make this provider's device/context current in the calling thread (CUDA's current device is per thread)."""

    @abc.abstractmethod
    def pop(self) -> None:
        """Undo ``push`` where there is something to undo."""

    def pointer(self, name: str) -> int:
        """Device address of ``name``'s array."""
        return self._pointers[name]

    _pointers: dict[str, int]


class TorchCudaBuffers(DeviceBuffers):
    """Device arrays as torch CUDA tensors; stream is a ``torch.cuda.Stream``."""

    provider = "torch"

    def __init__(self, device_id: int = 0) -> None:
        import torch

        self._torch = torch
        self._device = torch.device("cuda", device_id)
        torch.cuda.set_device(self._device)
        self._stream = torch.cuda.Stream(device=self._device)
        self._tensors: dict[str, Any] = {}
        self._pointers = {}

    def push(self) -> None:
        """Select our device in this thread (ROS callbacks run on executor threads)."""
        self._torch.cuda.set_device(self._device)

    def pop(self) -> None:
        """Nothing to undo: torch keeps one context per device."""
        return None

    @property
    def stream_handle(self) -> int:
        """The torch stream's ``cudaStream_t``."""
        return int(self._stream.cuda_stream)

    def device_identity(self) -> tuple[str, str]:
        """Name and capability from ``torch.cuda``."""
        major, minor = self._torch.cuda.get_device_capability(self._device)
        return self._torch.cuda.get_device_name(self._device), f"{major}.{minor}"

    def device_properties(self) -> tuple[int, int]:
        """SM count and memory from ``torch.cuda.get_device_properties``."""
        props = self._torch.cuda.get_device_properties(self._device)
        return int(props.multi_processor_count), int(props.total_memory) >> 20

    def allocate(self, name: str, shape: tuple[int, ...], dtype: np.dtype) -> int:
        """A torch CUDA tensor of the numpy dtype's torch equivalent."""
        torch_dtype = self._torch.from_numpy(np.empty(0, dtype=dtype)).dtype
        tensor = self._torch.empty(shape, dtype=torch_dtype, device=self._device)
        self._tensors[name] = tensor
        self._pointers[name] = int(tensor.data_ptr())
        return self._pointers[name]

    def upload(self, name: str, array: np.ndarray) -> None:
        """Copy into the leading rows of the tensor on our stream."""
        host = self._torch.from_numpy(np.ascontiguousarray(array))
        view = self._tensors[name].view(-1)[: host.numel()]
        with self._torch.cuda.stream(self._stream):
            view.copy_(host.view(-1), non_blocking=False)

    def download(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """Synchronise, then copy the leading ``shape`` elements back."""
        self._stream.synchronize()
        count = int(np.prod(shape)) if shape else 1
        return self._tensors[name].view(-1)[:count].cpu().numpy().reshape(shape)

    def synchronize(self) -> None:
        """``torch.cuda.Stream.synchronize``."""
        self._stream.synchronize()

    def release(self) -> None:
        """Drop the tensors (torch's caching allocator reclaims them)."""
        self._stream.synchronize()
        self._tensors.clear()
        self._pointers.clear()


class PycudaBuffers(DeviceBuffers):
    """Device arrays through pycuda (``mem_alloc``), pinned host staging, the device's primary context."""

    provider = "pycuda"

    def __init__(self, device_id: int = 0) -> None:
        import pycuda.driver as cuda

        self._cuda = cuda
        cuda.init()
        self._device = cuda.Device(device_id)
        # The primary context is the one the CUDA runtime (and so TensorRT) uses: share it, never create another.
        self._context = self._device.retain_primary_context()
        self._context.push()
        try:
            self._stream = cuda.Stream()
        finally:
            self._context.pop()
        self._allocations: dict[str, Any] = {}
        self._host: dict[str, np.ndarray] = {}
        self._pointers = {}

    def push(self) -> None:
        """Make the primary context current in the calling thread (ROS callbacks run on other threads)."""
        self._context.push()

    def pop(self) -> None:
        """Undo ``push``."""
        self._context.pop()

    @property
    def stream_handle(self) -> int:
        """The pycuda stream's handle."""
        return int(self._stream.handle)

    def device_identity(self) -> tuple[str, str]:
        """Name and capability from the pycuda device."""
        major, minor = self._device.compute_capability()
        return self._device.name(), f"{major}.{minor}"

    def device_properties(self) -> tuple[int, int]:
        """SM count and memory from the pycuda device."""
        sm_count = self._device.get_attribute(self._cuda.device_attribute.MULTIPROCESSOR_COUNT)
        return int(sm_count), int(self._device.total_memory()) >> 20

    def allocate(self, name: str, shape: tuple[int, ...], dtype: np.dtype) -> int:
        """``mem_alloc`` plus a pinned host array of the same size."""
        self._context.push()  # pinned host memory needs a current context too
        try:
            host = self._cuda.pagelocked_empty(int(np.prod(shape)) if shape else 1, dtype=dtype)
            allocation = self._cuda.mem_alloc(max(host.nbytes, 1))
        finally:
            self._context.pop()
        self._host[name] = host
        self._allocations[name] = allocation
        self._pointers[name] = int(allocation)
        return self._pointers[name]

    def upload(self, name: str, array: np.ndarray) -> None:
        """Stage in pinned memory, then async host→device on the stream."""
        flat = np.ascontiguousarray(array).reshape(-1)
        staging = self._host[name][: flat.size]
        staging[...] = flat
        self._cuda.memcpy_htod_async(self._allocations[name], staging, self._stream)

    def download(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """Async device→host into pinned memory, synchronise, return a copy."""
        count = int(np.prod(shape)) if shape else 1
        staging = self._host[name][:count]
        self._cuda.memcpy_dtoh_async(staging, self._allocations[name], self._stream)
        self._stream.synchronize()
        return staging.copy().reshape(shape)

    def synchronize(self) -> None:
        """``pycuda.driver.Stream.synchronize``."""
        self._stream.synchronize()

    def release(self) -> None:
        """Free device memory and detach from the primary context."""
        self._context.push()
        try:
            self._stream.synchronize()
            for allocation in self._allocations.values():
                allocation.free()
        finally:
            self._context.pop()
        self._allocations.clear()
        self._host.clear()
        self._pointers.clear()
        self._context.detach()


def create_device_buffers(provider: str = "auto", device_id: int = 0) -> DeviceBuffers:
    """Torch CUDA buffers when torch has CUDA, else pycuda; ``provider`` forces one. Raises when neither works."""
    if provider not in ("auto", *BUFFER_PROVIDERS):
        raise BackendUnavailableError(f"buffers must be auto, torch or pycuda, got '{provider}'")
    reasons = []
    if provider in ("auto", "torch"):
        reason = _torch_cuda_reason()
        if reason is None:
            return TorchCudaBuffers(device_id)
        reasons.append(reason)
    if provider in ("auto", "pycuda"):
        reason = _pycuda_reason()
        if reason is None:
            return PycudaBuffers(device_id)
        reasons.append(reason)
    raise BackendUnavailableError(
        "no CUDA device buffers: " + "; ".join(reasons)
        + " (fix: install a CUDA build of torch, or 'pip install pycuda' on a machine with an NVIDIA driver)"
    )
