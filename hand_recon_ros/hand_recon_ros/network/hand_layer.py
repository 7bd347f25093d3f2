"""The project's 21-joint hand (models/hand_kinematics.py) and open mesh as a batched differentiable torch layer.

Like smplx: the maths are stateless functions (``rotation_6d_to_matrix``, ``forward_kinematics``, ``lbs``), the
model is a thin ``HandLayer`` holding the template as buffers. Device and dtype follow the inputs. No loops over
data and no scatter, so the layer exports to ONNX inside the network.

Pose: (..., 16, 6) in the 6D rotation representation (Zhou et al. 2019: the first two columns of the matrix);
entry 0 is the global rotation (hand frame → camera axes), entries 1 + 3·chain + k the local rotation of chain
``chain``'s articulated joint k (base, middle, distal) in its parent bone's frame. The numpy model's joints are
the special case ``Rz(abduction) @ Rx(flexion)``; here each joint may rotate freely (limits are a loss).
Shape: (..., 20) log bone scales in BONES order: bone length = BONE_LENGTH_PRIOR_M · exp(shape), 0 = prior.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from hand_recon_ros.models import hand_kinematics as hk
from hand_recon_ros.models import open_hand_mesh
from hand_recon_ros.skeleton import FINGERS

NUM_POSE = 16  # global rotation + 5 chains x 3 articulated joints
NUM_SHAPE = hk.NUM_BONES
NUM_CHAINS = hk.NUM_CHAINS
# Joint index of each chain's (base, middle, distal) articulated joint: the joint the bone starts at.
CHAIN_JOINTS = np.array([list(f[:3]) for f in FINGERS])


def rotation_6d_to_matrix(d6: torch.Tensor) -> torch.Tensor:
    """6D rotations (..., 6) (two columns, any scale) → rotation matrices (..., 3, 3) by Gram–Schmidt."""
    a1, a2 = d6[..., 0:3], d6[..., 3:6]
    b1 = a1 / a1.norm(dim=-1, keepdim=True).clamp_min(1e-8)
    a2 = a2 - (b1 * a2).sum(-1, keepdim=True) * b1
    b2 = a2 / a2.norm(dim=-1, keepdim=True).clamp_min(1e-8)
    x1, y1, z1 = b1.unbind(-1)
    x2, y2, z2 = b2.unbind(-1)
    b3 = torch.stack([y1 * z2 - z1 * y2, z1 * x2 - x1 * z2, x1 * y2 - y1 * x2], dim=-1)  # cross, ONNX-plain
    return torch.stack([b1, b2, b3], dim=-1)


def matrix_to_rotation_6d(matrix: torch.Tensor) -> torch.Tensor:
    """Rotation matrices (..., 3, 3) → 6D (..., 6): the first two columns, concatenated."""
    return torch.cat([matrix[..., :, 0], matrix[..., :, 1]], dim=-1)


def identity_pose_6d(*batch: int) -> torch.Tensor:
    """The flat, camera-aligned pose (*batch, 16, 6): every rotation the identity."""
    eye = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0])
    return eye.expand(*batch, NUM_POSE, 6).clone()


def forward_kinematics(local: torch.Tensor, bone_lengths: torch.Tensor, base_frames: torch.Tensor,
                       palm_directions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-hand joints (N, 21, 3) metres, hand frame, and bone frames (N, 5, 3, 3, 3), like the numpy FK.

    local: (N, 5, 3, 3, 3) local joint rotations; bone_lengths: (N, 20) metres; base_frames: (5, 3, 3) rest frame of
    each chain's first articulated bone; palm_directions: (5, 3) unit wrist → base-joint directions.
    """
    f0 = base_frames @ local[:, :, 0]
    f1 = f0 @ local[:, :, 1]
    f2 = f1 @ local[:, :, 2]
    frames = torch.stack([f0, f1, f2], dim=2)  # (N, 5, 3, 3, 3)
    lengths = bone_lengths.reshape(-1, NUM_CHAINS, 4)
    palm = palm_directions * lengths[..., :1]  # (N, 5, 3)
    steps = frames[..., :, 1] * lengths[..., 1:, None]  # (N, 5, 3, 3): bone k's +y axis times its length
    chain = torch.cumsum(torch.cat([palm[:, :, None], steps], dim=2), dim=2)  # (N, 5, 4, 3)
    wrist = torch.zeros_like(chain[:, :1, 0])
    return torch.cat([wrist, chain.reshape(-1, NUM_CHAINS * 4, 3)], dim=1), frames


def lbs(rest_vertices: torch.Tensor, weights: torch.Tensor, rotations: torch.Tensor,
        offsets: torch.Tensor) -> torch.Tensor:
    """Linear blend skinning with dense weights: vertices (N, V, 3).

    rest_vertices: (V, 3) metres; weights: (V, NB) rows summing to 1; rotations: (N, NB, 3, 3) and offsets (N, NB, 3)
    of each skinning bone (rest → posed: x ↦ R x + t).
    """
    n, nb = rotations.shape[:2]
    # Plain matmuls (ONNX MatMul; TensorRT-friendly): blend the 3x4 bone transforms per vertex, then apply.
    transforms = torch.cat([rotations, offsets[..., None]], dim=-1).reshape(n, nb, 12)
    blended = torch.matmul(weights, transforms).reshape(n, -1, 3, 4)  # (N, V, 3, 4)
    return torch.matmul(blended[..., :3], rest_vertices[..., None])[..., 0] + blended[..., 3]


class HandLayer(nn.Module):
    """Both sides' joints (and optionally mesh vertices) from pose (6D) and log bone scales; batched, differentiable.

    forward(pose (N, 16, 6), shape (N, 20), side (N,) float: 0 left, 1 right) →
    joints (N, 21, 3) metres, wrist at the origin, camera axes (the global rotation applied; left = mirror image),
    and vertices (N, V, 3) or None. Mesh vertices use the open mesh's rest shape at the prior bone lengths
    skinned by bones of the actual lengths (a length change moves the segments, not their tube length).
    """

    def __init__(self, with_mesh: bool = False) -> None:
        super().__init__()
        self.with_mesh = with_mesh
        self.register_buffer("base_frames", torch.tensor(hk.CHAIN_BASE_FRAMES, dtype=torch.float32))
        self.register_buffer("palm_directions", torch.tensor(hk.PALM_DIRECTIONS, dtype=torch.float32))
        self.register_buffer("bone_prior", torch.tensor(hk.BONE_LENGTH_PRIOR_M, dtype=torch.float32))
        self.register_buffer("mirror_x", torch.tensor([-1.0, 1.0, 1.0]))
        if with_mesh:
            vertices, faces = open_hand_mesh.rest_mesh()
            bones, w = open_hand_mesh.skinning_weights()
            dense = np.zeros((len(vertices), open_hand_mesh.NUM_SKIN_BONES))
            np.add.at(dense, (np.arange(len(vertices))[:, None], bones), w)
            self.register_buffer("rest_vertices", torch.tensor(vertices, dtype=torch.float32))
            self.register_buffer("skin_weights", torch.tensor(dense, dtype=torch.float32))
            self.register_buffer("faces", torch.tensor(faces.astype(np.int64)))
            self.register_buffer("rest_joints", torch.tensor(hk.rest_joints(), dtype=torch.float32))

    @property
    def num_vertices(self) -> int:
        """Mesh vertex count (0 without the mesh)."""
        return int(self.rest_vertices.shape[0]) if self.with_mesh else 0

    def forward(self, pose: torch.Tensor, shape: torch.Tensor, side: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Joints (N, 21, 3) and vertices (N, V, 3) | None, metres, wrist-relative, camera axes."""
        rot = rotation_6d_to_matrix(pose)  # (N, 16, 3, 3)
        local = rot[:, 1:].reshape(-1, NUM_CHAINS, 3, 3, 3)
        lengths = self.bone_prior * torch.exp(shape)
        joints, frames = forward_kinematics(local, lengths, self.base_frames, self.palm_directions)
        # Left hands mirror x in the hand frame: m = 1 - 2·is_left on the x coordinate.
        mirror = torch.stack([1.0 - 2.0 * (1.0 - side), torch.ones_like(side), torch.ones_like(side)], -1)
        global_rot = rot[:, 0]
        joints_cam = torch.matmul(joints * mirror[:, None], global_rot.transpose(1, 2))
        if not self.with_mesh:
            return joints_cam, None
        # Skinning bones: 0 = the hand frame (identity), 1 + 3c + k = chain c's bone k.
        bone_rot = frames @ self.base_frames.transpose(-1, -2)[None, :, None]  # (N, 5, 3, 3, 3)
        start = joints[:, CHAIN_JOINTS.reshape(-1)].reshape(-1, NUM_CHAINS, 3, 3)
        rest_start = self.rest_joints[CHAIN_JOINTS.reshape(-1)].reshape(NUM_CHAINS, 3, 3)
        bone_off = start - torch.matmul(bone_rot, rest_start[..., None])[..., 0]
        n = pose.shape[0]
        eye = torch.eye(3, dtype=pose.dtype, device=pose.device).expand(n, 1, 3, 3)
        rotations = torch.cat([eye, bone_rot.reshape(n, -1, 3, 3)], dim=1)
        offsets = torch.cat([torch.zeros_like(bone_off[:, :1, 0]), bone_off.reshape(n, -1, 3)], dim=1)
        vertices = lbs(self.rest_vertices, self.skin_weights, rotations, offsets) * mirror[:, None]
        return joints_cam, torch.matmul(vertices, global_rot.transpose(1, 2))


def angles_to_pose_6d(rotation: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """The 6D pose (16, 6) of the numpy model's global rotation (3, 3) and joint angles (5, 3, 2) (tests, tools)."""
    local = hk.joint_rotations(np.asarray(angles, dtype=np.float64)).reshape(-1, 3, 3)
    mats = np.concatenate([np.asarray(rotation, dtype=np.float64)[None], local])
    return np.concatenate([mats[:, :, 0], mats[:, :, 1]], axis=-1)


