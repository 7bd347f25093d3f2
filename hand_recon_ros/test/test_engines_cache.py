"""Engine cache logic without a GPU: keys, file names, sidecar checks, rebuild decisions, profiles, calibration."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from hand_recon_ros.engines import engine_cache as ec
from hand_recon_ros.engines.base import BackendError
from hand_recon_ros.engines.tensorrt_backend import (
    TensorRTBackend,
    calibration_digest,
    calibration_files,
    load_calibration_images,
    oversized_batch,
)


def _write_model(path: Path, input_shape: list, extra_input: list | None = None) -> Path:
    """A tiny ONNX graph: image (…, 4) @ W + bias → relu; optional second input added to the result."""
    rng = np.random.default_rng(0)
    weights = rng.standard_normal((4, 3)).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["image", "W"], ["y"]), helper.make_node("Relu", ["y"], ["out"])]
    inputs = [helper.make_tensor_value_info("image", TensorProto.FLOAT, input_shape)]
    if extra_input is not None:
        inputs.append(helper.make_tensor_value_info("mask", TensorProto.FLOAT, extra_input))
        nodes.append(helper.make_node("Add", ["out", "mask"], ["out2"]))
    outputs = [helper.make_tensor_value_info("out2" if extra_input else "out", TensorProto.FLOAT, None)]
    graph = helper.make_graph(nodes, "tiny", inputs, outputs, [numpy_helper.from_array(weights, "W")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.save(model, str(path))
    return path


def _key(**changes: object) -> ec.EngineKey:
    base = ec.EngineKey(
        onnx_sha256="a" * 64,
        tensorrt_version="10.3.0",
        gpu_name="Orin (nvgpu)",
        compute_capability="8.7",
        precision="fp16",
        profiles=(("image", (1, 224, 224, 3), (2, 224, 224, 3), (2, 224, 224, 3)),),
        workspace_bytes=1 << 30,
    )
    return dataclasses.replace(base, **changes)


# -- keys -------------------------------------------------------------------------------------------------
KEY_CHANGES = {
    "onnx_sha256": "b" * 64,
    "tensorrt_version": "10.4.0",
    "gpu_name": "NVIDIA GeForce RTX 4090",
    "compute_capability": "8.9",
    "precision": "fp32",
    "profiles": (("image", (1, 224, 224, 3), (1, 224, 224, 3), (4, 224, 224, 3)),),
    "workspace_bytes": 2 << 30,
    "calibration_sha256": "c" * 64,
    "format_version": ec.CACHE_FORMAT_VERSION + 1,
}


def test_every_key_field_is_covered_by_a_change():
    assert set(KEY_CHANGES) | {"extra"} == {f.name for f in dataclasses.fields(ec.EngineKey)}


@pytest.mark.parametrize("field_name", sorted(KEY_CHANGES))
def test_key_changes_when_any_input_changes(field_name, tmp_path):
    before, after = _key(), _key(**{field_name: KEY_CHANGES[field_name]})
    assert before.digest != after.digest
    onnx_path = tmp_path / "hand_landmark_full.onnx"
    assert ec.engine_path_for(tmp_path, onnx_path, before) != ec.engine_path_for(tmp_path, onnx_path, after)


def test_key_is_stable_and_file_name_is_readable(tmp_path):
    assert _key().digest == _key().digest
    assert len(_key().digest) == ec.KEY_HEX_CHARS
    path = ec.engine_path_for(tmp_path, tmp_path / "hand_landmark_full.abc.onnx", _key())
    assert path.name == f"hand_landmark_full.abc.fp16.orin-nvgpu.{_key().digest}.engine"
    assert ec.sidecar_path_for(path).name == path.name + ".json"


def test_onnx_hash_changes_with_one_byte(tmp_path):
    path = _write_model(tmp_path / "m.onnx", ["batch", 4])
    first = ec.sha256_file(path)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    assert ec.sha256_file(path) != first


def test_key_rejects_bad_precision_and_int8_without_calibration():
    with pytest.raises(BackendError, match="precision must be one of fp32, fp16, int8, got 'int4'"):
        _key(precision="int4")
    with pytest.raises(BackendError, match="int8 needs calibration data"):
        _key(precision="int8")
    assert _key(precision="int8", calibration_sha256="d" * 64).precision == "int8"


def test_timing_cache_is_per_trt_version_and_gpu(tmp_path):
    a = ec.timing_cache_path_for(tmp_path, _key())
    assert a == ec.timing_cache_path_for(tmp_path, _key(onnx_sha256="e" * 64))  # shared across models
    assert a != ec.timing_cache_path_for(tmp_path, _key(tensorrt_version="10.4.0"))
    assert a != ec.timing_cache_path_for(tmp_path, _key(gpu_name="Tesla T4"))


# -- sidecar checks and rebuild decisions ------------------------------------------------------------------
def _cached(tmp_path: Path, key: ec.EngineKey, plan: bytes = b"PLAN-BYTES") -> Path:
    path = ec.engine_path_for(tmp_path, tmp_path / "model.onnx", key)
    ec.write_engine(path, plan, key, build_seconds=1.5)
    return path


def test_matching_engine_is_reused(tmp_path):
    path = _cached(tmp_path, _key())
    decision = ec.check_cached_engine(path, _key())
    assert decision.reuse, decision.reason
    meta = json.loads(ec.sidecar_path_for(path).read_text())
    assert meta["digest"] == _key().digest and meta["engine_bytes"] == len(b"PLAN-BYTES")


def test_missing_engine_and_missing_sidecar_mean_rebuild(tmp_path):
    path = ec.engine_path_for(tmp_path, tmp_path / "model.onnx", _key())
    assert ec.check_cached_engine(path, _key()).reason.startswith("no cached engine at")
    path.write_bytes(b"PLAN")
    decision = ec.check_cached_engine(path, _key())
    assert not decision.reuse and "has no metadata sidecar" in decision.reason


@pytest.mark.parametrize("field_name", ["tensorrt_version", "gpu_name", "compute_capability", "onnx_sha256"])
def test_foreign_engine_is_never_loaded(field_name, tmp_path):
    # An engine copied from another machine/version under the name this run expects: the sidecar betrays it.
    path = _cached(tmp_path, _key(**{field_name: KEY_CHANGES[field_name]}))
    expected = ec.engine_path_for(tmp_path, tmp_path / "model.onnx", _key())
    path.rename(expected)
    ec.sidecar_path_for(path).rename(ec.sidecar_path_for(expected))
    decision = ec.check_cached_engine(expected, _key())
    assert not decision.reuse
    assert decision.reason.startswith(f"engine was built for {field_name}=")


def test_corrupt_sidecar_or_engine_means_rebuild(tmp_path):
    path = _cached(tmp_path, _key())
    sidecar = ec.sidecar_path_for(path)
    good = sidecar.read_text()
    sidecar.write_text("{not json")
    assert "is unreadable" in ec.check_cached_engine(path, _key()).reason
    sidecar.write_text(good)
    path.write_bytes(b"PLAN-BYTE")  # truncated
    assert "truncated or replaced" in ec.check_cached_engine(path, _key()).reason
    path.write_bytes(b"PLAN-BYTEZ")  # same size, different bytes
    assert "differ from the sha256" in ec.check_cached_engine(path, _key()).reason


def test_build_logs_that_it_runs_then_cache_is_used(tmp_path, caplog):
    calls = []

    def build() -> bytes:
        calls.append(1)
        return b"ENGINE-" + str(len(calls)).encode()

    path = ec.engine_path_for(tmp_path, tmp_path / "model.onnx", _key())
    with caplog.at_level(logging.INFO, logger="hand_recon_ros.engines.engine_cache"):
        plan, built = ec.load_or_build_engine(path, _key(), build, "tensorrt: model.onnx")
    assert (plan, built) == (b"ENGINE-1", True)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "a build is running and may take several minutes" in warnings[0].getMessage()
    assert "no cached engine at" in warnings[0].getMessage()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="hand_recon_ros.engines.engine_cache"):
        plan, built = ec.load_or_build_engine(path, _key(), build, "tensorrt: model.onnx")
    assert (plan, built, len(calls)) == (b"ENGINE-1", False, 1)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_changed_key_or_forced_reason_rebuilds(tmp_path, caplog):
    path = ec.engine_path_for(tmp_path, tmp_path / "model.onnx", _key())
    ec.load_or_build_engine(path, _key(), lambda: b"OLD", "m")
    # Same file name, new TensorRT version recorded in the key: the sidecar check forces a build.
    plan, built = ec.load_or_build_engine(path, _key(tensorrt_version="10.4.0"), lambda: b"NEW", "m")
    assert (plan, built) == (b"NEW", True)
    with caplog.at_level(logging.WARNING, logger="hand_recon_ros.engines.engine_cache"):
        plan, built = ec.load_or_build_engine(path, _key(tensorrt_version="10.4.0"), lambda: b"NEWER", "m",
                                              force_reason="the cached engine failed to deserialise")
    assert (plan, built) == (b"NEWER", True)
    assert "the cached engine failed to deserialise" in caplog.text


def test_failed_build_is_an_error_and_leaves_no_engine(tmp_path):
    path = ec.engine_path_for(tmp_path, tmp_path / "model.onnx", _key())
    with pytest.raises(BackendError, match="engine build failed"):
        ec.load_or_build_engine(path, _key(), lambda: b"", "m")
    assert not path.exists() and not ec.sidecar_path_for(path).exists()


# -- profiles ------------------------------------------------------------------------------------------------
def test_profile_from_dynamic_batch(tmp_path):
    inputs = ec.read_onnx_inputs(_write_model(tmp_path / "m.onnx", ["batch", 4]))
    assert [(i.name, i.shape, i.dtype) for i in inputs] == [("image", ("batch", 4), np.dtype(np.float32))]
    assert ec.compute_profiles(inputs, max_batch=2) == {"image": ((1, 4), (2, 4), (2, 4))}
    assert ec.compute_profiles(inputs, max_batch=4, opt_batch=1) == {"image": ((1, 4), (1, 4), (4, 4))}


def test_profile_keeps_fixed_batch(tmp_path):
    inputs = ec.read_onnx_inputs(_write_model(tmp_path / "m.onnx", [1, 4]))
    assert ec.compute_profiles(inputs, max_batch=2) == {"image": ((1, 4), (1, 4), (1, 4))}


def test_profile_rejects_other_dynamic_axes_unless_overridden(tmp_path):
    inputs = ec.read_onnx_inputs(_write_model(tmp_path / "m.onnx", ["batch", 4], extra_input=["batch", "n"]))
    with pytest.raises(BackendError, match=r"input 'mask' has dynamic axis/axes \[1\] besides the batch axis"):
        ec.compute_profiles(inputs)
    profiles = ec.compute_profiles(inputs, overrides={"mask": (1, 3)})
    assert profiles["mask"] == ((1, 3), (1, 3), (1, 3))
    with pytest.raises(BackendError, match="profile override for input 'mask' has rank 3"):
        ec.compute_profiles(inputs, overrides={"mask": (1, 3, 1)})


def test_profile_rejects_bad_batches(tmp_path):
    inputs = ec.read_onnx_inputs(_write_model(tmp_path / "m.onnx", ["batch", 4]))
    with pytest.raises(BackendError, match="max_batch must be >= 1, got 0"):
        ec.compute_profiles(inputs, max_batch=0)
    with pytest.raises(BackendError, match=r"opt_batch must be in 1..max_batch \(2\), got 3"):
        ec.compute_profiles(inputs, max_batch=2, opt_batch=3)


def test_batch_fit_against_engine_profile():
    profile = {"image": ((1, 224, 224, 3), (2, 224, 224, 3), (2, 224, 224, 3))}
    assert oversized_batch("m", {"image": (2, 224, 224, 3)}, profile) is None
    assert oversized_batch("m", {"image": (5, 224, 224, 3)}, profile) == 5  # run in chunks of 2
    with pytest.raises(BackendError, match=r"m: input 'image' has shape \(1, 225, 224, 3\), outside the engine "
                                           r"profile \(1, 224, 224, 3\)..\(2, 224, 224, 3\)"):
        oversized_batch("m", {"image": (1, 225, 224, 3)}, profile)
    fixed = {"image": ((1, 192, 192, 3),) * 3}
    with pytest.raises(BackendError, match="outside the engine profile"):  # a fixed batch is never chunked
        oversized_batch("m", {"image": (2, 192, 192, 3)}, fixed)
    two = {"a": ((1, 4), (2, 4), (2, 4)), "b": ((1, 4), (2, 4), (2, 4))}
    with pytest.raises(BackendError, match=r"inputs disagree on the batch size \(\[1, 3\]\)"):
        oversized_batch("m", {"a": (3, 4), "b": (1, 4)}, two)


def test_profile_strings_for_ort_tensorrt():
    profiles = {"image": ((1, 224, 224, 3), (2, 224, 224, 3), (2, 224, 224, 3)), "z": ((1,), (1,), (5,))}
    assert ec.profile_to_ort_strings(profiles) == (
        "image:1x224x224x3,z:1", "image:2x224x224x3,z:1", "image:2x224x224x3,z:5")


def test_unreadable_onnx_is_named(tmp_path):
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"not a protobuf at all")
    with pytest.raises(BackendError, match="cannot read ONNX file .*broken.onnx"):
        ec.read_onnx_inputs(bad)


# -- dtypes --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("trt_name", "dtype"), [
    ("FLOAT", np.float32), ("HALF", np.float16), ("INT8", np.int8), ("INT32", np.int32),
    ("INT64", np.int64), ("BOOL", np.bool_), ("UINT8", np.uint8),
])
def test_trt_dtype_mapping(trt_name, dtype):
    assert ec.numpy_dtype_for_trt(trt_name) == np.dtype(dtype)


def test_trt_dtype_without_numpy_equivalent_is_named():
    with pytest.raises(BackendError, match="TensorRT data type BF16 has no numpy equivalent"):
        ec.numpy_dtype_for_trt("BF16")


# -- default cache folder ------------------------------------------------------------------------------------
def test_default_cache_dir_follows_model_cache_rule(monkeypatch, tmp_path):
    monkeypatch.setenv("HAND_RECON_CACHE_DIR", str(tmp_path / "c"))
    assert ec.default_cache_dir() == tmp_path / "c" / "engines"
    monkeypatch.delenv("HAND_RECON_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert ec.default_cache_dir() == tmp_path / "x" / "hand_recon_ros" / "engines"


def test_engines_default_to_a_folder_beside_the_onnx(monkeypatch, tmp_path):
    model = _write_model(tmp_path / "m.onnx", ["batch", 4])
    assert ec.engine_cache_dir_for(model) == tmp_path / "engines"
    assert TensorRTBackend(model).cache_dir == tmp_path / "engines"
    monkeypatch.setenv("HAND_RECON_CACHE_DIR", str(tmp_path / "user"))
    monkeypatch.setattr(ec.os, "access", lambda path, mode: False)  # a read-only install folder
    assert ec.engine_cache_dir_for(model) == tmp_path / "user" / "engines"


# -- INT8 calibration data (CPU part) ------------------------------------------------------------------------
def _write_images(folder: Path, count: int, size: tuple[int, int] = (48, 96)) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        image = np.full((*size, 3), 40 * (i + 1), dtype=np.uint8)
        image[..., 2] = 255  # red in BGR
        cv2.imwrite(str(folder / f"img{i}.png"), image)
    (folder / "notes.txt").write_text("ignored")


def test_calibration_images_are_preprocessed_like_the_network_input(tmp_path):
    _write_images(tmp_path / "calib", 3)
    files = calibration_files(tmp_path / "calib")
    assert [f.name for f in files] == ["img0.png", "img1.png", "img2.png"]
    nhwc = load_calibration_images(files, (32, 32, 3))
    assert nhwc.shape == (3, 32, 32, 3) and nhwc.dtype == np.float32
    assert nhwc.max() <= 1.0 and nhwc.min() >= 0.0
    # 48×96 letterboxed into 32×32: rows 0..7 and 24..31 are the zero border, the middle is the image.
    assert np.all(nhwc[:, :8] == 0) and np.all(nhwc[:, 24:] == 0)
    assert np.allclose(nhwc[:, 8:24, :, 0], 1.0)  # red channel first: converted to RGB
    nchw = load_calibration_images(files, (3, 32, 32))
    assert nchw.shape == (3, 3, 32, 32)
    np.testing.assert_allclose(nchw, nhwc.transpose(0, 3, 1, 2))


def test_calibration_digest_changes_with_images(tmp_path):
    _write_images(tmp_path / "calib", 2)
    files = calibration_files(tmp_path / "calib")
    first = calibration_digest(files)
    cv2.imwrite(str(files[0]), np.zeros((10, 10, 3), np.uint8))
    assert calibration_digest(files) != first


def test_calibration_errors_name_the_problem(tmp_path):
    with pytest.raises(BackendError, match="calibration folder not found"):
        calibration_files(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BackendError, match="has no images"):
        calibration_files(tmp_path / "empty")
    with pytest.raises(BackendError, match=r"needs an image input .* the model has \(4,\)"):
        load_calibration_images([], (4,))


def test_tensorrt_options_are_checked_before_any_gpu_work(tmp_path):
    model = _write_model(tmp_path / "m.onnx", ["batch", 4])
    with pytest.raises(BackendError, match="precision must be one of auto, fp32, fp16, int8, got 'fp8'"):
        TensorRTBackend(model, precision="fp8")
    with pytest.raises(BackendError, match="precision int8 needs calib_dir"):
        TensorRTBackend(model, precision="int8")
    with pytest.raises(BackendError, match=r"unknown option\(s\) \['max_batches'\]"):
        TensorRTBackend(model, max_batches=2)
