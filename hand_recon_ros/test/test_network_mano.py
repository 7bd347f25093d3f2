"""MANO inside the two-hand network (hand_model: mano): torch layer vs the numpy MANO, contract, export, checkpoints.

Runs on a synthetic model file with MANO's structure (test_mano_layer.py builds it); the real MANO files are
licensed and never part of the repository.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

sys.path.insert(0, str(Path(__file__).parent))
from test_mano_layer import _synthetic_arrays, _write_with_fake_chumpy  # noqa: E402

from hand_recon_ros.models import mano_layer  # noqa: E402
from hand_recon_ros.models.mano_loader import load_mano_models  # noqa: E402
from hand_recon_ros.network import NetworkConfig, NetworkConfigError, build_model  # noqa: E402
from hand_recon_ros.network.checkpoint import load_model  # noqa: E402
from hand_recon_ros.network.config import TINY_NETWORK_CONFIG  # noqa: E402
from hand_recon_ros.network.export import export_onnx  # noqa: E402
from hand_recon_ros.network.mano_torch import MANOTorchLayer  # noqa: E402


@pytest.fixture(scope="module")
def mano_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("mano_net")
    right = _synthetic_arrays(np.random.default_rng(0))
    _write_with_fake_chumpy(folder / "MANO_RIGHT.pkl", right)
    left = dict(right)
    left["v_template"] = right["v_template"] * [-1, 1, 1]
    _write_with_fake_chumpy(folder / "MANO_LEFT.pkl", left)
    return folder


def to_6d(rotvecs: np.ndarray) -> np.ndarray:
    mats = Rotation.from_rotvec(rotvecs.reshape(-1, 3)).as_matrix()
    return np.concatenate([mats[:, :, 0], mats[:, :, 1]], axis=-1)


def test_torch_mano_matches_numpy_mano(mano_dir):
    models = load_mano_models(mano_dir)
    layer = MANOTorchLayer(models).double()
    rng = np.random.default_rng(2)
    poses = rng.normal(0, 0.4, (3, 2, 48))
    betas = rng.normal(0, 1.0, (3, 2, 10))
    pose6d = torch.tensor(np.stack([[to_6d(p) for p in pair] for pair in poses]))
    joints, vertices = layer(pose6d, torch.tensor(betas))
    assert joints.shape == (3, 2, 21, 3) and vertices.shape == (3, 2, 778, 3)
    for n in range(3):
        for s, side in enumerate(("left", "right")):
            ref = mano_layer.forward(models[side], poses[n, s], betas[n, s])
            np.testing.assert_allclose(joints[n, s].numpy(), ref.joints - ref.joints[0], atol=1e-6)
            np.testing.assert_allclose(vertices[n, s].numpy(), ref.vertices - ref.joints[0], atol=1e-6)


def test_network_with_mano_contract_export_and_checkpoint(mano_dir, tmp_path):
    cfg = NetworkConfig.from_dict({**TINY_NETWORK_CONFIG, "hand_model": "mano", "mano_dir": str(mano_dir),
                                   "mesh": True})
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, 64, 64))
    assert tuple(out["shape"].shape) == (2, 2, 10) and tuple(out["vertices"].shape) == (2, 2, 778, 3)
    assert torch.allclose(out["joints_3d"][:, :, 0], torch.zeros(2, 2, 3), atol=1e-6)
    state = model.state_dict()
    assert not any(k.startswith("hand_layer.") for k in state)  # MANO's arrays never go into checkpoints
    path = tmp_path / "mano.pt"
    torch.save({"model": state, "network_config": cfg.to_dict()}, path)
    loaded, _ = load_model(path)
    with torch.no_grad():
        assert torch.equal(loaded(torch.ones(1, 3, 64, 64))["joints_3d"], model(torch.ones(1, 3, 64, 64))["joints_3d"])
    no_mesh = build_model(NetworkConfig.from_dict({**cfg.to_dict(), "mesh": False}))
    no_mesh.load_state_dict(state)
    assert max(export_onnx(no_mesh, tmp_path / "mano.onnx").values()) <= 1e-4


def test_mano_needs_its_folder(tmp_path):
    with pytest.raises(NetworkConfigError, match="hand_model 'mano' needs mano_dir"):
        NetworkConfig.from_dict({"hand_model": "mano"})
    with pytest.raises(NetworkConfigError, match="hand_model must be one of"):
        NetworkConfig.from_dict({"hand_model": "smpl"})
    from hand_recon_ros.models.mano_loader import MANOLoadError

    with pytest.raises(MANOLoadError, match="no MANO_RIGHT.pkl or MANO_LEFT.pkl"):
        build_model(NetworkConfig.from_dict({**TINY_NETWORK_CONFIG, "hand_model": "mano", "mano_dir": str(tmp_path)}))
