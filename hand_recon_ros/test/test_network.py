"""The learned two-hand network: config checks, output contract, gradients, hand layer vs numpy, residual mode."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hand_recon_ros.models import hand_kinematics as hk
from hand_recon_ros.models import open_hand_mesh
from hand_recon_ros.network import NetworkConfig, NetworkConfigError, build_model
from hand_recon_ros.network.backbones import BackboneWeightsError, ResNetBackbone
from hand_recon_ros.network.checkpoint import CheckpointError, load_model
from hand_recon_ros.network.config import TINY_NETWORK_CONFIG
from hand_recon_ros.network.hand_layer import HandLayer, angles_to_pose_6d, rotation_6d_to_matrix

B = 2


def tiny(**changes) -> NetworkConfig:
    return NetworkConfig.from_dict({**TINY_NETWORK_CONFIG, **changes})


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"backbon": "resnet18"}, "unknown key(s) ['backbon']"),
        ({"iterations": "3"}, "my.yaml.iterations: expected an integer, got str"),
        ({"residual": 1}, "my.yaml.residual: expected bool, got int"),
        ({"input_size": True}, "my.yaml.input_size: expected an integer, got bool"),
        ({"backbone": "vgg"}, "backbone must be one of"),
        ({"input_size": 100}, "input_size must be a multiple of 32"),
        ({"joint_dim": 10, "transformer_heads": 4}, "joint_dim (10) must be a multiple of transformer_heads"),
    ],
)
def test_config_rejects_bad_keys_and_types(data, message):
    with pytest.raises(NetworkConfigError) as info:
        NetworkConfig.from_dict(data, source="my.yaml")
    assert message in str(info.value) and "my.yaml" in str(info.value)


def test_config_round_trips_and_accepts_int_for_float():
    cfg = NetworkConfig.from_dict({"center_window": 1, "backbone_weights": None})
    assert cfg.center_window == 1.0 and isinstance(cfg.center_window, float)
    assert NetworkConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize("mesh", [False, True])
def test_output_shapes_follow_the_contract(mesh):
    cfg = tiny(mesh=mesh)
    model = build_model(cfg).eval()
    s, k = cfg.input_size, cfg.iterations
    with torch.no_grad():
        out = model(torch.rand(B, 3, s, s))
    h = s // 8
    expected = {
        "center_heatmaps": (B, 2, h, h), "centers": (B, 2, 2), "presence": (B, 2), "joints_3d": (B, 2, 21, 3),
        "joints_3d_iters": (k + 1, B, 2, 21, 3), "keypoints_2d": (B, 2, 21, 2),
        "keypoints_2d_iters": (k + 1, B, 2, 21, 2), "root_offset": (B, 3), "pose": (B, 2, 16, 6),
        "shape": (B, 2, 20), "camera": (B, 2, 3),
    }
    if mesh:
        expected["vertices"] = (B, 2, model.hand_layer.num_vertices, 3)
    assert {name: tuple(t.shape) for name, t in out.items()} == expected
    assert all(torch.isfinite(t).all() for t in out.values())
    # Wrist-relative joints; centres from the soft-argmax lie inside the image.
    assert torch.allclose(out["joints_3d"][:, :, 0], torch.zeros(B, 2, 3), atol=1e-7)
    assert ((out["centers"] >= 0) & (out["centers"] <= s)).all()
    # The last iteration is the output; the 2D is the weak-perspective projection of the 3D.
    assert torch.equal(out["joints_3d_iters"][-1], out["joints_3d"])
    proj = model.project(out["joints_3d"], out["camera"])
    assert torch.allclose(proj, out["keypoints_2d"], atol=1e-4)


def test_given_centers_are_used_and_change_the_readout():
    model = build_model(tiny()).eval()
    images = torch.rand(1, 3, 64, 64)
    a = torch.tensor([[[16.0, 32.0], [48.0, 32.0]]])
    b = torch.tensor([[[40.0, 10.0], [10.0, 50.0]]])
    with torch.no_grad():
        out_a, out_b = model(images, centers=a), model(images, centers=b)
    assert torch.equal(out_a["centers"], a)
    assert not torch.allclose(out_a["pose"], out_b["pose"])


def test_gradients_reach_every_block():
    torch.manual_seed(0)
    model = build_model(tiny(mesh=True)).train()

    def loss_of(out):
        loss = sum(v.float().pow(2).mean() for k, v in out.items() if k != "center_heatmaps")
        return loss + out["center_heatmaps"].logsumexp((-1, -2)).sum()

    # One step first: the ResNet blocks' last BN scales start at zero (zero_init_residual), which blocks the
    # gradient to the rest of each block until they move.
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)  # bounded step whatever the loss scale
    loss_of(model(torch.rand(B, 3, 64, 64))).backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    loss_of(model(torch.rand(B, 3, 64, 64))).backward()
    dead = [name for name, p in model.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert dead == []
    blocks = {name.split(".")[0] for name, _ in model.named_parameters()}
    assert {"backbone", "neck", "center_head", "attention_head", "param_map_head", "global_mlp", "root_mlp",
            "iterations"} <= blocks


def test_hand_layer_matches_numpy_kinematics_and_mesh():
    rng = np.random.default_rng(3)
    layer = HandLayer(with_mesh=True).double()
    for side_value, side in ((0.0, "left"), (1.0, "right")):
        rot, angles = random_rotation(rng), hk.random_angles(rng)
        scales = rng.uniform(-0.1, 0.1, 20)
        lengths = hk.BONE_LENGTH_PRIOR_M * np.exp(scales)
        pose = torch.tensor(angles_to_pose_6d(rot, angles))[None]
        joints, vertices = layer(pose, torch.tensor(scales)[None], torch.tensor([side_value], dtype=torch.float64))
        expected = hk.pose_joints(rot, np.zeros(3), angles, lengths, side)
        np.testing.assert_allclose(joints[0].numpy(), expected, atol=1e-7)  # float32 template buffers
        joints0, vertices0 = layer(pose, torch.zeros(1, 20, dtype=torch.float64),
                                   torch.tensor([side_value], dtype=torch.float64))
        mesh, _ = open_hand_mesh.posed_mesh(rot, np.zeros(3), angles, hk.BONE_LENGTH_PRIOR_M, side)
        np.testing.assert_allclose(vertices0[0].numpy(), mesh, atol=1e-7)


def test_rotation_6d_is_orthonormal():
    rot = rotation_6d_to_matrix(torch.randn(50, 6, dtype=torch.float64))
    eye = torch.eye(3, dtype=torch.float64).expand(50, 3, 3)
    assert torch.allclose(rot.transpose(-1, -2) @ rot, eye, atol=1e-12)
    assert torch.allclose(torch.linalg.det(rot), torch.ones(50, dtype=torch.float64), atol=1e-12)


def test_untrained_residual_refiner_changes_nothing_and_trains_away_from_identity():
    torch.manual_seed(1)
    model = build_model(tiny(residual=True, iterations=3)).train()
    prior = torch.randn(B, 2, 21, 3) * 0.05
    prior[:, :, 0] = 0.0
    images = torch.rand(B, 3, 64, 64)
    with pytest.raises(ValueError, match="prior_joints"):
        model(images)
    out = model(images, prior_joints=prior)
    assert (out["joints_3d"] - prior).abs().max().item() <= 1e-6
    assert (out["joints_3d_iters"] - prior).abs().max().item() <= 1e-6
    # The zero-initialised heads still learn: one step towards a shifted target moves the joints.
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    target = prior + 0.01
    ((out["joints_3d"] - target) ** 2).sum().backward()
    opt.step()
    with torch.no_grad():
        moved = model(images, prior_joints=prior)["joints_3d"]
    assert (moved - prior).abs().max().item() > 1e-4


# torchvision's parameter counts of resnet18/34/50 (their model docs), which include the 1000-class fc layer.
TORCHVISION_PARAMS = {"resnet18": 11_689_512, "resnet34": 21_797_672, "resnet50": 25_557_032}


@pytest.mark.parametrize("name", sorted(TORCHVISION_PARAMS))
def test_resnet_has_torchvisions_parameter_count(name):
    net = ResNetBackbone(name)
    fc = net.out_channels[-1] * 1000 + 1000
    assert sum(p.numel() for p in net.parameters()) + fc == TORCHVISION_PARAMS[name]


def test_resnet_uses_torchvision_names_and_loads_a_state_dict_file(tmp_path):
    net = ResNetBackbone("resnet18")
    names = set(net.state_dict())
    assert {"conv1.weight", "bn1.running_mean", "layer1.0.conv1.weight", "layer2.0.downsample.0.weight",
            "layer4.1.bn2.weight"} <= names
    assert len([n for n in ResNetBackbone("resnet50").state_dict() if n.endswith("conv3.weight")]) == 16
    state = {k: torch.randn_like(v.float()).to(v.dtype) for k, v in net.state_dict().items()}
    state["fc.weight"], state["fc.bias"] = torch.zeros(1000, 512), torch.zeros(1000)  # a torchvision file has fc
    path = tmp_path / "resnet18.pth"
    torch.save(state, path)
    other = ResNetBackbone("resnet18")
    other.load_torchvision_weights(path)
    assert torch.equal(other.layer3[1].conv2.weight, state["layer3.1.conv2.weight"])
    with pytest.raises(BackboneWeightsError, match="does not fit this ResNet"):
        ResNetBackbone("resnet34").load_torchvision_weights(path)
    with pytest.raises(BackboneWeightsError, match="does not exist"):
        net.load_torchvision_weights(tmp_path / "missing.pth")


def test_mediapipe_trunk_is_pretrained_and_multiscale(model_paths):
    cfg = NetworkConfig.from_dict({**TINY_NETWORK_CONFIG, "backbone": "mediapipe"})
    model = build_model(cfg).eval()
    feats = model.backbone(torch.rand(1, 3, 64, 64))
    assert [tuple(f.shape[-2:]) for f in feats] == [(8, 8), (4, 4), (2, 2)]
    # Pretrained: the first conv's weights equal the imported landmark graph's (not a random init).
    from hand_recon_ros.models.tflite_import import load_tflite_module

    graph = load_tflite_module(model_paths.landmark_tflite)
    ours, theirs = model.backbone.layers[0].state_dict(), graph.layers[0].state_dict()
    assert ours.keys() == theirs.keys() and len(ours) > 0
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    assert any(p.requires_grad for p in model.backbone.parameters())  # fine-tunable, not frozen


def test_load_model_round_trip_and_clear_errors(tmp_path):
    cfg = tiny()
    model = build_model(cfg)
    path = tmp_path / "last.pt"
    torch.save({"model": model.state_dict(), "network_config": cfg.to_dict(), "train_config": {}, "step": 5}, path)
    loaded, loaded_cfg = load_model(path)
    assert loaded_cfg == cfg
    images = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded(images)["joints_3d"], model.eval()(images)["joints_3d"])
    with pytest.raises(CheckpointError, match="does not exist"):
        load_model(tmp_path / "nope.pt")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="corrupt.pt cannot be read"):
        load_model(corrupt)
    torch.save({"model": model.state_dict()}, tmp_path / "nocfg.pt")
    with pytest.raises(CheckpointError, match="no field 'network_config'"):
        load_model(tmp_path / "nocfg.pt")
    torch.save({"model": model.state_dict(), "network_config": {**cfg.to_dict(), "depth": 3}}, tmp_path / "k.pt")
    with pytest.raises(CheckpointError, match=r"k.pt: network_config: unknown key\(s\) \['depth'\]"):
        load_model(tmp_path / "k.pt")
    torch.save({"model": model.state_dict(), "network_config": {**cfg.to_dict(), "feature_dim": 32}},
               tmp_path / "m.pt")
    with pytest.raises(CheckpointError, match="does not fit network_config"):
        load_model(tmp_path / "m.pt")
