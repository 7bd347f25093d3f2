"""Every TensorRT name the backend touches exists in BOTH supported releases' Python bindings (10.x and 11.x).

The name lists in test/data/ come from the published `tensorrt-cu12-bindings` wheels (downloaded, inspected, never
installed; regenerate with scripts/tensorrt_api_names.py). The backend's code paths run against the recording
stand-in (fake_tensorrt.py), which logs every attribute read from `tensorrt` and from the objects it returns; a
name missing from any list fails the test by name. Names are checked without their class (the lists are flat),
and a name may be the tail of a listed string (the linker stores "INT8" inside "UINT8").
"""

from __future__ import annotations

import sys
from pathlib import Path

import fake_tensorrt as fake
import numpy as np
import pytest
from test_engines_gpu import _write_conv_model

from hand_recon_ros.engines import auto_select, tensorrt_backend
from hand_recon_ros.engines import engine_cache as ec
from hand_recon_ros.engines.base import BackendError
from hand_recon_ros.engines.registry import create_backend

DATA = Path(__file__).parent / "data"
LISTS = sorted(DATA.glob("tensorrt_api_names_*.txt"))


def _names(path: Path) -> set[str]:
    return {line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")}


def _present(name: str, names: set[str]) -> bool:
    return name in names or any(entry.endswith(name) for entry in names)


def test_lists_cover_10_and_11_and_tell_the_removed_names_apart():
    versions = {p.stem.rsplit("_", 1)[-1].split(".")[0] for p in LISTS}
    assert {"10", "11"} <= versions, f"need TensorRT 10.x and 11.x name lists in {DATA}, have {LISTS}"
    for path in LISTS:
        names = _names(path)
        assert all(_present(n, names) for n in ("Builder", "OnnxParser", "STRONGLY_TYPED", "execute_async_v3",
                                                 "set_input_shape")), path
        removed_in_11 = {"FP16", "int8_calibrator", "platform_has_fast_fp16", "IInt8EntropyCalibrator2"}
        if path.name.startswith("tensorrt_api_names_11."):
            assert not any(_present(n, names) for n in removed_in_11), path
        else:
            assert all(_present(n, names) for n in removed_in_11), path


def _exercise_backend(tmp_path: Path, monkeypatch) -> set[tuple[str, str]]:
    """Run the backend's paths (probe, build fp32/fp16, cache hit, run, foreign plan, parse error, close)."""
    monkeypatch.setitem(sys.modules, "tensorrt", fake.make_module("11.4.0.106"))
    monkeypatch.setattr(tensorrt_backend, "create_device_buffers",
                        lambda provider="auto", device_id=0: fake.FakeDeviceBuffers(device_id))
    model = _write_conv_model(tmp_path / "conv.onnx")
    auto_select.probe_tensorrt()
    x = np.zeros((2, 8, 8, 3), np.float32)
    for precision in ("fp32", "fp16"):
        for _ in range(2):  # build, then cache hit
            with create_backend("tensorrt", model, precision=precision, cache_dir=str(tmp_path)) as trt:
                trt.run({"image": x})
                trt.run({"image": np.zeros((5, 8, 8, 3), np.float32)})  # chunked
    path = trt.engine_path
    path.write_bytes(b"not a plan")  # corrupt: rebuilt
    with create_backend("tensorrt", model, precision="fp16", cache_dir=str(tmp_path)):
        pass
    fake.OnnxParser._fail_with = "unsupported"
    with pytest.raises(BackendError):
        create_backend("tensorrt", model, precision="fp32", cache_dir=str(tmp_path), rebuild=True).load()
    assert ec.check_cached_engine(path, ec.EngineKey("", "", "", "", "fp32", (), 0)).reuse is False
    return set(fake.RECORDED)


@pytest.mark.parametrize("names_file", LISTS, ids=[p.stem for p in LISTS])
def test_every_tensorrt_name_the_backend_uses_exists_in_the_release(names_file, tmp_path, monkeypatch):
    recorded = _exercise_backend(tmp_path, monkeypatch)
    used = {name for _, name in recorded}  # module-level names are recorded as ("tensorrt", name)
    names = _names(names_file)
    missing = sorted(n for n in used if not _present(n, names))
    assert not missing, f"TensorRT names used by the backend but absent from {names_file.name}: {missing}"
    assert {"create_network", "STRONGLY_TYPED", "deserialize_cuda_engine", "execute_async_v3"} <= used
