"""GPU-only: the exported learned network through the TensorRT backend (engine build, cache) against ORT CPU.

Skips without an NVIDIA GPU and TensorRT, unless HAND_RECON_GPU_TESTS=1 (then a missing GPU fails). Not run on
the build machine (no GPU): the tolerances are first guesses for fp32 (TF32 allowed) and fp16 engines.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from test_engines_gpu import needs_trt  # noqa: E402

from hand_recon_ros.engines.registry import create_backend  # noqa: E402
from hand_recon_ros.network import NetworkConfig, build_model  # noqa: E402
from hand_recon_ros.network.export import IMAGES_INPUT, export_onnx, parity_inputs  # noqa: E402

# precision → (joints metres, keypoints input pixels) tolerances against ONNX Runtime on the CPU.
TOLERANCES = {"fp32": (2e-3, 1.0), "fp16": (1e-2, 4.0)}


@needs_trt
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_gpu_tensorrt_runs_the_exported_learned_model(tmp_path, precision):
    cfg = NetworkConfig.from_dict({"backbone": "resnet18"})
    torch.manual_seed(0)
    path = tmp_path / "two_hands.onnx"
    export_onnx(build_model(cfg), path)
    feeds = {IMAGES_INPUT: parity_inputs(cfg)[IMAGES_INPUT][:1]}
    with create_backend("onnxruntime-cpu", path) as cpu:
        ref = cpu.run(feeds)
    with create_backend("tensorrt", path, precision=precision, max_batch=1, opt_batch=1,
                        cache_dir=str(tmp_path / "engines")) as trt:
        got = trt.run(feeds)
        assert trt.built  # a fresh cache: this run built the engine
    joints_tol, px_tol = TOLERANCES[precision]
    assert np.max(np.abs(got["joints_3d"] - ref["joints_3d"])) < joints_tol
    assert np.max(np.abs(got["keypoints_2d"] - ref["keypoints_2d"])) < px_tol
    with create_backend("tensorrt", path, precision=precision, max_batch=1, opt_batch=1,
                        cache_dir=str(tmp_path / "engines")) as again:
        assert again.built is False  # the cached engine is reused
