"""The TensorRT backend's own logic on a CPU, with a recording stand-in for ``tensorrt`` and for GPU memory.

Not about TensorRT itself (test_engines_gpu.py is): strongly typed builds from the precision graph, cached reuse,
rebuild on a foreign engine, host-side casts, teardown order, a cache that cannot be written, and the one engine
key that `hand-recon build-engine` and the node share. The stand-in's engine runs the ONNX graph with ONNX Runtime.
"""

from __future__ import annotations

import logging
import shutil
import sys
from pathlib import Path

import fake_tensorrt as fake
import numpy as np
import pytest
from test_engines_gpu import _write_conv_model

from hand_recon_ros.engines import engine_cache as ec
from hand_recon_ros.engines import engine_key as ek
from hand_recon_ros.engines import tensorrt_backend
from hand_recon_ros.engines.base import BackendError
from hand_recon_ros.engines.registry import create_backend

FP16_ATOL = 2e-2


@pytest.fixture
def fake_trt(monkeypatch):
    """``import tensorrt`` gives the recording stand-in (11.4); device buffers are host arrays."""
    module = fake.make_module("11.4.0.106")
    monkeypatch.setitem(sys.modules, "tensorrt", module)
    monkeypatch.setattr(tensorrt_backend, "create_device_buffers",
                        lambda provider="auto", device_id=0: fake.FakeDeviceBuffers(device_id))
    return module


@pytest.fixture
def conv_onnx(tmp_path: Path) -> Path:
    return _write_conv_model(tmp_path / "conv.onnx")


def _x(batch: int) -> np.ndarray:
    return np.random.default_rng(batch).random((batch, 8, 8, 3), dtype=np.float32)


def _reference(path: Path, x: np.ndarray) -> np.ndarray:
    return create_backend("onnxruntime-cpu", path).load().run({"image": x})["out"]


@pytest.mark.parametrize(("precision", "atol"), [("fp32", 1e-5), ("fp16", FP16_ATOL)])
def test_strongly_typed_build_from_the_precision_graph_then_a_cache_hit(fake_trt, conv_onnx, tmp_path, precision,
                                                                       atol):
    with create_backend("tensorrt", conv_onnx, precision=precision, max_batch=4, cache_dir=str(tmp_path)) as trt:
        assert trt.built and trt.engine_path.is_file() and ec.sidecar_path_for(trt.engine_path).is_file()
        assert fake.EVENTS[0] == "build flags=2"  # 1 << STRONGLY_TYPED, no precision flags
        assert trt.graph_path.name.startswith(f"conv.{precision}.") if precision != "fp32" else True
        for batch in (1, 3):
            np.testing.assert_allclose(trt.run({"image": _x(batch)})["out"], _reference(conv_onnx, _x(batch)),
                                       atol=atol)
    assert list(tmp_path.glob("timing.trt11-4-0-106.fake-orin.cache"))
    with create_backend("tensorrt", conv_onnx, precision=precision, max_batch=4, cache_dir=str(tmp_path)) as again:
        assert again.built is False and again.engine_path == trt.engine_path
    assert fake.Builder._builds == 1


def test_foreign_engine_with_a_matching_sidecar_is_rebuilt(fake_trt, conv_onnx, tmp_path, caplog):
    with create_backend("tensorrt", conv_onnx, cache_dir=str(tmp_path)) as trt:
        key_json = ec.sidecar_path_for(trt.engine_path).read_text()
    # Bytes TensorRT refuses (another TensorRT's plan), recorded consistently in the sidecar: deserialise fails.
    import json

    key = ec.EngineKey(**{k: (tuple(tuple(x) if isinstance(x, list) else x for x in v)
                             if isinstance(v, list) else v) for k, v in json.loads(key_json)["key"].items()})
    key = ec.EngineKey(**{**key.__dict__, "profiles": tuple((p[0], *map(tuple, p[1:])) for p in key.profiles),
                          "extra": tuple(tuple(e) for e in key.extra)})
    ec.write_engine(trt.engine_path, b"foreign plan", key, 1.0)
    assert ec.check_cached_engine(trt.engine_path, key).reuse
    with caplog.at_level(logging.WARNING):
        with create_backend("tensorrt", conv_onnx, cache_dir=str(tmp_path)) as again:
            assert again.built is True
            assert again.run({"image": _x(2)})["out"].shape == (2, 4)
    assert "failed to deserialise" in caplog.text


def test_fp16_engine_io_is_cast_on_the_host(fake_trt, conv_onnx, tmp_path):
    fake.ICudaEngine._force_io_dtype = "HALF"  # an engine whose inputs/outputs are FP16
    with create_backend("tensorrt", conv_onnx, precision="fp32", cache_dir=str(tmp_path)) as trt:
        assert trt.inputs[0].dtype == np.float32 and trt.outputs[0].dtype == np.float32
        out = trt.run({"image": _x(2)})["out"]
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, _reference(conv_onnx, _x(2)), atol=FP16_ATOL)


def test_close_drops_context_and_engine_with_the_cuda_context_current_before_freeing_buffers(fake_trt, conv_onnx,
                                                                                               tmp_path):
    backend = create_backend("tensorrt", conv_onnx, cache_dir=str(tmp_path), device_id=1).load()
    assert "device 1" in backend.describe() and backend._buffers.device_id == 1
    fake.EVENTS.clear()
    backend.close()
    assert fake.EVENTS == ["context freed (current=1)", "engine freed (current=1)", "buffers released (current=0)"]


def test_parser_errors_and_an_oversized_shape_are_named(fake_trt, conv_onnx, tmp_path):
    fake.OnnxParser._fail_with = "In node 3 (Conv): unsupported attribute"
    with pytest.raises(BackendError, match=r"TensorRT cannot parse .*conv.onnx: In node 3 \(Conv\)"):
        create_backend("tensorrt", conv_onnx, cache_dir=str(tmp_path), precision="fp32").load()
    fake.OnnxParser._fail_with = None
    with create_backend("tensorrt", conv_onnx, cache_dir=str(tmp_path), max_batch=2) as trt:
        with pytest.raises(BackendError, match=r"input 'image' has shape \(2, 8, 9, 3\)|expected"):
            trt.run({"image": np.zeros((2, 8, 9, 3), np.float32)})


def test_a_cache_that_cannot_be_written_never_aborts_a_build(fake_trt, conv_onnx, tmp_path, caplog):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    with caplog.at_level(logging.WARNING):
        with create_backend("tensorrt", conv_onnx, precision="fp16", cache_dir=str(blocker / "engines")) as trt:
            assert trt.built
            np.testing.assert_allclose(trt.run({"image": _x(2)})["out"], _reference(conv_onnx, _x(2)),
                                       atol=FP16_ATOL)
    text = caplog.text
    assert "cannot cache" in text and "using a temporary copy" in text  # the FP16 graph
    assert "the engine was built but cannot be cached" in text
    assert "cannot save the timing cache" in text


def test_gpu_without_fast_fp16_is_refused_by_name(fake_trt, conv_onnx, tmp_path, monkeypatch):
    monkeypatch.setattr(tensorrt_backend, "create_device_buffers",
                        lambda provider="auto", device_id=0: fake.FakeDeviceBuffers(device_id, "Old GPU", "5.0"))
    with pytest.raises(BackendError, match=r"GPU Old GPU \(compute capability 5.0\) has no fast fp16 kernels "
                                           r"\(needs 5.3\+\); fix: precision fp32"):
        create_backend("tensorrt", conv_onnx, cache_dir=str(tmp_path)).load()
    with create_backend("tensorrt", conv_onnx, cache_dir=str(tmp_path), precision="fp32") as trt:
        assert trt.built


def test_key_holds_the_jetson_module_identity(conv_onnx, tmp_path):
    options = {"precision": "fp32", "max_batch": 2}
    orin_nx = ek.DeviceIdentity("Orin", "8.7", 8, 15000, "R36 (release), REVISION: 4.3")
    agx = ek.DeviceIdentity("Orin", "8.7", 16, 62000, "R36 (release), REVISION: 4.3")
    other_l4t = ek.DeviceIdentity("Orin", "8.7", 8, 15000, "R35 (release), REVISION: 5.0")
    digests = {ek.engine_key_for_options(conv_onnx, options, "10.3.0", d).digest for d in (orin_nx, agx, other_l4t)}
    assert len(digests) == 3
    assert ek.engine_key_for_options(conv_onnx, options, "10.3.0", orin_nx).digest == \
        ek.engine_key_for_options(conv_onnx, dict(options), "10.3.0", orin_nx).digest
    release = tmp_path / "nv_tegra_release"
    release.write_text("# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic, EABI: aarch64\n")
    assert ek.l4t_release(release) == "R36 (release), REVISION: 4.3"
    assert ek.l4t_release(tmp_path / "absent") == ""


# -- one engine key: build-engine and the node ------------------------------------------------------------------
@pytest.fixture
def model_copy(tmp_path, model_paths) -> Path:
    """The cached TFLite/ONNX files copied (with their verified stamp) into a folder of this test's own."""
    folder = tmp_path / "models"
    folder.mkdir()
    source = model_paths.palm_onnx.parent
    for path in source.iterdir():
        if path.is_file() and (path.suffix in (".tflite", ".onnx") and "full" in path.name or path.suffix == ".json"):
            shutil.copy2(path, folder / path.name)
    return folder


@pytest.mark.parametrize("folders", ["engines_beside_models", "engine_cache_dir"])
def test_a_prebuilt_engine_is_found_by_the_node_settings(fake_trt, model_copy, monkeypatch, capsys, folders):
    """build-engine and the node agree on the engine file: engines/ beside the models (the deprecated
    engine_cache_dir-alone setting), or a separate engine_cache_dir (--engine-cache-dir = the parameter)."""
    from hand_recon_ros.cli import main as cli_main
    from hand_recon_ros.engines import cuda_buffers
    from hand_recon_ros.pipeline.config import PipelineConfig
    from hand_recon_ros.pipeline.hand_pipeline import HandPipeline
    from hand_recon_ros.ros.parameters import PARAMETERS, pipeline_settings

    monkeypatch.setattr(cuda_buffers, "cuda_unavailable_reason", lambda: None)  # the stand-in "GPU" is there
    monkeypatch.setattr(ek, "live_device_identity", lambda device_id=0, buffers="auto":
                        ek.device_identity_of(fake.FakeDeviceBuffers(device_id)))
    engines = model_copy.parent / "engines_elsewhere"
    if folders == "engine_cache_dir":
        cli_folders = ["--models-dir", str(model_copy), "--engine-cache-dir", str(engines)]
        node_folders = {"models_dir": str(model_copy), "engine_cache_dir": str(engines)}
    else:
        cli_folders = ["--models-dir", str(model_copy)]
        node_folders = {"engine_cache_dir": str(model_copy)}  # deprecated: the model folder, engines beside
    assert cli_main(["build-engine", *cli_folders]) == 0
    built = capsys.readouterr().out
    assert "palm: built" in built and "landmark: built" in built
    assert cli_main(["build-engine", *cli_folders, "--print-key"]) == 0
    keys = dict(line.split(": ", 1) for line in capsys.readouterr().out.splitlines())
    builds = fake.Builder._builds
    # The node: its parameter defaults, backend tensorrt, the same folders.
    values = {spec.name: spec.default for spec in PARAMETERS}
    values.update(backend="tensorrt", refine_3d=False, **node_folders)
    config = PipelineConfig(**pipeline_settings(values, PipelineConfig.field_names()))
    pipeline = HandPipeline(config)
    try:
        for backend, label in ((pipeline.palm.backend, "palm"), (pipeline.landmarks.backend, "landmark")):
            assert backend.built is False, f"{label}: the node built instead of loading the prebuilt engine"
            assert keys[label] == f"key {backend.engine_path.name.split('.')[-2]} engine {backend.engine_path}"
            expected = engines if folders == "engine_cache_dir" else model_copy / "engines"
            assert backend.engine_path.parent == expected, backend.engine_path
    finally:
        pipeline.close()
    assert fake.Builder._builds == builds
    assert pipeline.palm.backend._loaded is False and pipeline.landmarks.backend._loaded is False
