"""The 21-joint hand as a kinematic tree: adult bone-length prior, joint angles, limits, FK and analytic IK.

Hand frame (right hand; a left hand is the mirror image, x → −x): origin at the wrist, +y distal (wrist towards
the middle-finger MCP), +x radial (towards the thumb side), +z palmar (out of the palm). Each of the five chains
(thumb, index, middle, ring, pinky) has a fixed palm bone from the wrist to its base joint (thumb CMC, finger MCP)
and three articulated bones. Every articulated joint k of a chain rotates by ``Rz(abduction) @ Rx(flexion)`` in
its parent bone's frame, whose +y axis runs along the bone; flexion turns +y towards +z (palmar).

Joint angles are stored as (..., 5, 3, 2) = chain, joint (base, middle, distal), (flexion, abduction). Only
``ACTIVE_ANGLES`` vary (21 per hand); the rest are held at 0 by zero-width limits.
"""

from __future__ import annotations

import numpy as np

from hand_recon_ros.skeleton import BONES, FINGERS, NUM_JOINTS

NUM_CHAINS = 5
NUM_BONES = len(BONES)
# Mirror in the hand frame turning the right-hand model into a left hand.
MIRROR_X = np.diag([-1.0, 1.0, 1.0])

# Adult bone lengths, metres, in BONES order (bone b ends at joint b + 1). Derived from Buchholz, Armstrong &
# Goldstein, "Anthropometric data for describing the kinematics of the human hand", Ergonomics 35(3) 1992:
# segment length = ratio × hand length, hand length 0.185 m (adult mean of male ~0.19 m and female ~0.175 m).
# Ratios (metacarpal, proximal, middle, distal): index .374/.246/.143/.097, middle .373/.265/.170/.108,
# ring .336/.244/.165/.107, little .295/.204/.117/.093, thumb metacarpal .251, proximal .196, distal .158.
# Keypoint conventions add ~0.017 m wrist-crease-to-metacarpal-base (carpals) to each palm bone and ~0.004 m of
# pulp beyond the distal phalanx to each tip; the thumb's wrist→CMC bone (trapezium) is ~0.035 m.
HAND_LENGTH_PRIOR_M = 0.185
BONE_LENGTH_PRIOR_M: np.ndarray = np.array(
    [
        0.035,
        0.046,
        0.036,
        0.033,  # thumb: wrist→CMC, CMC→MCP, MCP→IP, IP→tip
        0.086,
        0.046,
        0.026,
        0.022,  # index: wrist→MCP, MCP→PIP, PIP→DIP, DIP→tip
        0.086,
        0.049,
        0.031,
        0.024,  # middle
        0.079,
        0.045,
        0.031,
        0.024,  # ring
        0.072,
        0.038,
        0.022,
        0.021,  # pinky
    ],
    dtype=np.float64,
)
# Allowed range of a tracked hand's bone lengths relative to the prior (children to large adults).
BONE_SCALE_RANGE: tuple[float, float] = (0.8, 1.25)

# Rest (flat hand) directions of the palm bones from the wrist, hand frame (normalised below).
_PALM_DIRECTIONS = np.array(
    [
        [0.62, 0.60, 0.50],  # thumb CMC: radial, distal and palmar
        [0.28, 0.96, 0.0],  # index MCP
        [0.03, 1.0, 0.0],  # middle MCP
        [-0.19, 0.98, 0.0],  # ring MCP
        [-0.40, 0.92, 0.0],  # pinky MCP
    ]
)
PALM_DIRECTIONS: np.ndarray = _PALM_DIRECTIONS / np.linalg.norm(_PALM_DIRECTIONS, axis=1, keepdims=True)


# How strongly each chain (thumb, index, middle, ring, pinky) turns about the palm normal per radian of palm
# spread (positive spread fans the fingers apart: radial chains towards +x, ulnar ones towards −x).
PALM_SPREAD_FACTORS = np.array([-1.0, -1.0, 0.0, 1.0, 2.0])
# Allowed palm spread, radians (a flat hand's metacarpal fan varies by about ±10° between people and poses).
PALM_SPREAD_LIMITS_RAD = (-0.2, 0.2)


def _frame_from_y_z(y: np.ndarray, z_hint: np.ndarray) -> np.ndarray:
    """Right-handed rotation whose columns are x, y, z with y given and z closest to ``z_hint``."""
    y = y / np.linalg.norm(y)
    z = z_hint - y * float(z_hint @ y)
    z /= np.linalg.norm(z)
    return np.stack([np.cross(y, z), y, z], axis=1)


# Rest frame of each chain's first articulated bone: +y along the rest bone, +z the flexion direction.
CHAIN_BASE_FRAMES: np.ndarray = np.stack(
    [
        _frame_from_y_z(np.array([0.55, 0.80, 0.22]), np.array([-0.70, 0.0, 0.72])),  # thumb bends across palm
        _frame_from_y_z(np.array([0.16, 1.0, 0.0]), np.array([0.0, 0.0, 1.0])),
        _frame_from_y_z(np.array([0.0, 1.0, 0.0]), np.array([0.0, 0.0, 1.0])),
        _frame_from_y_z(np.array([-0.14, 1.0, 0.0]), np.array([0.0, 0.0, 1.0])),
        _frame_from_y_z(np.array([-0.30, 1.0, 0.0]), np.array([0.0, 0.0, 1.0])),
    ]
)

_D = np.pi / 180.0
# Joint limits, radians, (5 chains, 3 joints, (flexion, abduction), (low, high)). Finger ranges follow
# clinical active range of motion (MCP −30..90° flexion, ±20..25° abduction; PIP 0..110°; DIP −10..90°);
# the thumb: CMC flexion −35..60°, abduction −30..45°, MCP −15..75° with ±15° abduction, IP −25..85°.
JOINT_LIMITS_RAD: np.ndarray = (
    np.array(
        [
            [[[-35, 60], [-30, 45]], [[-15, 75], [-15, 15]], [[-25, 85], [0, 0]]],
            [[[-30, 88], [-25, 25]], [[-5, 110], [0, 0]], [[-10, 90], [0, 0]]],
            [[[-30, 88], [-20, 20]], [[-5, 110], [0, 0]], [[-10, 90], [0, 0]]],
            [[[-30, 88], [-20, 20]], [[-5, 110], [0, 0]], [[-10, 90], [0, 0]]],
            [[[-30, 88], [-30, 30]], [[-5, 110], [0, 0]], [[-10, 90], [0, 0]]],
        ],
        dtype=np.float64,
    )
    * _D
)
# Flat indices (into the 30 angles of a hand, chain-major) of the angles that may move: 21 per hand.
ACTIVE_ANGLES: np.ndarray = np.flatnonzero((JOINT_LIMITS_RAD[..., 1] - JOINT_LIMITS_RAD[..., 0]).ravel() > 0)
NUM_ANGLES = 30


class KinematicsError(ValueError):
    """Input of the wrong shape or with non-finite values for the hand kinematics."""


def _check(name: str, array: np.ndarray, trailing: tuple[int, ...]) -> np.ndarray:
    """Return ``array`` as float64, raising KinematicsError naming it when its trailing shape is wrong."""
    array = np.asarray(array, dtype=np.float64)
    if array.shape[array.ndim - len(trailing) :] != trailing:
        raise KinematicsError(f"{name} must have shape (..., {', '.join(map(str, trailing))}), got {array.shape}")
    if not np.all(np.isfinite(array)):
        raise KinematicsError(f"{name} contains non-finite values")
    return array


def clip_to_limits(angles: np.ndarray) -> np.ndarray:
    """Clamp angles (..., 5, 3, 2) into JOINT_LIMITS_RAD (the anatomical range of each joint)."""
    return np.clip(angles, JOINT_LIMITS_RAD[..., 0], JOINT_LIMITS_RAD[..., 1])


def joint_rotations(angles: np.ndarray) -> np.ndarray:
    """Local rotations ``Rz(abduction) @ Rx(flexion)`` for angles (..., 2) → (..., 3, 3)."""
    cf, sf = np.cos(angles[..., 0]), np.sin(angles[..., 0])
    ca, sa = np.cos(angles[..., 1]), np.sin(angles[..., 1])
    out = np.zeros((*cf.shape, 3, 3))
    out[..., 0, 0], out[..., 0, 1], out[..., 0, 2] = ca, -sa * cf, sa * sf
    out[..., 1, 0], out[..., 1, 1], out[..., 1, 2] = sa, ca * cf, -ca * sf
    out[..., 2, 1], out[..., 2, 2] = sf, cf
    return out


def spread_rotations(palm_spread: np.ndarray) -> np.ndarray:
    """Per-chain rotations (..., 5, 3, 3) about the palm normal fanning the palm by ``palm_spread`` (...,) rad."""
    angle = np.asarray(palm_spread, dtype=np.float64)[..., None] * PALM_SPREAD_FACTORS
    c, s = np.cos(angle), np.sin(angle)
    out = np.zeros((*angle.shape, 3, 3))
    out[..., 0, 0], out[..., 0, 1], out[..., 1, 0], out[..., 1, 1], out[..., 2, 2] = c, -s, s, c, 1.0
    return out


def forward_kinematics(angles: np.ndarray, bone_lengths: np.ndarray, palm_directions: np.ndarray | None = None,
                       palm_spread: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Right-hand joints and bone frames in the hand frame.

    angles: (..., 5, 3, 2) radians; bone_lengths: (..., 20) metres, broadcastable to angles' batch;
    palm_directions: (..., 5, 3) unit wrist→base-joint directions of a personalised palm (default the template);
    palm_spread: (...,) radians, fans the chains apart about the palm normal (PALM_SPREAD_FACTORS per chain).
    Returns joints (..., 21, 3) metres (wrist at the origin) and frames (..., 5, 3, 3, 3): the rotation of
    each chain's three articulated bones (columns x, y, z; +y along the bone).
    """
    local = joint_rotations(angles)  # (..., 5, 3, 3, 3)
    palm = PALM_DIRECTIONS if palm_directions is None else palm_directions
    base_frames = CHAIN_BASE_FRAMES
    if palm_spread is not None:
        fan = spread_rotations(palm_spread)
        palm = (fan @ palm[..., None])[..., 0]
        base_frames = fan @ CHAIN_BASE_FRAMES
    lengths = np.asarray(bone_lengths, dtype=np.float64).reshape(*np.shape(bone_lengths)[:-1], NUM_CHAINS, 4)
    batch = np.broadcast_shapes(angles.shape[:-3], lengths.shape[:-2], np.shape(palm)[:-2])
    frames = np.empty((*batch, NUM_CHAINS, 3, 3, 3))
    np.matmul(base_frames, local[..., 0, :, :], out=frames[..., 0, :, :])
    np.matmul(frames[..., 0, :, :], local[..., 1, :, :], out=frames[..., 1, :, :])
    np.matmul(frames[..., 1, :, :], local[..., 2, :, :], out=frames[..., 2, :, :])
    joints = np.empty((*batch, NUM_JOINTS, 3))
    joints[..., 0, :] = 0.0
    chain_points = joints[..., 1:, :].reshape(*batch, NUM_CHAINS, 4, 3)  # a view: written in place below
    chain_points[..., 0, :] = palm * lengths[..., :1]
    chain_points[..., 1:, :] = frames[..., :, 1] * lengths[..., 1:, None]
    np.cumsum(chain_points, axis=-2, out=chain_points)
    return joints, frames


def rest_joints(bone_lengths: np.ndarray | None = None) -> np.ndarray:
    """Joints (21, 3) of the flat right hand in the hand frame, metres."""
    lengths = BONE_LENGTH_PRIOR_M if bone_lengths is None else bone_lengths
    return forward_kinematics(np.zeros((NUM_CHAINS, 3, 2)), lengths)[0]


def side_mirror(side: str) -> np.ndarray:
    """The (3, 3) hand-frame mirror for ``side``: identity for right, x-flip for left."""
    if side not in ("left", "right"):
        raise KinematicsError(f"side must be 'left' or 'right', got {side!r}")
    return MIRROR_X if side == "left" else np.eye(3)


def personal_palm(joints_hand: np.ndarray, weight: float) -> np.ndarray:
    """Palm directions (..., 5, 3): the template turned ``weight`` of the way to those of joints (..., 21, 3).

    ``joints_hand`` are right-hand joints in the hand frame (wrist at the origin); weight 0 keeps the template.
    """
    bases = np.asarray(joints_hand, dtype=np.float64)[..., [f[0] for f in FINGERS], :]
    observed = bases / np.maximum(np.linalg.norm(bases, axis=-1, keepdims=True), 1e-9)
    mixed = (1.0 - weight) * PALM_DIRECTIONS + weight * observed
    return mixed / np.maximum(np.linalg.norm(mixed, axis=-1, keepdims=True), 1e-9)


def bone_lengths_of(joints: np.ndarray) -> np.ndarray:
    """Bone lengths (..., 20) metres of joints (..., 21, 3) in BONES order."""
    joints = np.asarray(joints, dtype=np.float64)
    parents = np.array([p for p, _ in BONES])
    children = np.array([c for _, c in BONES])
    return np.linalg.norm(joints[..., children, :] - joints[..., parents, :], axis=-1)


def kabsch(source: np.ndarray, target: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Rotations R (..., 3, 3) minimising sum w‖R·source − target‖² for centred-or-not point sets (..., N, 3)."""
    w = np.ones(source.shape[-2]) if weights is None else weights
    sc = source - (w[..., None] * source).sum(-2, keepdims=True) / w.sum(-1)[..., None, None]
    tc = target - (w[..., None] * target).sum(-2, keepdims=True) / w.sum(-1)[..., None, None]
    cov = np.einsum("...n,...ni,...nj->...ij", w * np.ones(source.shape[:-1]), tc, sc)
    u, _, vt = np.linalg.svd(cov)
    d = np.sign(np.linalg.det(u @ vt))
    fix = np.ones((*d.shape, 3))
    fix[..., 2] = d
    return (u * fix[..., None, :]) @ vt


# Joints used to fix the palm orientation: wrist and the four finger MCPs (the thumb CMC moves in practice).
PALM_JOINTS: tuple[int, ...] = (0, 5, 9, 13, 17)


def inverse_kinematics(joints_hand: np.ndarray) -> np.ndarray:
    """Joint angles (..., 5, 3, 2) of a right hand whose joints (..., 21, 3) are given in the hand frame.

    Exact for poses the model can produce (within limits, MCP flexion < 90°); for other input it returns the
    angles whose bone directions are closest per joint (flexion from the bone's palmar tilt, abduction from its
    sideways swing). Angles are not clipped.
    """
    joints_hand = _check("joints_hand", joints_hand, (NUM_JOINTS, 3))
    chains = np.stack([joints_hand[..., list(f), :] for f in FINGERS], axis=-3)  # (..., 5, 4, 3)
    frame = np.broadcast_to(CHAIN_BASE_FRAMES, (*chains.shape[:-2], 3, 3)).copy()
    angles = []
    for k in range(3):
        bone = chains[..., k + 1, :] - chains[..., k, :]
        d = np.einsum("...ji,...j->...i", frame, bone)  # bone in the parent frame
        d /= np.maximum(np.linalg.norm(d, axis=-1, keepdims=True), 1e-12)
        limits = JOINT_LIMITS_RAD[:, k, 1]
        two_dof = limits[:, 1] > limits[:, 0]
        # Two-axis joints: flexion from the bone's palmar tilt, abduction from its sideways swing; hinge joints:
        # flexion in the bone's y-z plane (twist-free projection).
        flex = np.where(two_dof, np.arcsin(np.clip(d[..., 2], -1.0, 1.0)), np.arctan2(d[..., 2], d[..., 1]))
        abd = np.where(two_dof, np.arctan2(-d[..., 0], d[..., 1]), 0.0)
        pair = np.stack([flex, abd], axis=-1)
        angles.append(pair)
        frame = frame @ joint_rotations(pair)
    return np.stack(angles, axis=-2)


def hand_frame_rotation(joints: np.ndarray, side: str, bone_lengths: np.ndarray | None = None) -> np.ndarray:
    """Rotation (..., 3, 3) taking the ``side`` hand frame to the joints' frame, from the palm joints."""
    joints = _check("joints", joints, (NUM_JOINTS, 3))
    rest = side_mirror(side) @ rest_joints(bone_lengths).T
    return kabsch(rest.T[list(PALM_JOINTS)], joints[..., list(PALM_JOINTS), :])


def fit_pose(joints: np.ndarray, side: str) -> tuple[np.ndarray, np.ndarray]:
    """Rotation (3, 3) and joint angles (5, 3, 2) of a ``side`` hand whose joints (21, 3) are given (any frame)."""
    joints = _check("joints", joints, (NUM_JOINTS, 3))
    rotation = hand_frame_rotation(joints, side, bone_lengths_of(joints))
    local = (joints - joints[0]) @ rotation @ side_mirror(side)  # mirror is its own inverse
    return rotation, inverse_kinematics(local)


def pose_joints(
    rotation: np.ndarray, translation: np.ndarray, angles: np.ndarray, bone_lengths: np.ndarray, side: str
) -> np.ndarray:
    """Joints (..., 21, 3) of a ``side`` hand placed by rotation (..., 3, 3) and wrist translation (..., 3)."""
    local, _ = forward_kinematics(angles, bone_lengths)
    mirrored = local @ side_mirror(side)
    return np.einsum("...ij,...nj->...ni", rotation, mirrored) + np.asarray(translation)[..., None, :]


def random_angles(rng: np.random.Generator, size: tuple[int, ...] = (), spread: float = 0.7) -> np.ndarray:
    """Random joint angles (*size, 5, 3, 2) inside the limits, ``spread`` of each range around its middle."""
    low, high = JOINT_LIMITS_RAD[..., 0], JOINT_LIMITS_RAD[..., 1]
    mid, half = (low + high) / 2.0, (high - low) / 2.0 * spread
    return mid + half * rng.uniform(-1.0, 1.0, size=(*size, NUM_CHAINS, 3, 2))
