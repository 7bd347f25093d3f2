"""THE engine key: one function from (ONNX file, backend options, TensorRT version, GPU) to the cache key.

``hand-recon build-engine``, ``--print-key`` and the TensorRT backend the pipeline/node creates all call
``engine_key_for_options``, so a prebuilt engine is found whenever the same options are used. The key holds the
precision graph's digest (source sha, converter version, opset, calibration set), the batch profile, the workspace,
the TensorRT version and the GPU: name, compute capability, SM count and memory, and on Jetson the L4T release, so
an engine copied between different Orin modules (same compute capability, other SM count/memory) is rebuilt.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hand_recon_ros.engines import engine_cache as ec
from hand_recon_ros.engines import precision_graphs as pg
from hand_recon_ros.engines.base import BackendError

L4T_RELEASE_FILE = Path("/etc/nv_tegra_release")
TENSORRT_DEFAULT_PRECISION = "fp16"
TENSORRT_INT8_FLAVOUR = "tensorrt"  # symmetric Q/DQ: the only INT8 TensorRT builds explicitly


@dataclass(frozen=True)
class DeviceIdentity:
    """What about the GPU decides whether an engine built on it may run here."""

    name: str
    compute_capability: str
    sm_count: int = 0
    memory_mb: int = 0
    l4t_release: str = ""


def l4t_release(path: Path = L4T_RELEASE_FILE) -> str:
    """The Jetson L4T release line's "R36 (release), REVISION: 4.3" part ('' off Jetson)."""
    try:
        first = path.read_text(errors="replace").splitlines()[0]
    except (OSError, IndexError):
        return ""
    return first.lstrip("# ").split(", GCID")[0].strip()


def live_device_identity(device_id: int = 0, buffers: str = "auto") -> DeviceIdentity:
    """The identity of CUDA device ``device_id`` (through torch or pycuda, as the backend sees it)."""
    from hand_recon_ros.engines.cuda_buffers import create_device_buffers

    device = create_device_buffers(buffers, device_id)
    try:
        return device_identity_of(device)
    finally:
        device.release()


def device_identity_of(device: Any) -> DeviceIdentity:
    """DeviceIdentity from a DeviceBuffers (name, capability, SM count, memory) plus the L4T release."""
    name, capability = device.device_identity()
    sm_count, memory_mb = device.device_properties()
    return DeviceIdentity(name, capability, int(sm_count), int(memory_mb), l4t_release())


def engine_key_for_options(
    onnx_path: str | Path, options: dict[str, Any], tensorrt_version: str, device: DeviceIdentity
) -> ec.EngineKey:
    """The engine key for building ``onnx_path`` (the FP32 source) with backend ``options`` on ``device``."""
    precision = pg.resolve_precision(options.get("precision"), TENSORRT_DEFAULT_PRECISION)
    calibration = None
    if precision == "int8":
        if not options.get("calib_dir"):
            raise BackendError("tensorrt: precision int8 needs calib_dir (a folder of representative images)")
        calibration = pg.Calibration.from_dir(
            options["calib_dir"], int(options.get("calib_max_images", pg.cs.DEFAULT_CALIB_MAX_IMAGES)))
    graph = pg.graph_key(onnx_path, precision, calibration, TENSORRT_INT8_FLAVOUR)
    opt = options.get("opt_batch")
    profiles = ec.compute_profiles(ec.read_onnx_inputs(onnx_path), int(options.get("max_batch", ec.DEFAULT_MAX_BATCH)),
                                   None if opt is None else int(opt))
    return ec.EngineKey(
        onnx_sha256=graph["source_sha256"],
        tensorrt_version=str(tensorrt_version),
        gpu_name=device.name,
        compute_capability=device.compute_capability,
        precision=precision,
        profiles=ec.EngineKey.profiles_tuple(profiles),
        workspace_bytes=int(options.get("workspace_mb", ec.DEFAULT_WORKSPACE_MB)) << 20,
        calibration_sha256=calibration.digest if calibration else "",
        extra=(("graph_digest", pg.key_digest(graph)), ("sm_count", str(device.sm_count)),
               ("memory_mb", str(device.memory_mb)), ("l4t_release", device.l4t_release),
               ("network", "strongly_typed")),
    )


def engine_path_for_options(
    onnx_path: str | Path, options: dict[str, Any], tensorrt_version: str, device: DeviceIdentity
) -> tuple[ec.EngineKey, Path]:
    """The key and the engine file it names (in ``cache_dir`` or the default engine folder)."""
    key = engine_key_for_options(onnx_path, options, tensorrt_version, device)
    cache_dir = Path(options.get("cache_dir") or ec.engine_cache_dir_for(onnx_path))
    return key, ec.engine_path_for(cache_dir, onnx_path, key)
