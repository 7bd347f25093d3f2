"""Losses: zero at the truth, positive away from it, priors that react to the right poses, weak-mode terms."""

from __future__ import annotations

import numpy as np
import torch

from hand_recon_ros.models.hand_kinematics import BONE_LENGTH_PRIOR_M, pose_joints
from hand_recon_ros.training import losses
from hand_recon_ros.training.augment import AugmentParams
from hand_recon_ros.training.config import LossConfig
from hand_recon_ros.training.crop_dataset import make_item
from hand_recon_ros.training.toy_data import toy_records


def _batch() -> dict[str, torch.Tensor]:
    items = [make_item(r, 64, 1.5, AugmentParams()) for r in toy_records(2)]
    return {k: torch.stack([i[k] for i in items]) for k in items[0]}


def _perfect_outputs(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Outputs equal to the targets (heatmap logits strongly peaked at the centres)."""
    target = losses.center_targets(batch["centers"], batch["present"], (8, 8), 64)
    logits = torch.where(target > 0.99, torch.tensor(12.0), torch.tensor(-12.0))
    return {"keypoints_2d": batch["keypoints_2d"].clone(), "joints_3d": batch["joints_3d"].clone(),
            "root_offset": batch["root_offset"].clone(), "center_heatmaps": logits,
            "presence": (batch["present"] * 2 - 1) * 12,
            "pose": torch.tensor([1.0, 0, 0, 0, 1.0, 0]).expand(2, 2, 16, 6),
            "shape": torch.zeros(2, 2, 20)}


def test_losses_vanish_at_the_truth_and_grow_away_from_it() -> None:
    batch = _batch()
    outputs = _perfect_outputs(batch)
    weights = LossConfig(pose_prior=0.0, joint_limits=0.0)
    total, terms = losses.compute_losses(outputs, batch, weights, 64)
    for name in ("keypoints_2d", "joints_3d", "root_offset", "bone_length", "penetration", "shape_prior"):
        assert float(terms[name]) < 1e-6, name
    assert float(terms["heatmap"]) < 1e-3 and float(terms["presence"]) < 1e-4
    moved = dict(outputs, keypoints_2d=outputs["keypoints_2d"] + 3.0, joints_3d=outputs["joints_3d"] * 1.2,
                 root_offset=outputs["root_offset"] + 0.01)
    total_moved, terms_moved = losses.compute_losses(moved, batch, weights, 64)
    assert float(terms_moved["keypoints_2d"]) > 0.09 - 1e-6  # 2 × 3 px / 64 px
    assert float(terms_moved["joints_3d"]) > 0.0 and float(terms_moved["bone_length"]) > 0.0
    assert abs(float(terms_moved["root_offset"]) - 0.03) < 1e-5
    assert float(total_moved) > float(total)


def test_confidence_weights_the_2d_loss() -> None:
    batch = _batch()
    outputs = _perfect_outputs(batch)
    outputs["keypoints_2d"][:, :, 5] += 10.0
    batch["keypoints_conf"][:, :, 5] = 0.0
    assert float(losses.keypoints_2d_loss(outputs["keypoints_2d"][None], batch, 64)) < 1e-6


def _hands(angles: np.ndarray) -> torch.Tensor:
    joints = [pose_joints(np.eye(3), np.zeros(3), angles, BONE_LENGTH_PRIOR_M, s) for s in ("left", "right")]
    return torch.tensor(np.stack(joints)[None], dtype=torch.float32)


def test_joint_limits_penalise_only_hyperextension_on_both_sides() -> None:
    present = torch.ones(1, 2)
    flexed = np.tile([0.9, 0.0], (5, 3, 1))
    hyper = np.tile([-0.7, 0.0], (5, 3, 1))
    assert float(losses.joint_limit_loss(_hands(np.zeros((5, 3, 2))), present)) == 0.0
    assert float(losses.joint_limit_loss(_hands(flexed), present)) == 0.0
    sines = losses.flexion_sines(_hands(hyper))
    assert (sines < 0).all()  # hyperextension reads negative for the left and the right hand alike
    assert float(losses.joint_limit_loss(_hands(hyper), present)) > 0.1


def test_penetration_only_when_hands_overlap() -> None:
    joints = _hands(np.zeros((5, 3, 2)))
    present = torch.ones(1, 2)
    apart = losses.penetration_loss(joints, torch.tensor([[0.3, 0.0, 0.0]]), present)
    overlapping = losses.penetration_loss(joints, torch.tensor([[0.0, 0.0, 0.0]]), present)
    assert float(apart) == 0.0 and float(overlapping) > 0.0
    assert float(losses.penetration_loss(joints, torch.zeros(1, 3), torch.tensor([[1.0, 0.0]]))) == 0.0


def test_bone_prior_for_hands_without_3d() -> None:
    batch = _batch()
    batch["joints_3d_valid"].zero_()
    joints = batch["joints_3d"]
    assert float(losses.bone_length_loss(joints, batch)) < 1e-6  # prior-length toy hands sit inside the range
    assert float(losses.bone_length_loss(joints * 2.0, batch)) > 0.01


def test_weak_mode_uses_no_3d_term() -> None:
    batch = _batch()
    outputs = _perfect_outputs(batch)
    outputs["joints_3d"] = outputs["joints_3d"] + 0.05
    weak = LossConfig(joints_3d=0.0, vertices=0.0, root_offset=0.0)
    _, terms = losses.compute_losses(outputs, batch, weak, 64)
    assert "joints_3d" not in terms and "root_offset" not in terms and "keypoints_2d" in terms
