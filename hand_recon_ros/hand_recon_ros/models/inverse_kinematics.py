"""Inverse kinematics from 21 refined joints to a hand model's joint rotations (open hand model and MANO).

Open hand model: ``hand_kinematics.fit_pose`` (palm rotation by Kabsch, then per-joint flexion/abduction).
MANO: the root rotation from the palm joints (Kabsch of the wrist and four MCPs), then down each finger the
smallest rotation turning each rest bone onto the target bone in its parent's posed frame (swing; twist is not
observable from joints). FK of the result reproduces the target joints wherever MANO's proportions match them.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from hand_recon_ros.models import hand_kinematics as hk
from hand_recon_ros.models import mano_layer
from hand_recon_ros.models.mano_loader import FINGERTIP_VERTICES, NUM_BETAS, MANOModel
from hand_recon_ros.skeleton import BONES

SHAPE_ITERATIONS = 5
SHAPE_RIDGE = 1e-6  # m² per unit beta²: keeps betas near the mean shape when bone lengths say little
MAX_ABS_BETA = 3.0

# For each MANO joint 1..15: the index (into our 21 joints) of the joint itself and of its child.
_MANO_IN_OURS = np.array(mano_layer.MANO_TO_OURS)
_OURS_OF_MANO = {int(m): i for i, m in enumerate(_MANO_IN_OURS)}  # MANO/tip index (0..20) → our joint index


def open_hand_pose(joints: np.ndarray, side: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rotation (3, 3), wrist translation (3,) and joint angles (5, 3, 2) of the open hand model for joints (21, 3)."""
    rotation, angles = hk.fit_pose(joints, side)
    return rotation, np.asarray(joints, dtype=np.float64)[0].copy(), angles


def _swing(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Smallest rotation (3, 3) turning direction a onto direction b."""
    a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)
    axis = np.cross(a, b)
    s, c = np.linalg.norm(axis), float(np.clip(a @ b, -1.0, 1.0))
    if s < 1e-12:
        if c > 0:
            return np.eye(3)
        ortho = np.cross(a, [1.0, 0.0, 0.0] if abs(a[0]) < 0.9 else [0.0, 1.0, 0.0])
        return Rotation.from_rotvec(np.pi * ortho / np.linalg.norm(ortho)).as_matrix()
    return Rotation.from_rotvec(axis / s * np.arctan2(s, c)).as_matrix()


def mano_pose_from_joints(model: MANOModel, joints: np.ndarray, betas: np.ndarray | None = None) -> np.ndarray:
    """MANO pose (48,) axis-angle whose joints best follow ``joints`` (21, 3) in our order (any rigid frame)."""
    joints = np.asarray(joints, dtype=np.float64)
    if joints.shape != (21, 3) or not np.all(np.isfinite(joints)):
        raise ValueError(f"joints must be finite (21, 3), got shape {joints.shape}")
    betas = np.zeros(NUM_BETAS) if betas is None else np.asarray(betas, dtype=np.float64)
    v_shaped, rest = mano_layer.shaped(model, betas)
    rest_all = np.concatenate([rest, v_shaped[list(FINGERTIP_VERTICES)]])  # (21, 3) MANO joints + tips
    palm = [0, 1, 4, 7, 10]  # wrist and the four finger base joints in MANO's order
    target_palm = joints[[_OURS_OF_MANO[m] for m in palm]]
    root = hk.kabsch(rest_all[palm], target_palm)
    rotations = np.tile(np.eye(3), (16, 1, 1))
    rotations[0] = root
    global_rot = np.tile(np.eye(3), (16, 1, 1))
    global_rot[0] = root
    children = {1: 2, 2: 3, 3: 16 + 1, 4: 5, 5: 6, 6: 16 + 2, 7: 8, 8: 9, 9: 16 + 4, 10: 11, 11: 12, 12: 16 + 3,
                13: 14, 14: 15, 15: 16 + 0}
    for j in range(1, 16):  # parents come before children in MANO's order
        child = children[j]
        parent_rot = global_rot[model.parents[j]]
        rest_bone = rest_all[child] - rest_all[j]
        target_bone = joints[_OURS_OF_MANO[child]] - joints[_OURS_OF_MANO[j]]
        rotations[j] = _swing(rest_bone, parent_rot.T @ target_bone)
        global_rot[j] = parent_rot @ rotations[j]
    return Rotation.from_matrix(rotations).as_rotvec().reshape(-1)


def _rest_bones(model: MANOModel) -> tuple[np.ndarray, np.ndarray]:
    """Rest bone vectors of our 20 bones as an affine function of betas: constant (20, 3) and slope (20, 3, 10)."""
    regress = np.zeros((21, 778))
    regress[:16] = model.j_regressor
    regress[16 + np.arange(5), list(FINGERTIP_VERTICES)] = 1.0
    ours = regress[list(mano_layer.MANO_TO_OURS)]  # (21, 778) rows in our joint order
    parents = np.array([p for p, _ in BONES])
    children = np.array([c for _, c in BONES])
    bone_rows = ours[children] - ours[parents]  # (20, 778)
    return bone_rows @ model.v_template, np.einsum("bv,vck->bck", bone_rows, model.shapedirs)


def fit_betas(model: MANOModel, joints: np.ndarray, iterations: int = SHAPE_ITERATIONS) -> np.ndarray:
    """MANO betas (10,) whose rest bone lengths best match those of ``joints`` (21, 3), ridge-regularised."""
    target = hk.bone_lengths_of(np.asarray(joints, dtype=np.float64))
    const, slope = _rest_bones(model)
    betas = np.zeros(NUM_BETAS)
    for _ in range(iterations):  # Gauss–Newton on |const + slope·β| − target
        bones = const + slope @ betas
        lengths = np.linalg.norm(bones, axis=1)
        jac = np.einsum("bc,bck->bk", bones / lengths[:, None], slope)
        lhs = jac.T @ jac + SHAPE_RIDGE * np.eye(NUM_BETAS)
        betas = betas - np.linalg.solve(lhs, jac.T @ (lengths - target) + SHAPE_RIDGE * betas)
    return np.clip(betas, -MAX_ABS_BETA, MAX_ABS_BETA)


def mano_from_joints(model: MANOModel, joints: np.ndarray, betas: np.ndarray | None = None
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MANO pose (48,), betas (10,) and vertices (778, 3) placed so the MANO wrist lands on joints[0].

    Without ``betas`` the shape is fitted to the joints' bone lengths first (``fit_betas``).
    """
    betas = fit_betas(model, joints) if betas is None else np.asarray(betas, dtype=np.float64)
    pose = mano_pose_from_joints(model, joints, betas)
    out = mano_layer.forward(model, pose, betas)
    vertices = out.vertices - out.joints[0] + np.asarray(joints, dtype=np.float64)[0]
    return pose, betas, vertices
