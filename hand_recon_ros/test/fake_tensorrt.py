"""A recording stand-in for the ``tensorrt`` module and for GPU memory, so the TensorRT backend's code runs on a CPU.

What the tests using it are about is the backend's own logic (keys, cache, teardown order, casts, the TensorRT
names it touches), not TensorRT: every attribute the backend reads from ``tensorrt`` or from an object it returned
is recorded as ``(class, name)``, unknown names included (they answer with a no-op), so a test can check each
name against the real bindings' API lists. The "engine" runs the ONNX graph it was built from with ONNX Runtime on
the CPU, so outputs are real numbers.
"""

from __future__ import annotations

import itertools
import types
from pathlib import Path
from typing import Any

import numpy as np

from hand_recon_ros.engines.cuda_buffers import DeviceBuffers

RECORDED: set[tuple[str, str]] = set()
EVENTS: list[str] = []
PLAN_MAGIC = b"FAKEPLAN\n"
_ONNX_TO_TRT = {"tensor(float)": "FLOAT", "tensor(float16)": "HALF", "tensor(int32)": "INT32",
                "tensor(int64)": "INT64", "tensor(uint8)": "UINT8", "tensor(bool)": "BOOL"}


def _record(owner: str, name: str) -> None:
    if not name.startswith("_"):
        RECORDED.add((owner, name))


class _Meta(type):
    """Records class-level reads (``trt.BuilderFlag.FP16``); unknown class attributes answer with a member."""

    def __getattribute__(cls, name: str) -> Any:
        _record(type.__getattribute__(cls, "__name__"), name)
        return type.__getattribute__(cls, name)

    def __getattr__(cls, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return _Member(name)


class _Member:
    """An enum member: has a ``name`` and an int value."""

    def __init__(self, name: str, value: int = 0) -> None:
        self.name = name
        self.value = value

    def __int__(self) -> int:
        return self.value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Member) and other.name == self.name

    def __hash__(self) -> int:
        return hash(self.name)


class _Api(metaclass=_Meta):
    """Base of every fake TensorRT class: instance reads are recorded; unknown methods are recording no-ops."""

    def __getattribute__(self, name: str) -> Any:
        _record(type(self).__name__, name)
        return object.__getattribute__(self, name)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return lambda *args, **kwargs: None


# -- enums --------------------------------------------------------------------------------------------------
class NetworkDefinitionCreationFlag(_Api):
    STRONGLY_TYPED = 1


class MemoryPoolType(_Api):
    WORKSPACE = _Member("WORKSPACE")


class TensorIOMode(_Api):
    INPUT = _Member("INPUT")
    OUTPUT = _Member("OUTPUT")


class DataType(_Api):
    FLOAT = _Member("FLOAT")
    HALF = _Member("HALF")
    INT32 = _Member("INT32")
    INT64 = _Member("INT64")
    UINT8 = _Member("UINT8")
    BOOL = _Member("BOOL")


class ILogger(_Api):
    class Severity(_Api):
        INTERNAL_ERROR = _Member("INTERNAL_ERROR")
        ERROR = _Member("ERROR")
        WARNING = _Member("WARNING")
        INFO = _Member("INFO")
        VERBOSE = _Member("VERBOSE")

    def __init__(self) -> None:
        pass


# -- build ----------------------------------------------------------------------------------------------------
class ITensor(_Api):
    def __init__(self, name: str, shape: tuple[int, ...]) -> None:
        self.name = name
        self.shape = shape


class INetworkDefinition(_Api):
    def __init__(self, flags: int) -> None:
        self._flags = flags
        self._graph: Path | None = None
        self._inputs: list[ITensor] = []

    @property
    def num_inputs(self) -> int:
        return len(self._inputs)

    def get_input(self, index: int) -> ITensor:
        return self._inputs[index]


class IParserError(_Api):
    def __init__(self, text: str) -> None:
        self._text = text

    def __str__(self) -> str:
        return self._text


class OnnxParser(_Api):
    #: Set to a message to make the next parse fail with it.
    _fail_with: str | None = None

    def __init__(self, network: INetworkDefinition, logger: Any) -> None:
        self._network = network
        self._errors: list[IParserError] = []

    def parse_from_file(self, path: str) -> bool:
        if type(self)._fail_with:
            self._errors = [IParserError(type(self)._fail_with)]
            return False
        import onnxruntime as ort

        session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        self._network._graph = Path(path)
        self._network._inputs = [ITensor(i.name, tuple(d if isinstance(d, int) else -1 for d in i.shape))
                                 for i in session.get_inputs()]
        return True

    @property
    def num_errors(self) -> int:
        return len(self._errors)

    def get_error(self, index: int) -> IParserError:
        return self._errors[index]


class IOptimizationProfile(_Api):
    def __init__(self) -> None:
        self._shapes: dict[str, tuple] = {}

    def set_shape(self, name: str, low: tuple, opt: tuple, high: tuple) -> None:
        self._shapes[name] = (tuple(low), tuple(opt), tuple(high))


class IHostMemory(_Api):
    def __init__(self, data: bytes) -> None:
        self._data = data

    def __bytes__(self) -> bytes:
        return self._data


class ITimingCache(_Api):
    def __init__(self, data: bytes) -> None:
        self._data = data

    def serialize(self) -> IHostMemory:
        return IHostMemory(self._data or b"timing")


class IBuilderConfig(_Api):
    def __init__(self) -> None:
        self._profiles: list[IOptimizationProfile] = []
        self._pool_limits: dict[str, int] = {}
        self._timing = ITimingCache(b"")

    def set_memory_pool_limit(self, pool: _Member, size: int) -> None:
        self._pool_limits[pool.name] = size

    def add_optimization_profile(self, profile: IOptimizationProfile) -> int:
        self._profiles.append(profile)
        return len(self._profiles) - 1

    def create_timing_cache(self, data: bytes) -> ITimingCache:
        return ITimingCache(bytes(data))

    def set_timing_cache(self, cache: ITimingCache, ignore_mismatch: bool) -> bool:
        self._timing = cache
        return True

    def get_timing_cache(self) -> ITimingCache:
        return self._timing


class Builder(_Api):
    _builds = 0

    def __init__(self, logger: Any) -> None:
        self._logger = logger

    def create_network(self, flags: int) -> INetworkDefinition:
        return INetworkDefinition(flags)

    def create_builder_config(self) -> IBuilderConfig:
        return IBuilderConfig()

    def create_optimization_profile(self) -> IOptimizationProfile:
        return IOptimizationProfile()

    def build_serialized_network(self, network: INetworkDefinition, config: IBuilderConfig) -> IHostMemory:
        type(self)._builds += 1
        EVENTS.append(f"build flags={network._flags}")
        profiles = {name: s for p in config._profiles for name, s in p._shapes.items()}
        return IHostMemory(PLAN_MAGIC + repr((str(network._graph), profiles)).encode())


# -- run ------------------------------------------------------------------------------------------------------
class IExecutionContext(_Api):
    def __init__(self, engine: ICudaEngine) -> None:
        self._engine = engine
        self._shapes: dict[str, tuple[int, ...]] = {}
        self._addresses: dict[str, int] = {}

    def set_input_shape(self, name: str, shape: tuple[int, ...]) -> bool:
        low, _, high = self._engine._profile(name)
        if len(shape) != len(low) or any(s < lo or s > hi for s, lo, hi in zip(shape, low, high)):
            return False
        self._shapes[name] = tuple(int(s) for s in shape)
        return True

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        if name in self._shapes:
            return self._shapes[name]
        batch = next(iter(self._shapes.values()))[0] if self._shapes else 1
        return tuple(batch if d < 0 else d for d in self._engine.get_tensor_shape(name))

    def set_tensor_address(self, name: str, address: int) -> bool:
        self._addresses[name] = address
        return True

    def execute_async_v3(self, stream: int) -> bool:
        feeds = {}
        for name in self._engine._input_names:
            array = FakeDeviceBuffers.memory[self._addresses[name]]
            count = int(np.prod(self._shapes[name]))
            value = array.reshape(-1)[:count].reshape(self._shapes[name])
            feeds[name] = value.astype(np.float32) if value.dtype == np.float16 else value  # the graph is FP32
        results = self._engine._session.run(self._engine._output_names, feeds)
        for name, value in zip(self._engine._output_names, results):
            target = FakeDeviceBuffers.memory[self._addresses[name]].reshape(-1)
            target[: value.size] = value.reshape(-1)
        return True

    def __del__(self) -> None:
        EVENTS.append(f"context freed (current={FakeDeviceBuffers.depth})")


class ICudaEngine(_Api):
    #: Force every engine I/O tensor to this DataType member name (e.g. "HALF"), to test the host-side casts.
    _force_io_dtype: str | None = None

    def __init__(self, graph: str, profiles: dict[str, tuple]) -> None:
        import onnxruntime as ort

        self._session = ort.InferenceSession(graph, providers=["CPUExecutionProvider"])
        self._profiles = profiles
        self._io = [(i, "in") for i in self._session.get_inputs()] + [(o, "out") for o in self._session.get_outputs()]
        self._input_names = [i.name for i in self._session.get_inputs()]
        self._output_names = [o.name for o in self._session.get_outputs()]

    def _profile(self, name: str) -> tuple:
        if name in self._profiles:
            return self._profiles[name]
        shape = self.get_tensor_shape(name)
        return shape, shape, shape

    @property
    def num_io_tensors(self) -> int:
        return len(self._io)

    @property
    def device_memory_size_v2(self) -> int:
        return 1 << 20

    def get_tensor_name(self, index: int) -> str:
        return self._io[index][0].name

    def _node(self, name: str) -> Any:
        return next(node for node, _ in self._io if node.name == name)

    def get_tensor_dtype(self, name: str) -> _Member:
        forced = type(self)._force_io_dtype
        return type.__getattribute__(DataType, forced or _ONNX_TO_TRT[self._node(name).type])  # not recorded

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        return tuple(d if isinstance(d, int) else -1 for d in self._node(name).shape)

    def get_tensor_mode(self, name: str) -> _Member:
        return TensorIOMode.INPUT if name in self._input_names else TensorIOMode.OUTPUT

    def get_tensor_profile_shape(self, name: str, profile_index: int) -> list[tuple[int, ...]]:
        return list(self._profiles[name])

    def create_execution_context(self) -> IExecutionContext:
        return IExecutionContext(self)

    def __del__(self) -> None:
        EVENTS.append(f"engine freed (current={FakeDeviceBuffers.depth})")


class Runtime(_Api):
    def __init__(self, logger: Any) -> None:
        self._logger = logger

    def deserialize_cuda_engine(self, plan: bytes) -> ICudaEngine | None:
        data = bytes(plan)
        if not data.startswith(PLAN_MAGIC):
            return None
        graph, profiles = eval(data[len(PLAN_MAGIC):].decode())  # noqa: S307 - our own repr, test-only
        return ICudaEngine(graph, profiles)


# -- the module -----------------------------------------------------------------------------------------------
class _Module(types.ModuleType):
    def __getattribute__(self, name: str) -> Any:
        _record("tensorrt", name)
        return super().__getattribute__(name)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return _Meta(name, (_Api,), {})  # a name the stand-in does not model: recorded, answers with members


def make_module(version: str = "11.4.0.106") -> types.ModuleType:
    """A fresh fake ``tensorrt`` module reporting ``version``; clears the records and build counter."""
    RECORDED.clear()
    EVENTS.clear()
    Builder._builds = 0
    OnnxParser._fail_with = None
    ICudaEngine._force_io_dtype = None
    module = _Module("tensorrt")
    module.__version__ = version
    for cls in (NetworkDefinitionCreationFlag, MemoryPoolType, TensorIOMode, DataType, ILogger, Builder, OnnxParser,
                Runtime):
        setattr(module, cls.__name__, cls)
    return module


# -- GPU memory -------------------------------------------------------------------------------------------------
class FakeDeviceBuffers(DeviceBuffers):
    """Host arrays standing for device memory; push/pop depth and release are logged in EVENTS."""

    provider = "fake"
    memory: dict[int, np.ndarray] = {}
    depth = 0
    _ids = itertools.count(1 << 20)

    def __init__(self, device_id: int = 0, name: str = "Fake Orin", capability: str = "8.7",
                 sm_count: int = 16, memory_mb: int = 30000) -> None:
        self.device_id = device_id
        self._identity = (name, capability)
        self._props = (sm_count, memory_mb)
        self._pointers = {}
        self._names: dict[str, int] = {}

    @property
    def stream_handle(self) -> int:
        return 7

    def device_identity(self) -> tuple[str, str]:
        return self._identity

    def device_properties(self) -> tuple[int, int]:
        return self._props

    def allocate(self, name: str, shape: tuple[int, ...], dtype: np.dtype) -> int:
        pointer = next(self._ids)
        FakeDeviceBuffers.memory[pointer] = np.zeros(int(np.prod(shape)) if shape else 1, dtype=dtype)
        self._pointers[name] = pointer
        return pointer

    def upload(self, name: str, array: np.ndarray) -> None:
        target = FakeDeviceBuffers.memory[self._pointers[name]]
        if array.dtype != target.dtype:
            raise TypeError(f"upload of {array.dtype} into a {target.dtype} device buffer '{name}'")
        flat = np.ascontiguousarray(array).reshape(-1)
        target[: flat.size] = flat

    def download(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        count = int(np.prod(shape)) if shape else 1
        return FakeDeviceBuffers.memory[self._pointers[name]][:count].copy().reshape(shape)

    def synchronize(self) -> None:
        return None

    def release(self) -> None:
        EVENTS.append(f"buffers released (current={FakeDeviceBuffers.depth})")
        for pointer in self._pointers.values():
            FakeDeviceBuffers.memory.pop(pointer, None)
        self._pointers.clear()

    def push(self) -> None:
        FakeDeviceBuffers.depth += 1

    def pop(self) -> None:
        FakeDeviceBuffers.depth -= 1
