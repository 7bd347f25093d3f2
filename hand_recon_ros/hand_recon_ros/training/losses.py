"""Training losses over the learned model's output dict and a HandCropDataset batch (side 0 = left, 1 = right).

Units: 3D terms in metres, 2D terms in fractions of the input side (so weights do not depend on the input
size), heatmap with CenterNet's penalty-reduced focal loss. Every term is averaged over the labels that exist
(confidence-weighted 2D, valid 3D joints, present hands) and is 0 when a batch has none. The weak mode sets
the 3D weights to 0 and keeps 2D, heatmap, presence and the priors (bone length, joint limits, pose, shape,
penetration).
"""

from __future__ import annotations

import torch
from torch.nn import functional

from hand_recon_ros.models.hand_kinematics import BONE_LENGTH_PRIOR_M, BONE_SCALE_RANGE
from hand_recon_ros.skeleton import BONES, FINGERS, INDEX, MIDDLE_MCP, PINKY, WRIST
from hand_recon_ros.training.config import LossConfig

HEATMAP_SIGMA_CELLS = 1.5
FOCAL_ALPHA, FOCAL_BETA = 2.0, 4.0
PENETRATION_RADIUS_M = 0.012
HYPEREXTENSION_MAX_RAD = 0.26  # ~15°, at the PIP and DIP joints of the four fingers
IDENTITY_6D = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
# +1 where the side's radial axis × distal axis points palmar (right), −1 for the mirrored left hand.
SIDE_SIGN = (-1.0, 1.0)
_PARENT = torch.tensor([p for p, _ in BONES])
_CHILD = torch.tensor([c for _, c in BONES])


def _masked_mean(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Σ w·v / Σ w (0 when every weight is 0)."""
    weights = weights.to(values.dtype)
    return (values * weights).sum() / weights.sum().clamp_min(1e-6)


def _iterations(outputs: dict[str, torch.Tensor], key: str, deep: bool) -> torch.Tensor:
    """(K+1, B, ...) predictions for deep supervision, or the final one as (1, B, ...)."""
    if deep and f"{key}_iters" in outputs:
        return outputs[f"{key}_iters"]
    return outputs[key].unsqueeze(0)


def keypoints_2d_loss(pred: torch.Tensor, batch: dict[str, torch.Tensor], input_size: int) -> torch.Tensor:
    """Confidence-weighted L1 reprojection error; pred (K, B, 2, 21, 2) input pixels."""
    error = (pred - batch["keypoints_2d"]).abs().sum(-1) / input_size
    weight = (batch["keypoints_conf"] * batch["present"][..., None]).expand_as(error)
    return _masked_mean(error, weight)


def joints_3d_loss(pred: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """L1 of wrist-relative joints (K, B, 2, 21, 3) metres against valid ground truth."""
    error = (pred - batch["joints_3d"]).abs().sum(-1)
    return _masked_mean(error, batch["joints_3d_valid"].expand_as(error))


def vertices_loss(pred: torch.Tensor, truth: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """L1 of wrist-relative vertices (B, 2, V, 3) metres for hands with mesh ground truth (valid (B, 2))."""
    return _masked_mean((pred - truth).abs().sum(-1), valid[..., None].expand(pred.shape[:-1]))


def root_offset_loss(pred: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """L1 of the right-minus-left wrist vector (B, 3) metres where both wrists are known."""
    return _masked_mean((pred - batch["root_offset"]).abs().sum(-1), batch["root_offset_valid"])


def center_targets(centers: torch.Tensor, present: torch.Tensor, shape: tuple[int, int], input_size: int
                   ) -> torch.Tensor:
    """Gaussian targets (B, 2, h, w) at each present hand's centre (input pixels → heatmap cells)."""
    h, w = shape
    ys = torch.arange(h, device=centers.device, dtype=centers.dtype)
    xs = torch.arange(w, device=centers.device, dtype=centers.dtype)
    cx = (centers[..., 0] + 0.5) * w / input_size - 0.5
    cy = (centers[..., 1] + 0.5) * h / input_size - 0.5
    d2 = (xs.view(1, 1, 1, w) - cx[..., None, None]) ** 2 + (ys.view(1, 1, h, 1) - cy[..., None, None]) ** 2
    return torch.exp(-d2 / (2 * HEATMAP_SIGMA_CELLS ** 2)) * present[..., None, None]


def heatmap_loss(logits: torch.Tensor, batch: dict[str, torch.Tensor], input_size: int) -> torch.Tensor:
    """CenterNet focal loss of the centre heatmaps (B, 2, h, w) logits, normalised by the hands present."""
    target = center_targets(batch["centers"], batch["present"], logits.shape[-2:], input_size)
    prob = torch.sigmoid(logits.float()).clamp(1e-4, 1 - 1e-4)
    peak = target > 0.99
    pos = -torch.log(prob) * (1 - prob) ** FOCAL_ALPHA * peak
    neg = -torch.log(1 - prob) * prob ** FOCAL_ALPHA * (1 - target) ** FOCAL_BETA * (~peak)
    return (pos.sum() + neg.sum()) / batch["present"].sum().clamp_min(1.0)


def presence_loss(logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Binary cross-entropy of each side's presence logit (B, 2)."""
    return functional.binary_cross_entropy_with_logits(logits.float(), batch["present"])


def pose_prior_loss(pose: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """Squared distance of the 15 finger rotations (B, 2, 16, 6) from the flat hand, present hands only."""
    eye = pose.new_tensor(IDENTITY_6D)
    return _masked_mean(((pose[:, :, 1:] - eye) ** 2).sum(-1).mean(-1), present)


def shape_prior_loss(shape: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """Squared log bone scales (B, 2, NB) (0 = the adult prior), present hands only."""
    return _masked_mean((shape ** 2).mean(-1), present)


def bone_lengths(joints: torch.Tensor) -> torch.Tensor:
    """Lengths (..., 20) of the 20 bones of joints (..., 21, 3)."""
    return (joints[..., _CHILD.to(joints.device), :] - joints[..., _PARENT.to(joints.device), :]).norm(dim=-1)


def bone_length_loss(joints: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Bone lengths vs the ground truth where 3D is known, else kept inside the adult prior range (hinge)."""
    pred = bone_lengths(joints)
    valid = batch["joints_3d_valid"]
    both = valid[..., _PARENT.to(valid.device)] * valid[..., _CHILD.to(valid.device)]
    supervised = _masked_mean((pred - bone_lengths(batch["joints_3d"])).abs(), both)
    prior = pred.new_tensor(BONE_LENGTH_PRIOR_M)
    low, high = prior * BONE_SCALE_RANGE[0], prior * BONE_SCALE_RANGE[1]
    hinge = functional.relu(low - pred) + functional.relu(pred - high)
    unlabelled = (batch["present"] * (valid.sum(-1) == 0).to(pred.dtype))[..., None].expand_as(hinge)
    return supervised + _masked_mean(hinge, unlabelled)


def palm_axes(joints: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit radial (pinky → index MCP) and palmar axes (B, 2, 3) of joints (B, 2, 21, 3)."""
    radial = functional.normalize(joints[..., INDEX[0], :] - joints[..., PINKY[0], :], dim=-1)
    distal = functional.normalize(joints[..., MIDDLE_MCP, :] - joints[..., WRIST, :], dim=-1)
    sign = joints.new_tensor(SIDE_SIGN).view(1, 2, 1)
    return radial, functional.normalize(torch.cross(radial, distal, dim=-1), dim=-1) * sign


def flexion_sines(joints: torch.Tensor) -> torch.Tensor:
    """Signed sine of the flexion at each finger's PIP and DIP (B, 2, 4, 2): > 0 bends palmar, < 0 hyperextends."""
    radial, _ = palm_axes(joints)
    sign = joints.new_tensor(SIDE_SIGN).view(1, 2, 1, 1)
    out = []
    for chain in FINGERS[1:]:
        points = joints[..., list(chain), :]
        bones = functional.normalize(points[..., 1:, :] - points[..., :-1, :], dim=-1)  # MCP→PIP, PIP→DIP, DIP→tip
        cross = torch.cross(bones[..., :-1, :], bones[..., 1:, :], dim=-1)
        out.append((cross * radial[..., None, :]).sum(-1) * sign.squeeze(-1))
    return torch.stack(out, dim=-2)


def joint_limit_loss(joints: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """Hinge on hyperextension of the finger PIP/DIP joints beyond HYPEREXTENSION_MAX_RAD, present hands."""
    excess = functional.relu(-flexion_sines(joints) - torch.sin(joints.new_tensor(HYPEREXTENSION_MAX_RAD)))
    return _masked_mean(excess.flatten(2).mean(-1), present)


def penetration_loss(joints: torch.Tensor, root_offset: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """Squared hinge on left–right joint pairs closer than PENETRATION_RADIUS_M, when both hands are present."""
    left = joints[:, 0]
    right = joints[:, 1] + root_offset[:, None, :]
    dist = torch.cdist(left.float(), right.float())
    both = present[:, 0] * present[:, 1]
    return _masked_mean((functional.relu(PENETRATION_RADIUS_M - dist) ** 2).sum((-1, -2)), both)


def compute_losses(outputs: dict[str, torch.Tensor], batch: dict[str, torch.Tensor], weights: LossConfig,
                   input_size: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Weighted total and every unweighted term (detached) of one batch."""
    deep = weights.deep_supervision
    present = batch["present"]
    joints = outputs["joints_3d"].float()
    terms: dict[str, torch.Tensor] = {}
    if weights.keypoints_2d:
        terms["keypoints_2d"] = keypoints_2d_loss(_iterations(outputs, "keypoints_2d", deep).float(), batch,
                                                  input_size)
    if weights.joints_3d:
        terms["joints_3d"] = joints_3d_loss(_iterations(outputs, "joints_3d", deep).float(), batch)
    if weights.vertices and "vertices" in outputs and "vertices" in batch:
        terms["vertices"] = vertices_loss(outputs["vertices"].float(), batch["vertices"], batch["vertices_valid"])
    if weights.root_offset:
        terms["root_offset"] = root_offset_loss(outputs["root_offset"].float(), batch)
    if weights.heatmap:
        terms["heatmap"] = heatmap_loss(outputs["center_heatmaps"], batch, input_size)
    if weights.presence:
        terms["presence"] = presence_loss(outputs["presence"], batch)
    if weights.pose_prior and "pose" in outputs:
        terms["pose_prior"] = pose_prior_loss(outputs["pose"].float(), present)
    if weights.shape_prior and "shape" in outputs:
        terms["shape_prior"] = shape_prior_loss(outputs["shape"].float(), present)
    if weights.bone_length:
        terms["bone_length"] = bone_length_loss(joints, batch)
    if weights.joint_limits:
        terms["joint_limits"] = joint_limit_loss(joints, present)
    if weights.penetration:
        terms["penetration"] = penetration_loss(joints, outputs["root_offset"].float(), present)
    total = sum(getattr(weights, name) * value for name, value in terms.items())
    return total, {name: value.detach() for name, value in terms.items()}


def keypoint_error_px(pred: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean 2D error (input pixels) of predicted keypoints (B, 2, 21, 2) over labelled joints of present hands."""
    error = (pred.float() - batch["keypoints_2d"]).norm(dim=-1)
    weight = ((batch["keypoints_conf"] > 0).float() * batch["present"][..., None])
    return _masked_mean(error, weight)
