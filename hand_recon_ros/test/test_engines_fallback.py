"""`auto` falls back on ANY exception while creating, loading or warming a backend; a named backend fails loudly;
the node's shutdown closes the pipeline's backends (real rclpy on ROS domain 102)."""

from __future__ import annotations

import logging
import os
import sys

import fake_tensorrt as fake
import numpy as np
import pytest
from test_engines_gpu import _write_conv_model

from hand_recon_ros.engines import auto_select, tensorrt_backend
from hand_recon_ros.engines.registry import create_backend

DOMAIN_ID = 102


@pytest.fixture(autouse=True)
def _fresh_log_once():
    auto_select._logged_messages.clear()
    yield
    auto_select._logged_messages.clear()


def _constant(reason):
    return lambda: reason


def _probes(**reasons):
    return {name: _constant(reasons.get(name)) for name in auto_select.AUTO_ORDER}


@pytest.fixture
def conv_onnx(tmp_path):
    return _write_conv_model(tmp_path / "conv.onnx")


@pytest.mark.parametrize("error", [AttributeError("module 'tensorrt' has no attribute 'BuilderFlag'"),
                                   RuntimeError("CUDA driver version is insufficient")])
def test_auto_falls_back_on_a_non_backend_error_while_loading(conv_onnx, monkeypatch, caplog, error):
    def broken_load(self):
        raise error

    monkeypatch.setattr(tensorrt_backend.TensorRTBackend, "_load_impl", broken_load)
    probes = _probes(**{"onnxruntime-tensorrt": "absent", "onnxruntime-cuda": "absent"})
    with caplog.at_level(logging.INFO, logger="hand_recon_ros.engines.auto_select"):
        backend = create_backend("auto", conv_onnx, probes=probes, cache_dir=str(conv_onnx.parent)).load()
    assert backend.selected.name == "onnxruntime-cpu"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [f"backend auto: conv.onnx: tensorrt: loading failed ({type(error).__name__}: {error}); "
                        "using onnxruntime-cpu instead"]
    assert backend.run({"image": np.zeros((1, 8, 8, 3), np.float32)})["out"].shape == (1, 4)


def test_auto_falls_back_when_the_warm_up_run_fails_and_closes_the_candidate(conv_onnx, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "tensorrt", fake.make_module("10.3.0"))
    monkeypatch.setattr(tensorrt_backend, "create_device_buffers",
                        lambda provider="auto", device_id=0: fake.FakeDeviceBuffers(device_id))
    closed = []
    real_close = tensorrt_backend.TensorRTBackend._close_impl

    def failing_run(self, feeds):
        raise ValueError("illegal memory access")

    def recording_close(self):
        closed.append(self.name)
        real_close(self)

    monkeypatch.setattr(tensorrt_backend.TensorRTBackend, "_run_impl", failing_run)
    monkeypatch.setattr(tensorrt_backend.TensorRTBackend, "_close_impl", recording_close)
    probes = _probes(**{"onnxruntime-tensorrt": "absent", "onnxruntime-cuda": "absent"})
    with caplog.at_level(logging.WARNING, logger="hand_recon_ros.engines.auto_select"):
        backend = create_backend("auto", conv_onnx, probes=probes, precision="fp32",
                                 cache_dir=str(conv_onnx.parent)).load()
    assert backend.selected.name == "onnxruntime-cpu" and closed == ["tensorrt"]
    assert "tensorrt: warming up failed (ValueError: illegal memory access); using onnxruntime-cpu instead" \
        in caplog.text


def test_a_named_backend_still_fails_loudly_on_the_same_error(conv_onnx, monkeypatch):
    def broken_load(self):
        raise RuntimeError("CUDA driver version is insufficient")

    monkeypatch.setattr(tensorrt_backend.TensorRTBackend, "_load_impl", broken_load)
    with pytest.raises(RuntimeError, match="CUDA driver version is insufficient"):
        create_backend("tensorrt", conv_onnx).load()


def test_node_shutdown_closes_every_backend_of_its_pipeline():
    import rclpy

    from hand_recon_ros.pipeline.config import PipelineConfig
    from hand_recon_ros.pipeline.hand_pipeline import HandPipeline
    from hand_recon_ros.ros.node import HandReconNode

    pipeline = HandPipeline(PipelineConfig(refine_3d=False))
    backends = [pipeline.palm.backend, pipeline.landmarks.backend]
    assert all(b._loaded for b in backends)
    os.environ["ROS_DOMAIN_ID"] = str(DOMAIN_ID)
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=DOMAIN_ID)
    try:
        node = HandReconNode(pipeline=pipeline, node_name="hand_recon_close_test", context=context)
        node.close()
        assert not any(b._loaded for b in backends), "node.close() left a backend loaded"
        node.close()  # idempotent
    finally:
        rclpy.try_shutdown(context=context)
