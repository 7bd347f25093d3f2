"""MANO as stateless numpy functions: shape and pose blend shapes, joint regression, linear blend skinning.

Frames: MANO's model frame, metres. Joint order of MANO's 16 joints: wrist, index 1-3, middle 1-3, pinky 1-3,
ring 1-3, thumb 1-3; ``MANO_TO_OURS`` turns them plus the five fingertip vertices into the project's 21 joints.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from hand_recon_ros.models.mano_loader import FINGERTIP_VERTICES, NUM_BETAS, NUM_MANO_JOINTS, MANOModel

# Our 21-joint order as indices into concat(16 MANO joints, 5 fingertips [thumb, index, middle, ring, pinky]).
MANO_TO_OURS: tuple[int, ...] = (0, 13, 14, 15, 16, 1, 2, 3, 17, 4, 5, 6, 18, 10, 11, 12, 19, 7, 8, 9, 20)


class MANOInputError(ValueError):
    """Pose or shape parameters of the wrong size or non-finite."""


@dataclass
class MANOOutput:
    """Posed MANO hand in the model frame: vertices (778, 3), MANO joints (16, 3), our 21 joints (21, 3), metres."""

    vertices: np.ndarray
    mano_joints: np.ndarray
    joints: np.ndarray
    transforms: np.ndarray  # (16, 4, 4) global rigid transform of each joint


def batch_rodrigues(rotvecs: np.ndarray) -> np.ndarray:
    """Rotation matrices (N, 3, 3) of axis-angle vectors (N, 3)."""
    return Rotation.from_rotvec(np.asarray(rotvecs, dtype=np.float64).reshape(-1, 3)).as_matrix()


def shaped(model: MANOModel, betas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rest vertices (778, 3) and rest joints (16, 3) for shape ``betas`` (10,)."""
    v_shaped = model.v_template + np.einsum("vck,k->vc", model.shapedirs, betas)
    return v_shaped, model.j_regressor @ v_shaped


def rigid_transforms(rotations: np.ndarray, rest_joints: np.ndarray, parents: np.ndarray) -> np.ndarray:
    """Global transforms (16, 4, 4) of joints posed by local rotations (16, 3, 3) around rest joints (16, 3)."""
    n = len(parents)
    out = np.zeros((n, 4, 4))
    for i in range(n):
        local = np.eye(4)
        local[:3, :3] = rotations[i]
        local[:3, 3] = rest_joints[i] - (rest_joints[parents[i]] if parents[i] >= 0 else 0.0)
        out[i] = local if parents[i] < 0 else out[parents[i]] @ local
    return out


def forward(model: MANOModel, pose: np.ndarray, betas: np.ndarray | None = None) -> MANOOutput:
    """Posed MANO: pose (48,) axis-angle (global rotation first, then 15 joints), betas (10,) (default zeros)."""
    pose = np.asarray(pose, dtype=np.float64)
    betas = np.zeros(NUM_BETAS) if betas is None else np.asarray(betas, dtype=np.float64)
    if pose.shape != (NUM_MANO_JOINTS * 3,) or not np.all(np.isfinite(pose)):
        raise MANOInputError(f"MANO pose must be finite (48,) axis-angle, got shape {pose.shape}")
    if betas.shape != (NUM_BETAS,) or not np.all(np.isfinite(betas)):
        raise MANOInputError(f"MANO betas must be finite ({NUM_BETAS},), got shape {betas.shape}")
    v_shaped, rest_joints = shaped(model, betas)
    rotations = batch_rodrigues(pose)
    pose_feature = (rotations[1:] - np.eye(3)).reshape(-1)
    v_posed = v_shaped + np.einsum("vcp,p->vc", model.posedirs, pose_feature)
    transforms = rigid_transforms(rotations, rest_joints, model.parents)
    skinning = transforms.copy()
    skinning[:, :3, 3] -= np.einsum("jab,jb->ja", transforms[:, :3, :3], rest_joints)
    per_vertex = np.einsum("vj,jab->vab", model.weights, skinning)
    vertices = np.einsum("vab,vb->va", per_vertex[:, :3, :3], v_posed) + per_vertex[:, :3, 3]
    mano_joints = transforms[:, :3, 3].copy()
    all_joints = np.concatenate([mano_joints, vertices[list(FINGERTIP_VERTICES)]])
    return MANOOutput(vertices, mano_joints, all_joints[list(MANO_TO_OURS)], transforms)


def pca_to_pose(model: MANOModel, global_rotvec: np.ndarray, pca: np.ndarray) -> np.ndarray:
    """Full (48,) axis-angle pose from a global rotation (3,) and PCA coefficients (k <= 45) plus the mean pose."""
    pca = np.asarray(pca, dtype=np.float64)
    finger = pca @ model.hands_components[: len(pca)] + model.hands_mean
    return np.concatenate([np.asarray(global_rotvec, dtype=np.float64), finger])
