"""The slice of LiteRT's ``Interpreter`` API that LiteRTBackend uses, over LiteRT's ``CompiledModel``.

The classic ``Interpreter`` cannot pass XNNPACK flags from Python; ``CompiledModel`` can, and fp16 inference
(XNNPACK's FORCE_FP16 flag: fp16 activations and weights, for CPUs with fp16 arithmetic such as ARMv8.2+ cores
and x86 with AVX512-FP16) needs one. LiteRTBackend runs precision fp16 through this class and fp32 through the
classic ``Interpreter``, with the same calls: input and output details, resize, a writable input view, invoke.
"""

from __future__ import annotations

import functools
import os
import platform
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

#: TFLITE_XNNPACK_DELEGATE_FLAG_FORCE_FP16 (tensorflow/lite/delegates/xnnpack/xnnpack_delegate.h).
XNNPACK_FLAG_FORCE_FP16 = 0x00000004
#: /proc/cpuinfo flags of fp16 arithmetic XNNPACK uses: x86 AVX512-FP16, ARMv8.2 half-precision SIMD.
FP16_CPU_FLAGS: dict[str, str] = {"x86_64": "avx512_fp16", "aarch64": "asimdhp"}


def fp16_arithmetic_missing(cpuinfo: str | None = None, machine: str | None = None) -> str | None:
    """None when this CPU has the fp16 arithmetic XNNPACK's fp16 kernels use, else why not (XNNPACK then emulates
    fp16, usually slower than fp32). ``cpuinfo``/``machine`` default to /proc/cpuinfo and platform.machine()."""
    machine = machine or platform.machine()
    flag = FP16_CPU_FLAGS.get(machine)
    if flag is None:
        return f"no fp16 check for {machine} CPUs"
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            return f"cannot read /proc/cpuinfo ({exc})"
    words = {word for line in cpuinfo.splitlines() if line.split(":")[0].strip() in ("flags", "Features")
             for word in line.split(":", 1)[-1].split()}
    return None if flag in words else f"this {machine} CPU lacks {flag}"


# A folder that does not exist: LiteRT finds no vendor compiler or NPU dispatch plugins there, so a CPU-only model
# loads without trying (and warning about) the NPU plugins the wheel ships (e.g. OpenVINO's, needing libopenvino).
NO_PLUGINS_DIR = str(Path(__file__).with_name("no-litert-plugins"))


@functools.lru_cache(maxsize=1)
def cpu_environment() -> Any:
    """One LiteRT Environment for every CPU CompiledModel of the process (created once: each logs its set-up)."""
    import ai_edge_litert
    from ai_edge_litert.environment import Environment

    return Environment.create(runtime_path=os.path.dirname(ai_edge_litert.__file__),
                              compiler_plugin_path=NO_PLUGINS_DIR, dispatch_library_path=NO_PLUGINS_DIR)


class CompiledModelInterpreter:
    """A CompiledModel (first signature, CPU, ``num_threads`` XNNPACK threads, ``xnnpack_flags``) behind the
    Interpreter calls LiteRTBackend makes; tensor indices are positions in the input/output lists."""

    def __init__(self, model_path: str, num_threads: int, xnnpack_flags: int = XNNPACK_FLAG_FORCE_FP16) -> None:
        from ai_edge_litert.compiled_model import CompiledModel
        from ai_edge_litert.cpu_options import CpuOptions
        from ai_edge_litert.hardware_accelerator import HardwareAccelerator
        from ai_edge_litert.options import Options

        options = Options(hardware_accelerators=HardwareAccelerator.CPU,
                          cpu_options=CpuOptions(num_threads=num_threads, xnnpack_flags=xnnpack_flags))
        try:
            self._model = CompiledModel.from_file(str(model_path), environment=cpu_environment(), options=options)
        except RuntimeError as exc:  # LiteRT says only "Failed to load model from file"; the path says which
            raise ValueError(f"LiteRT CompiledModel cannot load {model_path}: {exc}") from exc
        self._signature = next(iter(self._model.get_signature_list()))
        self._inputs: list[np.ndarray] = []
        self._outputs: list[dict[str, Any]] = []
        self._buffers: tuple[list[Any], list[Any]] = ([], [])

    def _details(self, details: dict[str, Any]) -> list[dict[str, Any]]:
        return [{"name": d["name"], "index": i, "shape": np.asarray(d["shape"], np.int32),
                 "dtype": np.dtype(d["dtype"])} for i, d in enumerate(details.values())]

    def get_input_details(self) -> list[dict[str, Any]]:
        """Name, index, shape and dtype of every input (the current shapes)."""
        return self._details(self._model.get_input_tensor_details(self._signature))

    def get_output_details(self) -> list[dict[str, Any]]:
        """Name, index, shape and dtype of every output (the current shapes)."""
        return self._details(self._model.get_output_tensor_details(self._signature))

    def resize_tensor_input(self, index: int, shape: list[int]) -> None:
        """Give input ``index`` a new shape (the batch); takes effect at allocate_tensors."""
        self._model.resize_input_tensor(int(index), [int(v) for v in shape], 0, strict=False)

    def allocate_tensors(self) -> None:
        """Make the input arrays (written by the caller, copied into LiteRT's buffers at invoke: LiteRT 2.3 refuses
        to register host memory as a shaped input) and the input and output buffers."""
        self._inputs = [np.zeros(tuple(int(v) for v in d["shape"]), d["dtype"]) for d in self.get_input_details()]
        self._outputs = self.get_output_details()
        self._buffers = (self._model.create_input_buffers(0), self._model.create_output_buffers(0))

    def set_tensor(self, index: int, value: np.ndarray) -> None:
        """Copy ``value`` into input ``index``."""
        self._inputs[index][...] = value

    def tensor(self, index: int) -> Callable[[], np.ndarray]:
        """A function giving the writable input array ``index`` (as Interpreter.tensor)."""
        return lambda: self._inputs[index]

    def invoke(self) -> None:
        """Run the model on the current inputs."""
        for array, buffer in zip(self._inputs, self._buffers[0]):
            buffer.write(array)
        self._model.run_by_index(0, *self._buffers)

    def get_tensor(self, index: int) -> np.ndarray:
        """A copy of output ``index``."""
        detail = self._outputs[index]
        shape = tuple(int(v) for v in detail["shape"])
        return self._buffers[1][index].read(int(np.prod(shape)), detail["dtype"]).reshape(shape)
