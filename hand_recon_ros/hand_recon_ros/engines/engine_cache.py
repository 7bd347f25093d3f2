"""TensorRT engine cache: keys, optimisation-profile shapes and the metadata sidecar that guard cached engines.

An engine is only valid for the exact ONNX bytes, TensorRT version, GPU and build settings it was made with.
Everything that decides validity lives here, free of ``tensorrt``, so it is unit-tested on machines without a GPU:
the key (a hash over every build input), the file names derived from it, the JSON sidecar written next to each
engine and re-checked before the engine is deserialised, and the "build is running" log line.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hand_recon_ros.engines.base import BackendError

_LOG = logging.getLogger(__name__)

#: Bump when the sidecar layout or the key's meaning changes: engines from older layouts are then rebuilt.
CACHE_FORMAT_VERSION = 2  # 2: strongly typed builds from precision graphs, GPU SM count/memory/L4T in the key
PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "int8")
DEFAULT_MAX_BATCH = 2  # two hands
DEFAULT_WORKSPACE_MB = 1024
ENGINES_SUBDIR = "engines"
KEY_HEX_CHARS = 16  # 64 bits of the sha256: file names stay short, collisions stay negligible
_HASH_CHUNK_BYTES = 1 << 20

# TensorRT DataType enum member names → numpy dtypes (BF16/FP8/INT4 have no numpy type and are refused).
TRT_DTYPE_TO_NUMPY: dict[str, np.dtype] = {
    "FLOAT": np.dtype(np.float32),
    "HALF": np.dtype(np.float16),
    "INT8": np.dtype(np.int8),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
}

# ONNX TensorProto element types → numpy (the ones the project's networks and tests use).
_ONNX_ELEM_TO_NUMPY: dict[int, np.dtype] = {
    1: np.dtype(np.float32),
    2: np.dtype(np.uint8),
    3: np.dtype(np.int8),
    6: np.dtype(np.int32),
    7: np.dtype(np.int64),
    9: np.dtype(np.bool_),
    10: np.dtype(np.float16),
    11: np.dtype(np.float64),
}


def default_cache_dir() -> Path:
    """Engines and timing caches unless ``cache_dir`` is given: <model cache>/engines, the model cache being
    $HAND_RECON_CACHE_DIR or ${XDG_CACHE_HOME:-~/.cache}/hand_recon_ros (the rule models.model_files uses)."""
    override = os.environ.get("HAND_RECON_CACHE_DIR")
    if override:
        return Path(override).expanduser() / "engines"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "hand_recon_ros" / "engines"


def engine_cache_dir_for(onnx_path: str | Path) -> Path:
    """Default engine folder for a model: ``engines/`` beside the ONNX file (the model cache), so engines follow
    whatever model folder a tool was pointed at; ``default_cache_dir()`` when that folder is not writable."""
    folder = Path(onnx_path).resolve().parent
    if os.access(folder, os.W_OK):
        return folder / ENGINES_SUBDIR
    return default_cache_dir()


def numpy_dtype_for_trt(dtype_name: str) -> np.dtype:
    """Numpy dtype for a TensorRT ``DataType`` member name (``trt.DataType.HALF.name`` → float16)."""
    try:
        return TRT_DTYPE_TO_NUMPY[dtype_name.upper()]
    except KeyError:
        raise BackendError(
            f"TensorRT data type {dtype_name} has no numpy equivalent; supported: {sorted(TRT_DTYPE_TO_NUMPY)}"
        ) from None


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, read in chunks (ONNX files can be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_HASH_CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class OnnxInput:
    """One graph input as declared in the ONNX file: dims are ints, or None/str for a dynamic axis."""

    name: str
    shape: tuple[int | str | None, ...]
    dtype: np.dtype


def read_onnx_inputs(onnx_path: str | Path) -> list[OnnxInput]:
    """The real graph inputs of an ONNX file (initializers excluded) with their declared shapes and dtypes."""
    return read_onnx_io(onnx_path)[0]


def read_onnx_io(onnx_path: str | Path) -> tuple[list[OnnxInput], list[OnnxInput]]:
    """Graph inputs (initializers excluded) and outputs of an ONNX file with declared shapes and dtypes."""
    import onnx

    try:
        model = onnx.load(str(onnx_path), load_external_data=False)
    except Exception as exc:
        raise BackendError(f"cannot read ONNX file {onnx_path}: {exc}") from exc
    initializers = {init.name for init in model.graph.initializer}
    values = [v for v in model.graph.input if v.name not in initializers]
    described = [_describe(onnx_path, v) for v in [*values, *model.graph.output]]
    return described[: len(values)], described[len(values) :]


def _describe(onnx_path: str | Path, value: Any) -> OnnxInput:
    """One ValueInfo as name, dims (int, or dim_param/None when dynamic) and numpy dtype."""
    tensor_type = value.type.tensor_type
    dims: list[int | str | None] = []
    for dim in tensor_type.shape.dim:
        if dim.HasField("dim_value") and dim.dim_value > 0:
            dims.append(int(dim.dim_value))
        elif dim.HasField("dim_param"):
            dims.append(dim.dim_param)
        else:
            dims.append(None)
    dtype = _ONNX_ELEM_TO_NUMPY.get(tensor_type.elem_type)
    if dtype is None:
        raise BackendError(f"{onnx_path}: tensor '{value.name}' has unsupported ONNX element type "
                           f"{tensor_type.elem_type}")
    return OnnxInput(value.name, tuple(dims), dtype)


ProfileShapes = dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]


def compute_profiles(
    inputs: Sequence[OnnxInput],
    max_batch: int = DEFAULT_MAX_BATCH,
    opt_batch: int | None = None,
    overrides: dict[str, tuple[int, ...]] | None = None,
) -> ProfileShapes:
    """Min/opt/max shapes per input: a dynamic axis 0 becomes the batch (1..max_batch), fixed axes stay.

    A dynamic axis other than 0 cannot be guessed: give its full shape in ``overrides`` (used as min=opt=max).
    A model exported with a fixed batch keeps it (the profile then cannot serve more than that batch).
    """
    if max_batch < 1:
        raise BackendError(f"max_batch must be >= 1, got {max_batch}")
    opt = max_batch if opt_batch is None else opt_batch
    if not 1 <= opt <= max_batch:
        raise BackendError(f"opt_batch must be in 1..max_batch ({max_batch}), got {opt}")
    overrides = overrides or {}
    profiles: ProfileShapes = {}
    for spec in inputs:
        if spec.name in overrides:
            fixed = tuple(int(d) for d in overrides[spec.name])
            if len(fixed) != len(spec.shape):
                raise BackendError(f"profile override for input '{spec.name}' has rank {len(fixed)}, "
                                   f"the model declares {spec.shape}")
            profiles[spec.name] = (fixed, fixed, fixed)
            continue
        if not spec.shape:
            profiles[spec.name] = ((), (), ())
            continue
        rest = spec.shape[1:]
        dynamic_rest = [axis + 1 for axis, d in enumerate(rest) if not isinstance(d, int)]
        if dynamic_rest:
            raise BackendError(
                f"input '{spec.name}' has dynamic axis/axes {dynamic_rest} besides the batch axis "
                f"(declared {spec.shape}); pass its shape in the profile overrides"
            )
        rest_ints = tuple(int(d) for d in rest)  # type: ignore[arg-type]
        batch = spec.shape[0]
        if isinstance(batch, int):
            if max_batch > batch:
                _LOG.debug("input '%s' has a fixed batch of %d; max_batch %d does not apply", spec.name,
                           batch, max_batch)
            shape = (batch, *rest_ints)
            profiles[spec.name] = (shape, shape, shape)
        else:
            profiles[spec.name] = ((1, *rest_ints), (opt, *rest_ints), (max_batch, *rest_ints))
    return profiles


def profile_to_ort_strings(profiles: ProfileShapes) -> tuple[str, str, str]:
    """ORT TensorRT provider strings (``trt_profile_min/opt/max_shapes``: ``name:1x3x224x224,other:...``)."""
    parts: list[list[str]] = [[], [], []]
    for name, shapes in profiles.items():
        for i, shape in enumerate(shapes):
            parts[i].append(f"{name}:{'x'.join(str(d) for d in shape)}")
    return ",".join(parts[0]), ",".join(parts[1]), ",".join(parts[2])


@dataclass(frozen=True)
class EngineKey:
    """Every input that makes a built engine valid or not; ``digest`` hashes them all."""

    onnx_sha256: str
    tensorrt_version: str
    gpu_name: str
    compute_capability: str
    precision: str
    profiles: tuple[tuple[str, tuple[int, ...], tuple[int, ...], tuple[int, ...]], ...]
    workspace_bytes: int
    calibration_sha256: str = ""
    format_version: int = CACHE_FORMAT_VERSION
    extra: tuple[tuple[str, str], ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise BackendError(f"precision must be one of {', '.join(PRECISIONS)}, got '{self.precision}'")
        if self.precision == "int8" and not self.calibration_sha256:
            raise BackendError("precision int8 needs calibration data (calib_dir); none given")

    @staticmethod
    def profiles_tuple(
        profiles: ProfileShapes,
    ) -> tuple[tuple[str, tuple[int, ...], tuple[int, ...], tuple[int, ...]], ...]:
        """The profile dict in a canonical, hashable order."""
        return tuple((name, *[tuple(int(d) for d in s) for s in profiles[name]]) for name in sorted(profiles))

    def as_json(self) -> dict[str, Any]:
        """JSON-safe dict of the key's fields (lists for tuples)."""
        return json.loads(json.dumps(asdict(self)))

    @property
    def digest(self) -> str:
        """Short hex hash over every field; changes whenever any field changes."""
        canonical = json.dumps(self.as_json(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:KEY_HEX_CHARS]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "unknown"


def engine_path_for(cache_dir: str | Path, onnx_path: str | Path, key: EngineKey) -> Path:
    """``<cache>/<onnx stem>.<precision>.<gpu>.<digest>.engine``: readable, and unique per key."""
    name = f"{Path(onnx_path).stem}.{key.precision}.{_slug(key.gpu_name)}.{key.digest}.engine"
    return Path(cache_dir) / name


def sidecar_path_for(engine_path: str | Path) -> Path:
    """The metadata JSON that sits next to an engine file."""
    return Path(str(engine_path) + ".json")


def timing_cache_path_for(cache_dir: str | Path, key: EngineKey) -> Path:
    """Timing cache shared by all models built with one TensorRT version on one GPU model."""
    return Path(cache_dir) / f"timing.trt{_slug(key.tensorrt_version)}.{_slug(key.gpu_name)}.cache"


@dataclass(frozen=True)
class CacheDecision:
    """Whether a cached engine may be loaded, and why not when it may not."""

    reuse: bool
    reason: str


def check_cached_engine(engine_path: str | Path, key: EngineKey) -> CacheDecision:
    """Decide from the sidecar whether ``engine_path`` was built for exactly ``key`` (never trust the name)."""
    engine_path = Path(engine_path)
    sidecar = sidecar_path_for(engine_path)
    if not engine_path.is_file():
        return CacheDecision(False, f"no cached engine at {engine_path}")
    if not sidecar.is_file():
        return CacheDecision(False, f"engine {engine_path.name} has no metadata sidecar {sidecar.name}")
    try:
        meta = json.loads(sidecar.read_text())
        recorded_key = meta["key"]
        recorded_size = int(meta["engine_bytes"])
        recorded_sha = str(meta["engine_sha256"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return CacheDecision(False, f"metadata sidecar {sidecar.name} is unreadable ({exc!r})")
    expected = key.as_json()
    for field_name in sorted(set(expected) | set(recorded_key)):
        if recorded_key.get(field_name) != expected.get(field_name):
            return CacheDecision(
                False,
                f"engine was built for {field_name}={recorded_key.get(field_name)!r}, "
                f"this run needs {expected.get(field_name)!r}",
            )
    size = engine_path.stat().st_size
    if size != recorded_size:
        return CacheDecision(False, f"engine file is {size} bytes, the sidecar records {recorded_size} "
                                    "(truncated or replaced)")
    if sha256_file(engine_path) != recorded_sha:
        return CacheDecision(False, "engine file bytes differ from the sha256 in its sidecar (corrupt or replaced)")
    return CacheDecision(True, "cached engine matches")


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temp file and a rename (readers never see a half-written file)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise


_atomic_write = atomic_write


def write_engine(engine_path: str | Path, plan: bytes, key: EngineKey, build_seconds: float) -> None:
    """Write the engine and then its sidecar, each atomically (a crash never leaves a valid-looking pair)."""
    engine_path = Path(engine_path)
    engine_path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(engine_path, plan)
    meta = {
        "key": key.as_json(),
        "digest": key.digest,
        "engine_bytes": len(plan),
        "engine_sha256": hashlib.sha256(plan).hexdigest(),
        "build_seconds": round(build_seconds, 3),
        "built_at_unix_s": int(time.time()),
    }
    _atomic_write(sidecar_path_for(engine_path), json.dumps(meta, indent=2, sort_keys=True).encode())


def load_or_build_engine(
    engine_path: str | Path,
    key: EngineKey,
    build: Callable[[], bytes],
    model_label: str,
    force_reason: str | None = None,
) -> tuple[bytes, bool]:
    """Return ``(plan bytes, built)``: the cached engine when its sidecar matches ``key``, else a fresh build.

    A build logs a WARNING first saying it is running and may take minutes (so a first start does not look
    hung), and one INFO line with its duration afterwards. ``force_reason`` skips the cache (e.g. the cached
    plan failed to deserialise).
    """
    engine_path = Path(engine_path)
    decision = CacheDecision(False, force_reason) if force_reason else check_cached_engine(engine_path, key)
    if decision.reuse:
        _LOG.info("%s: loading cached TensorRT engine %s", model_label, engine_path)
        return engine_path.read_bytes(), False
    _LOG.warning(
        "%s: building a TensorRT %s engine (%s); a build is running and may take several minutes, "
        "it is cached at %s for the next start",
        model_label, key.precision, decision.reason, engine_path,
    )
    start = time.monotonic()
    plan = build()
    if not plan:
        raise BackendError(f"{model_label}: TensorRT engine build failed (the builder returned no engine)")
    seconds = time.monotonic() - start
    _LOG.info("%s: TensorRT engine built in %.1f s (%d bytes)", model_label, seconds, len(plan))
    try:
        write_engine(engine_path, plan, key, seconds)
    except OSError as exc:  # a full or read-only cache must not throw away a build that worked
        _LOG.warning("%s: the engine was built but cannot be cached at %s (%s: %s); this run uses it from memory "
                     "and the next start builds again", model_label, engine_path, type(exc).__name__, exc)
    return plan, True
