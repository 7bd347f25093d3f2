"""ONNX export of the learned network: parity with torch, dynamic batch, metadata, refusal, the CLI commands."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch

from hand_recon_ros.cli import main
from hand_recon_ros.network import NetworkConfig, build_model
from hand_recon_ros.network import export as ex
from hand_recon_ros.network.config import TINY_NETWORK_CONFIG


def save_checkpoint(path, cfg: NetworkConfig, seed: int = 0):
    torch.manual_seed(seed)
    model = build_model(cfg)
    torch.save({"model": model.state_dict(), "network_config": cfg.to_dict(), "train_config": {}, "step": 0}, path)
    return model.eval()


def run_both(model, onnx_path, feeds):
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = dict(zip(ex.EXPORT_OUTPUTS, session.run(list(ex.EXPORT_OUTPUTS), feeds)))
    with torch.no_grad():
        prior = feeds.get(ex.PRIOR_INPUT)
        ref = model(torch.from_numpy(feeds[ex.IMAGES_INPUT]),
                    prior_joints=None if prior is None else torch.from_numpy(prior))
    return got, ref


@pytest.mark.parametrize("residual", [False, True])
def test_tiny_export_matches_torch_at_any_batch(tmp_path, residual):
    cfg = NetworkConfig.from_dict({**TINY_NETWORK_CONFIG, "residual": residual})
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    path = tmp_path / "tiny.onnx"
    diffs = ex.export_onnx(model, path)
    assert set(diffs) == set(ex.EXPORT_OUTPUTS) and max(diffs.values()) <= 1e-4
    assert ex.read_network_config(path) == cfg
    rng = np.random.default_rng(5)
    for batch in (1, 3):  # the batch axis is dynamic; inputs other than the parity batch
        feeds = {ex.IMAGES_INPUT: rng.uniform(0, 1, (batch, 3, 64, 64)).astype(np.float32)}
        if residual:
            prior = rng.normal(0, 0.04, (batch, 2, 21, 3)).astype(np.float32)
            prior[:, :, 0] = 0.0
            feeds[ex.PRIOR_INPUT] = prior
        got, ref = run_both(model, path, feeds)
        for name in ex.EXPORT_OUTPUTS:
            assert got[name].shape == tuple(ref[name].shape)
            assert np.max(np.abs(got[name] - ref[name].numpy())) <= 1e-4, name
        if residual:  # the untrained residual refiner passes the prior through, in ONNX too
            assert np.max(np.abs(got["joints_3d"] - feeds[ex.PRIOR_INPUT])) <= 1e-6


@pytest.mark.parametrize("backbone", ["resnet18", "mediapipe"])
def test_full_size_export_parity(tmp_path, backbone, model_paths):
    cfg = NetworkConfig.from_dict({"backbone": backbone})
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    diffs = ex.export_onnx(model, tmp_path / "net.onnx")
    assert max(diffs.values()) <= ex.PARITY_TOLERANCE
    session = ort.InferenceSession(str(tmp_path / "net.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == [ex.IMAGES_INPUT]
    assert session.get_inputs()[0].shape[1:] == [3, 256, 256]


def test_export_refuses_to_write_when_parity_fails(tmp_path, monkeypatch):
    model = build_model(NetworkConfig.from_dict(TINY_NETWORK_CONFIG))
    monkeypatch.setattr(ex, "PARITY_TOLERANCE", 0.0)
    path = tmp_path / "bad.onnx"
    with pytest.raises(ex.ExportError, match="differs from torch .* the file was not written"):
        ex.export_onnx(model, path)
    assert list(tmp_path.iterdir()) == []


def test_read_network_config_names_the_bad_file(tmp_path, model_paths):
    with pytest.raises(ex.LearnedModelError, match="missing.onnx does not exist"):
        ex.read_network_config(tmp_path / "missing.onnx")
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x07garbage" * 10)
    with pytest.raises(ex.LearnedModelError, match="corrupt.onnx is not a readable ONNX file"):
        ex.read_network_config(corrupt)
    with pytest.raises(ex.LearnedModelError, match="not made by `hand-recon export`"):
        ex.read_network_config(model_paths.landmark_onnx)


def test_export_command(tmp_path, capsys):
    cfg = NetworkConfig.from_dict(TINY_NETWORK_CONFIG)
    ckpt = tmp_path / "last.pt"
    save_checkpoint(ckpt, cfg)
    out = tmp_path / "model.onnx"
    assert main(["export", str(ckpt), "-o", str(out)]) == 0
    assert out.is_file() and "max |diff|" in capsys.readouterr().out
    assert ex.read_network_config(out) == cfg
    assert main(["export", str(tmp_path / "nope.pt"), "-o", str(out)]) == 2
    assert "nope.pt does not exist" in capsys.readouterr().err
    assert main(["export", str(ckpt), "-o", str(tmp_path / "model.bin")]) == 2
    assert main(["export", str(ckpt), "-o", str(out), "--opset", "13"]) == 2
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(ckpt.read_bytes()[:64])
    assert main(["export", str(corrupt), "-o", str(tmp_path / "c.onnx")]) == 1
    assert "corrupt.pt cannot be read" in capsys.readouterr().err
    assert not (tmp_path / "c.onnx").exists()


def test_build_engine_checks_the_learned_model_first(tmp_path, capsys):
    assert main(["build-engine", "--model", str(tmp_path / "gone.onnx")]) == 2
    assert "gone.onnx does not exist" in capsys.readouterr().err


def test_build_engine_accepts_an_exported_model(tmp_path, capsys):
    """The exported file passes build-engine's checks; on a machine without TensorRT it then says so (exit 2)."""
    import importlib.util

    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("TensorRT is installed here: the engine build itself is the GPU test's job")
    path = tmp_path / "tiny.onnx"
    ex.export_onnx(build_model(NetworkConfig.from_dict(TINY_NETWORK_CONFIG)), path)
    assert main(["build-engine", "--model", str(path)]) == 2
    err = capsys.readouterr().err
    assert "TensorRT not available" in err and "does not exist" not in err
    foreign = tmp_path / "foreign.onnx"
    foreign.write_bytes(b"\x00\x01 not onnx")
    assert main(["build-engine", "--model", str(foreign)]) == 2
    assert "foreign.onnx is not a readable ONNX file" in capsys.readouterr().err
