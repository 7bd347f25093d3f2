"""Decoupled iterative refinement of both hands: 2D pixel alignment ⇄ 3D joint constraints (numpy, batched).

Each hand is a kinematic model (``models.hand_kinematics``): global rotation, wrist translation and 21 joint
angles with fixed bone lengths. One iteration alternates

(a) a 2D step: one damped Gauss–Newton (Levenberg–Marquardt) update of every hand's parameters on the
    confidence-weighted, Huber-robust (IRLS) reprojection error of the 21 keypoints, with the landmark network's
    world landmarks (root-relative metric shape), its relative depth (keypoints_z, when given) and the initial
    joint angles as priors;
(b) a 3D step: one update that keeps the joints near the 2D step's result while pushing the two hands'
    bone capsules apart (non-penetration) and, in tracking mode, towards the previous frame (smoothness);
    joint limits are enforced by clamping after every update; bone lengths never change inside the solver.

Both hands are solved in one batch: one vectorised FK per update gives the joints and their analytic Jacobian
with respect to every parameter of every hand (``_pose``). The hands are coupled in the 3D step (each hand sees
the other at its current pose and removes half of every penetration).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from hand_recon_ros.models import hand_kinematics as hk
from hand_recon_ros.pipeline import solver_kernels as _sk
from hand_recon_ros.pipeline.camera import pixel_rays
from hand_recon_ros.pipeline.types import CameraIntrinsics
from hand_recon_ros.skeleton import BONES, NUM_JOINTS

SPREAD = 6  # parameter index of the palm spread
ANGLES = 7  # first parameter index of the joint angles
NUM_PARAMS = ANGLES + len(hk.ACTIVE_ANGLES)  # rotation increment (3), wrist translation (3), spread, angles
# Forward-difference steps: radians for rotations and angles, metres for the translation.
JACOBIAN_STEP_RAD = 1e-4
JACOBIAN_STEP_M = 1e-5
# Noise scales that weight the residual terms (metres unless stated).
REPROJECTION_SIGMA_M = 0.003  # 2D keypoint noise expressed at the hand's depth
WORLD_PRIOR_SIGMA_M = 0.04  # error of the network's root-relative world landmarks (~30 mm on real photos)
WORLD_PRIOR_DEPTH_SIGMA_M = 0.04  # the same along the camera axis, where the network is least sure
# Error of the image landmarks' relative depth (keypoints_z · depth / f): its scale is off by up to ±50 % on real
# photos, i.e. tens of mm over a hand's depth extent, but its ordering is reliable (also on edge-on hands).
RELATIVE_DEPTH_SIGMA_M = 0.03
PALM_ADAPT_WEIGHT = 0.0  # how far the palm's shape follows the world landmarks (0: adult template)
ANGLE_PRIOR_SIGMA_RAD = 0.6  # weak pull towards the angles read from the world landmarks
SPREAD_PRIOR_SIGMA_RAD = 0.1  # palm spread stays near the adult template
ANCHOR_SIGMA_M = 0.004  # how far the 3D step may move joints away from the 2D step's result
PENETRATION_SIGMA_M = 0.0005  # penetration is nearly a hard constraint
HUBER_PX = 3.0  # reprojection errors above this (pixels) are down-weighted (IRLS)
LM_DAMPING = 1e-2  # Levenberg–Marquardt damping relative to the normal matrix's diagonal
MIN_DEPTH_M = 0.05
# Depth-camera term (HandObservation.depth_m): noise of a joint-centre depth where the observation gives none
# (depth_sigma_m), growing with distance as a single pixel's does (sigma = base + quadratic · z²), and the Huber
# thresholds that limit outliers: one-sided, since a depth reading can be nearer than the joint's skin (a finger
# or the other hand in front of it: frequent) but not further (the skin would be in front of what the sensor saw),
# so readings nearer than the fit are down-weighted from about one joint-depth error (depth_fusion), further ones
# only beyond DEPTH_HUBER_M.
DEPTH_SIGMA_BASE_M = 0.004
DEPTH_SIGMA_QUADRATIC_PER_M = 0.004
DEPTH_HUBER_M = 0.008
DEPTH_OCCLUDED_HUBER_M = 0.004
MAX_DEPTH_M = 10.0
CONTACT_MARGIN_M = 0.005  # capsule pairs closer than their radii plus this are watched in the 3D step
# Capsule radius of each bone, metres, BONES order (palm bones thicker; fingers thinning towards the tip).
BONE_RADIUS_M: np.ndarray = np.array(
    [0.013, 0.011, 0.0095, 0.0085,
     0.012, 0.0090, 0.0080, 0.0072,
     0.012, 0.0092, 0.0082, 0.0074,
     0.012, 0.0088, 0.0078, 0.0070,
     0.011, 0.0080, 0.0070, 0.0064]
)
_PARENTS = np.array([p for p, _ in BONES])
_CHILDREN = np.array([c for _, c in BONES])
_EYE_3 = np.eye(3)
_EYE_P = np.eye(NUM_PARAMS)
# Chain points (base joint + 3) downstream of each articulated joint k: mask (3 joints, 4 points, 1).
_DOWNSTREAM = (np.arange(4)[None, :] > np.arange(3)[:, None]).astype(np.float64)[..., None]
# One-hot chain of each active angle, shaped to scatter (21, 4, 3) per-chain derivatives into (21, 5, 4, 3).
_OWN_CHAIN = np.eye(hk.NUM_CHAINS)[hk.ACTIVE_ANGLES // 6][:, :, None, None]
_SPREAD_PER_POINT = np.repeat(hk.PALM_SPREAD_FACTORS, 4)  # spread factor of each of the 20 chain points
# Jacobian (P, 22) of the angle and spread priors (angles, then spread) before division by their sigmas.
_PRIOR_JACOBIAN = np.zeros((NUM_PARAMS, NUM_PARAMS - SPREAD))
_PRIOR_JACOBIAN[np.arange(ANGLES, NUM_PARAMS), np.arange(NUM_PARAMS - ANGLES)] = 1.0 / ANGLE_PRIOR_SIGMA_RAD
_PRIOR_JACOBIAN[SPREAD, NUM_PARAMS - ANGLES] = 1.0 / SPREAD_PRIOR_SIGMA_RAD
_WORLD_SIGMAS_M = np.array([WORLD_PRIOR_SIGMA_M, WORLD_PRIOR_SIGMA_M, WORLD_PRIOR_DEPTH_SIGMA_M])  # x, y, depth
_LIMITS_ACTIVE = hk.JOINT_LIMITS_RAD.reshape(-1, 2)[hk.ACTIVE_ANGLES]
_LIMITS_FLAT = np.ascontiguousarray(hk.JOINT_LIMITS_RAD.reshape(-1, 2))
# Noise scales in the order solver_kernels.residual_2d reads them.
_KERNEL_SIGMAS = np.array([REPROJECTION_SIGMA_M, *_WORLD_SIGMAS_M, ANGLE_PRIOR_SIGMA_RAD, SPREAD_PRIOR_SIGMA_RAD])
# Scalar constants in the order solver_kernels.solve reads them (solver_kernels.SOLVE_CONSTS).
_SOLVE_CONSTS = np.array([LM_DAMPING, HUBER_PX, MIN_DEPTH_M, MAX_DEPTH_M, DEPTH_SIGMA_BASE_M,
                          DEPTH_SIGMA_QUADRATIC_PER_M, DEPTH_HUBER_M, ANCHOR_SIGMA_M, PENETRATION_SIGMA_M,
                          CONTACT_MARGIN_M, PALM_ADAPT_WEIGHT, DEPTH_OCCLUDED_HUBER_M])
_LIMITS_ACTIVE_C = np.ascontiguousarray(_LIMITS_ACTIVE)


class RefinementError(ValueError):
    """Refinement input with a wrong shape or non-finite values; the message names the field."""


@dataclass
class RefineSettings:
    """Iteration counts and weights of the solver."""

    iterations: int = 2
    warm_iterations: int = 1  # iterations when every hand starts from its previous frame's fit (tracking mode)
    steps_2d: int = 1  # 2D (reprojection) updates per iteration
    temporal_sigma_m: float | None = None  # None: no smoothness term; else joint motion noise per frame


@dataclass
class HandObservation:
    """What the solver knows about one hand.

    keypoints_px: (21, 2) undistorted pixels; confidence: (21,) in [0, 1]; world: (21, 3) metres, root-relative
    shape with camera-aligned axes (any origin); bone_lengths: (20,) metres; previous: (21, 3) camera-frame
    joints of the same track in the previous frame, or None; keypoints_z: (21,) the landmark network's
    wrist-relative depth in image pixels (x scale), or None (no relative-depth prior); warm_start: the same
    track's fit in the previous frame, the solver's starting point instead of the world landmarks' pose;
    depth_m: (21,) joint-centre camera z from a depth camera, NaN where unknown, or None (monocular placement);
    depth_sigma_m: (21,) their expected errors (metres; pipeline/depth_fusion.py), or None (DEPTH_SIGMA_* model);
    keypoints_z_sigma_m: the error of keypoints_z in metres when it comes from a depth camera, or None (the
    network's, RELATIVE_DEPTH_SIGMA_M).
    """

    side: str
    keypoints_px: np.ndarray
    confidence: np.ndarray
    world: np.ndarray
    bone_lengths: np.ndarray = field(default_factory=lambda: hk.BONE_LENGTH_PRIOR_M.copy())
    previous: np.ndarray | None = None
    keypoints_z: np.ndarray | None = None
    warm_start: HandFit | None = None
    depth_m: np.ndarray | None = None
    depth_sigma_m: np.ndarray | None = None
    keypoints_z_sigma_m: float | None = None


@dataclass
class HandFit:
    """One refined hand: joints (21, 3) camera frame metres, pose and per-joint reprojection error (pixels)."""

    joints: np.ndarray
    initial_joints: np.ndarray
    rotation: np.ndarray
    translation: np.ndarray
    angles: np.ndarray
    palm_spread: float
    residual_px: np.ndarray
    initial_residual_px: np.ndarray

    @property
    def mean_residual_px(self) -> float:
        """Mean reprojection error over the 21 joints, pixels."""
        return float(np.mean(self.residual_px))


def segment_distances(p1: np.ndarray, q1: np.ndarray, p2: np.ndarray, q2: np.ndarray) -> np.ndarray:
    """Shortest distances (...) between segments p1→q1 and p2→q2 (arrays (..., 3), broadcast)."""
    return _segment_closest(p1, q1, p2, q2)[0]


def penetration_depths(joints_a: np.ndarray, joints_b: np.ndarray) -> np.ndarray:
    """Penetration (20, 20) metres between every bone capsule of hand a and of hand b (0 where apart)."""
    dist = segment_distances(
        joints_a[_PARENTS][:, None], joints_a[_CHILDREN][:, None], joints_b[_PARENTS][None], joints_b[_CHILDREN][None]
    )
    return np.maximum(BONE_RADIUS_M[:, None] + BONE_RADIUS_M[None, :] - dist, 0.0)


def _check_observation(index: int, obs: HandObservation) -> None:
    """Raise RefinementError naming the first unusable field of hand ``index``."""
    expected = {"keypoints_px": (NUM_JOINTS, 2), "confidence": (NUM_JOINTS,), "world": (NUM_JOINTS, 3),
                "bone_lengths": (len(BONES),)}
    for name, shape in expected.items():
        value = np.asarray(getattr(obs, name))
        if value.shape != shape:
            raise RefinementError(f"hand {index}: {name} must have shape {shape}, got {value.shape}")
        if not np.all(np.isfinite(value)):
            raise RefinementError(f"hand {index}: {name} contains non-finite values")
    if obs.side not in ("left", "right"):
        raise RefinementError(f"hand {index}: side must be 'left' or 'right', got {obs.side!r}")
    if np.any(np.asarray(obs.bone_lengths) <= 0):
        raise RefinementError(f"hand {index}: bone_lengths must be > 0")
    if obs.depth_m is not None:
        depth = np.asarray(obs.depth_m, dtype=np.float64)
        if depth.shape != (NUM_JOINTS,) or np.any(np.isinf(depth)) or np.any(depth[np.isfinite(depth)] <= 0):
            raise RefinementError(f"hand {index}: depth_m must have shape ({NUM_JOINTS},) with positive metres or "
                                  f"NaN, got shape {depth.shape}")


class _Batch:
    """Per-hand constants of one solve, stacked over the B hands."""

    def __init__(self, observations: list[HandObservation], intrinsics: CameraIntrinsics) -> None:
        self.intr = intrinsics
        self.intr_array = np.array([intrinsics.fx, intrinsics.fy, intrinsics.cx, intrinsics.cy], dtype=np.float64)
        self.uv = np.stack([np.asarray(o.keypoints_px, dtype=np.float64) for o in observations])
        self.conf = np.stack([np.clip(np.asarray(o.confidence, dtype=np.float64), 0.0, 1.0) for o in observations])
        self.lengths = np.stack([np.asarray(o.bone_lengths, dtype=np.float64) for o in observations])
        self.mirror = np.stack([hk.side_mirror(o.side) for o in observations])
        self.sides = [o.side for o in observations]
        # Relative depth in pixels per hand (zeros with weight 0 where the observation has none).
        self.kz = np.stack([np.zeros(NUM_JOINTS) if o.keypoints_z is None else np.asarray(o.keypoints_z, np.float64)
                            for o in observations])
        self.kz_weight = np.array([0.0 if o.keypoints_z is None
                                   else 1.0 / (o.keypoints_z_sigma_m or RELATIVE_DEPTH_SIGMA_M)
                                   for o in observations])[:, None]
        world = np.stack([np.asarray(o.world, dtype=np.float64) for o in observations])
        frames = _sk.observation_frames if _sk.enabled() else _observation_frames
        self.world, self.rotations, self.local_world = frames(world, self.uv, self.intr_array, self.lengths,
                                                              self.mirror)
        # Personalised palm: the world landmarks' wrist→base-joint directions, in each hand's own frame.
        self.palm = hk.personal_palm(self.local_world, PALM_ADAPT_WEIGHT)
        self.previous = [None if o.previous is None else np.asarray(o.previous, dtype=np.float64)
                         for o in observations]
        self.warm = [o.warm_start for o in observations]
        self.angle_prior = np.zeros((len(observations), NUM_PARAMS - ANGLES))  # set by initialise
        # Depth-camera joint depths (B, 21), NaN where unknown; None when no hand has any (monocular solve).
        self.depth = None
        if any(o.depth_m is not None for o in observations):
            self.depth = np.stack([np.full(NUM_JOINTS, np.nan) if o.depth_m is None
                                   else np.asarray(o.depth_m, np.float64) for o in observations])
            self.depth_sigma = _depth_sigmas(observations, self.depth)


def _depth_sigmas(observations: list[HandObservation], depth: np.ndarray) -> np.ndarray:
    """(B, 21) expected error of each joint's depth reading: the observation's depth_sigma_m where given (positive,
    finite), else the DEPTH_SIGMA_* model of the reading's distance."""
    modelled = DEPTH_SIGMA_BASE_M + DEPTH_SIGMA_QUADRATIC_PER_M * np.nan_to_num(depth) ** 2
    given = np.stack([np.full(NUM_JOINTS, np.nan) if o.depth_sigma_m is None
                      else np.asarray(o.depth_sigma_m, np.float64) for o in observations])
    return np.where(np.isfinite(given) & (given > 0), given, modelled)


def _observation_frames(world: np.ndarray, uv: np.ndarray, intr: np.ndarray, lengths: np.ndarray,
                        mirror: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """World landmarks (B, 21, 3) turned onto each hand's viewing ray and scaled to its bone lengths, the hand
    rotations (B, 3, 3) from the palm joints, and the world landmarks in each hand's own frame (B, 21, 3).

    intr = (fx, fy, cx, cy). The numpy reference of solver_kernels.observation_frames.
    """
    world = world - world[:, :1]
    # World landmarks are predicted in a crop looking along the ray through the hand: turn them onto it
    # (shortest-arc rotation from the optical axis to each hand's mean keypoint ray).
    rays = pixel_rays(uv.mean(axis=1), CameraIntrinsics(*intr, width=1, height=1))
    axes = _cross(np.array([0.0, 0.0, 1.0]), rays)
    sin = np.linalg.norm(axes, axis=-1, keepdims=True)
    rotvecs = axes / np.maximum(sin, 1e-12) * np.arctan2(sin, rays[:, 2:3])
    world = np.einsum("bij,bnj->bni", _rotations(rotvecs), world)
    scale = lengths.sum(-1) / np.maximum(hk.bone_lengths_of(world).sum(-1), 1e-9)
    world = world * scale[:, None, None]
    # Hand orientation from the palm joints (Kabsch against each hand's rest palm), all hands at once.
    rest = hk.forward_kinematics(np.zeros((len(world), hk.NUM_CHAINS, 3, 2)), lengths)[0]
    rest = rest @ mirror
    palm = list(hk.PALM_JOINTS)
    rotations = hk.kabsch(rest[:, palm], world[:, palm], np.ones((len(world), len(palm))))
    return world, rotations, world @ rotations @ mirror  # right-hand frame, wrist at the origin


def _rotations(rotvecs: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) of rotation vectors (..., 3) (OpenCV's Rodrigues: cheap for a few hands)."""
    flat = np.asarray(rotvecs, dtype=np.float64).reshape(-1, 3)
    out = np.empty((len(flat), 3, 3))
    for i, v in enumerate(flat):
        out[i] = cv2.Rodrigues(v)[0]
    return out.reshape(*rotvecs.shape[:-1], 3, 3)


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cross product of broadcast (..., 3) arrays (np.cross without its axis bookkeeping, for small arrays)."""
    a0, a1, a2 = a[..., 0], a[..., 1], a[..., 2]
    b0, b1, b2 = b[..., 0], b[..., 1], b[..., 2]
    return np.stack([a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0], axis=-1)


def _full_angles(active: np.ndarray) -> np.ndarray:
    """Angles (..., 5, 3, 2) with the active entries (..., 21) filled in and the rest zero."""
    full = np.zeros((*active.shape[:-1], hk.NUM_ANGLES))
    full[..., hk.ACTIVE_ANGLES] = active
    return full.reshape(*active.shape[:-1], hk.NUM_CHAINS, 3, 2)


def _project(batch: _Batch, joints: np.ndarray) -> np.ndarray:
    """Pixels (..., 21, 2) of camera-frame joints."""
    z = np.maximum(joints[..., 2], 1e-6)
    return np.stack([batch.intr.fx * joints[..., 0] / z + batch.intr.cx,
                     batch.intr.fy * joints[..., 1] / z + batch.intr.cy], axis=-1)


def _clip(x: np.ndarray) -> np.ndarray:
    """Parameters with the joint angles clamped into their anatomical limits (in place) and depth kept sane."""
    x[..., ANGLES:] = np.clip(x[..., ANGLES:], _LIMITS_ACTIVE[:, 0], _LIMITS_ACTIVE[:, 1])
    x[..., SPREAD] = np.clip(x[..., SPREAD], *hk.PALM_SPREAD_LIMITS_RAD)
    x[..., 5] = np.clip(x[..., 5], MIN_DEPTH_M, MAX_DEPTH_M)
    return x


def _lm_update(x: np.ndarray, r_ref: np.ndarray, r0: np.ndarray, jac: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One damped Gauss–Newton update of every hand from residuals r0 (B, M) and their Jacobian jac (B, P, M) = Jᵀ:
    new (x, r_ref) with the rotation increment folded into the reference rotation, joint limits clamped."""
    if _sk.enabled():
        return _sk.lm_update(x, r_ref, r0, jac, LM_DAMPING, _LIMITS_ACTIVE, MIN_DEPTH_M, MAX_DEPTH_M)
    normal = jac @ jac.transpose(0, 2, 1)
    gradient = np.einsum("bpm,bm->bp", jac, r0)
    damped = normal + (LM_DAMPING * np.einsum("bii->bi", normal) + 1e-9)[..., None] * _EYE_P
    delta = -np.linalg.solve(damped, gradient[..., None])[..., 0]
    x_new = x + delta
    r_ref = r_ref @ _rotations(x_new[:, :3])
    x_new[:, :3] = 0.0
    return _clip(x_new), r_ref


def _pose(batch: _Batch, r_ref: np.ndarray, x: np.ndarray, jacobian: bool = True
          ) -> tuple[np.ndarray, np.ndarray | None]:
    """Camera-frame joints (B, 21, 3) at parameters x (B, P) and, when asked, their analytic Jacobian (B, P, 21, 3).

    x's rotation increment must be zero (each update folds it into r_ref); the Jacobian is taken at δ = 0.

    Rotation increment δ (applied as r_ref·exp(δ)): ∂J/∂δ_k = (r_ref e_k) × (J − t). Translation: identity.
    Joint angle of chain c, joint k: the bone's rotation axis (flexion: the bone frame's x; abduction: the parent
    frame's z) crossed with the lever from the joint to every point downstream in the chain. Palm spread: each
    chain turns about the hand's z through the wrist by PALM_SPREAD_FACTORS[c] per radian.
    """
    if _sk.enabled():
        joints, jac = _sk.pose(x[:, ANGLES:], batch.lengths, batch.palm, x[:, SPREAD], r_ref, batch.mirror,
                               x[:, 3:6], jacobian)
        return joints, (jac if jacobian else None)
    b = len(x)
    spread = x[:, SPREAD]
    local, frames = hk.forward_kinematics(_full_angles(x[:, ANGLES:]), batch.lengths, batch.palm, spread)
    linear = r_ref @ batch.mirror  # hand frame (right-hand model) → camera
    rel = local @ linear.transpose(0, 2, 1)
    joints = rel + x[:, None, 3:6]
    if not jacobian:
        return joints, None
    chain = local[:, 1:].reshape(b, hk.NUM_CHAINS, 4, 3)
    base = hk.spread_rotations(spread) @ hk.CHAIN_BASE_FRAMES  # (B, 5, 3, 3)
    parents = np.concatenate([base[:, :, None], frames[:, :, :2]], axis=2)  # frame before joint k: (B, 5, 3, 3, 3)
    axes = np.stack([frames[..., :, 0], parents[..., :, 2]], axis=3)  # (B, 5, 3 joints, 2 (flex, abd), 3)
    lever = (chain[:, :, None, :, :] - chain[:, :, :3, None, :]) * _DOWNSTREAM  # (B, 5, 3 joints, 4 points, 3)
    d_angles = _cross(axes[:, :, :, :, None, :], lever[:, :, :, None, :, :])  # (B, 5, 3, 2, 4, 3)
    d_angles = d_angles.reshape(b, hk.NUM_ANGLES, 4, 3)[:, hk.ACTIVE_ANGLES]  # (B, 21, 4, 3): own chain's points
    d_local = np.zeros((b, NUM_PARAMS - 6, NUM_JOINTS, 3))
    d_local[:, 1:, 1:] = (d_angles[:, :, None] * _OWN_CHAIN).reshape(b, -1, 20, 3)
    d_local[:, 0, 1:, 0] = -chain[..., 1].reshape(b, 20) * _SPREAD_PER_POINT  # ∂/∂s of Rz(f·s)·p = f·(e_z × p)
    d_local[:, 0, 1:, 1] = chain[..., 0].reshape(b, 20) * _SPREAD_PER_POINT
    jac = np.empty((b, NUM_PARAMS, NUM_JOINTS, 3))
    jac[:, :3] = _cross(r_ref.transpose(0, 2, 1)[:, :, None, :], rel[:, None])
    jac[:, 3:6] = _EYE_3[None, :, None, :]
    jac[:, 6:] = d_local @ linear.transpose(0, 2, 1)[:, None]
    return joints, jac


def _initial_translation(batch: _Batch, local_cam: np.ndarray) -> np.ndarray:
    """Wrist translations (B, 3) placing root-relative joints (B, 21, 3) on their keypoints (weighted IRLS LS)."""
    if _sk.enabled():
        return _sk.initial_translation(batch.uv, batch.intr_array, batch.conf, local_cam, HUBER_PX, MIN_DEPTH_M,
                                       MAX_DEPTH_M)
    xn = (batch.uv[..., 0] - batch.intr.cx) / batch.intr.fx
    yn = (batch.uv[..., 1] - batch.intr.cy) / batch.intr.fy
    ones, zeros = np.ones_like(xn), np.zeros_like(xn)
    a = np.concatenate([np.stack([ones, zeros, -xn], -1), np.stack([zeros, ones, -yn], -1)], axis=1)
    b = np.concatenate([xn * local_cam[..., 2] - local_cam[..., 0], yn * local_cam[..., 2] - local_cam[..., 1]], 1)
    weights = np.concatenate([batch.conf, batch.conf], axis=1) + 1e-6
    t = np.zeros((len(a), 3))
    for _ in range(3):  # IRLS with a Huber weight on the normalised-image residual
        aw = a * weights[..., None]
        rhs = np.einsum("bmi,bm->bi", aw, b)[..., None]
        t = np.linalg.solve(aw.transpose(0, 2, 1) @ a + 1e-12 * np.eye(3), rhs)[..., 0]
        res = np.abs(np.einsum("bmi,bi->bm", a, t) - b)
        scale = HUBER_PX / batch.intr.fx * np.maximum(t[:, 2:3], MIN_DEPTH_M)
        weights = (np.concatenate([batch.conf, batch.conf], axis=1) + 1e-6) * np.minimum(1.0, scale / (res + 1e-12))
    t[:, 2] = np.clip(t[:, 2], MIN_DEPTH_M, MAX_DEPTH_M)
    return t


def initialise(observations: list[HandObservation], intrinsics: CameraIntrinsics
               ) -> tuple[_Batch, np.ndarray, np.ndarray, np.ndarray]:
    """Batch constants, parameters (B, P), reference rotations (B, 3, 3) and joints (B, 21, 3) from the world
    landmarks and the keypoints (rotation and angles from the world landmarks, translation from the keypoints),
    or, for hands with a warm start, the previous frame's fit. The angle prior is always the world landmarks'."""
    for i, obs in enumerate(observations):
        _check_observation(i, obs)
    batch = _Batch(observations, intrinsics)
    ik = _sk.inverse_kinematics(batch.local_world, _LIMITS_FLAT) if _sk.enabled() else hk.inverse_kinematics(
        batch.local_world)
    angles = hk.clip_to_limits(ik)
    r_ref = batch.rotations.copy()
    x = np.zeros((len(observations), NUM_PARAMS))
    x[:, ANGLES:] = angles.reshape(len(observations), -1)[:, hk.ACTIVE_ANGLES]
    batch.angle_prior = x[:, ANGLES:].copy()
    for i, warm in enumerate(batch.warm):
        if warm is not None:
            _check_warm_start(i, warm)
            r_ref[i] = warm.rotation
            x[i, 3:6] = warm.translation
            x[i, SPREAD] = warm.palm_spread
            x[i, ANGLES:] = np.asarray(warm.angles, dtype=np.float64).reshape(-1)[hk.ACTIVE_ANGLES]
    _clip(x)
    local, _ = _pose(batch, r_ref, x, jacobian=False)
    cold = np.array([w is None for w in batch.warm])
    if cold.any():  # cold hands: translation from the keypoints (root-relative joints)
        before = x[:, 3:6].copy()
        x[cold, 3:6] = _initial_translation(batch, local - before[:, None])[cold]
        if batch.depth is not None:
            x[cold, 3:6] = _depth_translation(batch, local - before[:, None] + x[:, None, 3:6], x[:, 3:6])[cold]
        local = local + (x[:, 3:6] - before)[:, None]
    return batch, x, r_ref, local


def _depth_translation(batch: _Batch, joints: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """Translations (B, 3) moved along their rays so the joints' median depth error is zero (hands with depth)."""
    error = np.where(np.isfinite(batch.depth), batch.depth - joints[..., 2], np.nan)
    has = np.isfinite(error).any(axis=1)
    shift = np.where(has, np.nanmedian(np.where(has[:, None], error, 0.0), axis=1), 0.0)
    factor = np.clip(translation[:, 2] + shift, MIN_DEPTH_M, MAX_DEPTH_M) / np.maximum(translation[:, 2], MIN_DEPTH_M)
    return translation * factor[:, None]


def _check_warm_start(index: int, warm: HandFit) -> None:
    """Raise RefinementError when hand ``index``'s warm start has a wrong shape or non-finite values."""
    for name, shape in (("rotation", (3, 3)), ("translation", (3,)), ("angles", (hk.NUM_CHAINS, 3, 2))):
        value = np.asarray(getattr(warm, name))
        if value.shape != shape or not np.all(np.isfinite(value)):
            raise RefinementError(f"hand {index}: warm_start.{name} must be finite with shape {shape}")


def _residual_2d(batch: _Batch, joints: np.ndarray, jac: np.ndarray, x: np.ndarray, *, irls: np.ndarray,
                 depth: np.ndarray, angle_prior: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """2D-step residuals (B, M) (reprojection, world-landmark shape prior, angle prior, spread prior) and their
    Jacobian (B, P, M), from the joints (B, 21, 3) and joint Jacobian (B, P, 21, 3) at x."""
    if _sk.enabled():
        return _sk.residual_2d(batch.uv, batch.intr_array, batch.world, batch.kz, batch.kz_weight[:, 0], joints, jac,
                               x, irls, depth, angle_prior, _KERNEL_SIGMAS)
    b = len(x)
    inv_z = 1.0 / np.maximum(joints[..., 2], 1e-6)
    u, v = joints[..., 0] * inv_z, joints[..., 1] * inv_z
    scale = depth[:, None] / REPROJECTION_SIGMA_M * irls  # px → metres at the hand's depth, weighted
    reproj = np.stack([(batch.intr.fx * u + batch.intr.cx - batch.uv[..., 0]) * scale / batch.intr.fx,
                       (batch.intr.fy * v + batch.intr.cy - batch.uv[..., 1]) * scale / batch.intr.fy], -1)
    w = (scale * inv_z)[:, None]  # ∂(f·X/Z)/∂X = f/Z, ∂/∂Z = −f·X/Z²; the 1/f of the pixel→metre scale cancels f
    d_reproj = np.stack([(jac[..., 0] - u[:, None] * jac[..., 2]) * w, (jac[..., 1] - v[:, None] * jac[..., 2]) * w],
                        -1)
    world = (joints[:, 1:] - joints[:, :1] - batch.world[:, 1:]) / _WORLD_SIGMAS_M
    d_world = (jac[:, :, 1:] - jac[:, :, :1]) / _WORLD_SIGMAS_M
    # Relative depth: z_j − z_wrist ≈ keypoints_z_j · z_wrist / f (image landmarks' depth at the hand's scale).
    kz_m = batch.kz[:, 1:] / batch.intr.fx
    rel_depth = (joints[:, 1:, 2] - joints[:, :1, 2] - kz_m * joints[:, :1, 2]) * batch.kz_weight
    d_rel_depth = (jac[:, :, 1:, 2] - jac[:, :, :1, 2]) * batch.kz_weight[:, None]  # hand depth held: shape only
    residual = np.concatenate([reproj.reshape(b, -1), world.reshape(b, -1), rel_depth,
                               (x[:, ANGLES:] - angle_prior) / ANGLE_PRIOR_SIGMA_RAD,
                               x[:, SPREAD:ANGLES] / SPREAD_PRIOR_SIGMA_RAD], -1)
    jacobian = np.concatenate([d_reproj.reshape(b, NUM_PARAMS, -1), d_world.reshape(b, NUM_PARAMS, -1), d_rel_depth,
                               np.broadcast_to(_PRIOR_JACOBIAN, (b, NUM_PARAMS, NUM_PARAMS - SPREAD))], -1)
    return residual, jacobian


def _residual_depth(batch: _Batch, joints: np.ndarray, jac: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Depth-camera residuals (B, 21) (joint z against its measured depth, noise growing with distance, Huber)
    and their Jacobian (B, P, 21), from the joints (B, 21, 3) and joint Jacobian (B, P, 21, 3); zero where a joint
    has no depth."""
    known = np.isfinite(batch.depth)
    measured = np.where(known, batch.depth, 0.0)
    sigma = batch.depth_sigma
    error = joints[..., 2] - measured
    threshold = np.where(error > 0.0, DEPTH_OCCLUDED_HUBER_M, DEPTH_HUBER_M)  # > 0: the sensor saw something nearer
    huber = np.sqrt(np.minimum(1.0, threshold / np.maximum(np.abs(error), 1e-9)))
    weight = np.where(known, huber / sigma, 0.0)
    return error * weight, jac[..., 2] * weight[:, None]


def _segment_closest(p1: np.ndarray, q1: np.ndarray, p2: np.ndarray, q2: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distances (...), the first segment's closest-point parameter s (...) and the unit direction (..., 3) from
    the second segment's closest point to the first's (zero where they meet), for segments p→q (..., 3)."""
    if _sk.enabled():
        shape = np.broadcast_shapes(p1.shape, q1.shape, p2.shape, q2.shape)
        flat = [np.ascontiguousarray(np.broadcast_to(v, shape), dtype=np.float64).reshape(-1, 3)
                for v in (p1, q1, p2, q2)]
        dist, s, direction = _sk.segment_closest(*flat)
        return dist.reshape(shape[:-1]), s.reshape(shape[:-1]), direction.reshape(shape)
    d1, d2, r = q1 - p1, q2 - p2, p1 - p2
    a = np.einsum("...i,...i->...", d1, d1)
    e = np.einsum("...i,...i->...", d2, d2)
    f = np.einsum("...i,...i->...", d2, r)
    c = np.einsum("...i,...i->...", d1, r)
    bb = np.einsum("...i,...i->...", d1, d2)
    s = np.clip((bb * f - c * e) / np.maximum(a * e - bb * bb, 1e-18), 0.0, 1.0)
    t = (bb * s + f) / np.maximum(e, 1e-18)
    t_clipped = np.clip(t, 0.0, 1.0)
    s = np.where(t != t_clipped, np.clip((bb * t_clipped - c) / np.maximum(a, 1e-18), 0.0, 1.0), s)
    gap = (p1 + d1 * s[..., None]) - (p2 + d2 * t_clipped[..., None])
    dist = np.linalg.norm(gap, axis=-1)
    return dist, s, gap / np.maximum(dist, 1e-12)[..., None]


def _residual_3d(batch: _Batch, joints: np.ndarray, jac: np.ndarray, *, anchor: np.ndarray,
                 pairs: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]], temporal_sigma_m: float | None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """3D-step residuals (B, M) (stay near the 2D result, non-penetration, smoothness) and their Jacobian
    (B, P, M), from the joints (B, 21, 3) and joint Jacobian (B, P, 21, 3) at the current parameters."""
    b = len(joints)
    flat_jac = jac.reshape(b, NUM_PARAMS, -1)
    residuals = [((joints - anchor) / ANCHOR_SIGMA_M).reshape(b, -1)]
    jacobians = [flat_jac / ANCHOR_SIGMA_M]
    if pairs:
        pen_r, pen_j = [], []
        for h, (mine, other_p, other_c, target) in enumerate(pairs):
            dist, s, direction = _segment_closest(joints[h, _PARENTS[mine]], joints[h, _CHILDREN[mine]], other_p,
                                                  other_c)
            active = dist < target
            # Envelope theorem: ∂dist = n·((1 − s)·∂p + s·∂q) with the closest-point parameters held fixed.
            grad = (np.einsum("pki,ki->pk", jac[h][:, _PARENTS[mine]], direction * (1.0 - s)[:, None])
                    + np.einsum("pki,ki->pk", jac[h][:, _CHILDREN[mine]], direction * s[:, None]))
            pen_r.append(np.where(active, target - dist, 0.0) / PENETRATION_SIGMA_M)
            pen_j.append(np.where(active, -grad, 0.0) / PENETRATION_SIGMA_M)
        width = max(len(r) for r in pen_r)
        residuals.append(np.stack([np.pad(r, (0, width - len(r))) for r in pen_r]))
        jacobians.append(np.stack([np.pad(g, ((0, 0), (0, width - g.shape[1]))) for g in pen_j]))
    if temporal_sigma_m is not None:
        prev = np.stack([p if p is not None else anchor[i] for i, p in enumerate(batch.previous)])
        residuals.append(((joints - prev) / temporal_sigma_m).reshape(b, -1))
        jacobians.append(flat_jac / temporal_sigma_m)
    return np.concatenate(residuals, -1), np.concatenate(jacobians, -1)


def _contact_pairs(joints: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """For two hands, each hand's watched bone pairs: (own bones, other's segment ends, clearance targets)."""
    if len(joints) != 2:
        return []
    # Hands whose joint boxes, grown by the thickest capsule pair and the margin, do not overlap cannot touch.
    reach = 2.0 * BONE_RADIUS_M.max() + CONTACT_MARGIN_M
    low, high = joints.min(axis=1), joints.max(axis=1)
    if np.any(low[0] > high[1] + reach) or np.any(low[1] > high[0] + reach):
        return []
    raw = segment_distances(joints[0][_PARENTS][:, None], joints[0][_CHILDREN][:, None],
                            joints[1][_PARENTS][None], joints[1][_CHILDREN][None])
    radii = BONE_RADIUS_M[:, None] + BONE_RADIUS_M[None, :]
    ia, ib = np.nonzero(raw < radii + CONTACT_MARGIN_M)
    if ia.size == 0:
        return []
    # Each hand removes half of the current penetration (both move in the same step).
    target = radii[ia, ib] - 0.5 * np.maximum(radii[ia, ib] - raw[ia, ib], 0.0)
    return [
        (ia, joints[1][_PARENTS[ib]], joints[1][_CHILDREN[ib]], target),
        (ib, joints[0][_PARENTS[ia]], joints[0][_CHILDREN[ia]], target),
    ]


def refine(observations: list[HandObservation], intrinsics: CameraIntrinsics,
           settings: RefineSettings | None = None) -> list[HandFit]:
    """Place and refine all hands jointly; intrinsics must be distortion-free (undistort keypoints first)."""
    settings = settings or RefineSettings()
    if not observations:
        return []
    if _sk.enabled():
        return _refine_compiled(observations, intrinsics, settings)
    batch, x, r_ref, joints0 = initialise(observations, intrinsics)
    initial_residual = np.linalg.norm(_project(batch, joints0) - batch.uv, axis=-1)
    angle_prior = batch.angle_prior
    temporal = settings.temporal_sigma_m if any(p is not None for p in batch.previous) else None
    warm = all(w is not None for w in batch.warm)
    for _ in range(settings.warm_iterations if warm else settings.iterations):
        for _ in range(settings.steps_2d):
            joints, jac = _pose(batch, r_ref, x)
            residual = np.linalg.norm(_project(batch, joints) - batch.uv, axis=-1)
            irls = np.sqrt(batch.conf * np.minimum(1.0, HUBER_PX / np.maximum(residual, 1e-9)))
            r0, jac_r = _residual_2d(batch, joints, jac, x, irls=irls, depth=np.maximum(x[:, 5], MIN_DEPTH_M),
                                     angle_prior=angle_prior)
            if batch.depth is not None:
                r_depth, jac_depth = _residual_depth(batch, joints, jac)
                r0, jac_r = np.concatenate([r0, r_depth], -1), np.concatenate([jac_r, jac_depth], -1)
            x, r_ref = _lm_update(x, r_ref, r0, jac_r)
        joints, jac = _pose(batch, r_ref, x, jacobian=temporal is not None)  # video mode always takes the 3D step
        pairs = _contact_pairs(joints)
        if pairs or temporal is not None:
            if jac is None:
                joints, jac = _pose(batch, r_ref, x)
            r0, jac_r = _residual_3d(batch, joints, jac, anchor=joints, pairs=pairs, temporal_sigma_m=temporal)
            x, r_ref = _lm_update(x, r_ref, r0, jac_r)
    joints, _ = _pose(batch, r_ref, x, jacobian=False)
    residual = np.linalg.norm(_project(batch, joints) - batch.uv, axis=-1)
    fits = []
    for i in range(len(observations)):
        fits.append(HandFit(
            joints=joints[i], initial_joints=joints0[i], rotation=r_ref[i], translation=x[i, 3:6].copy(),
            angles=_full_angles(x[i, ANGLES:]), palm_spread=float(x[i, SPREAD]), residual_px=residual[i],
            initial_residual_px=initial_residual[i],
        ))
    return fits



def _stack(observations: list[HandObservation], name: str, shape: tuple[int, ...]) -> np.ndarray:
    """One field of every observation stacked to (B, *shape) float64; RefinementError (naming the hand) when a
    shape is wrong or a value is not finite."""
    try:
        stacked = np.array([getattr(o, name) for o in observations], dtype=np.float64)
    except (ValueError, TypeError):  # ragged shapes
        stacked = None
    if stacked is None or stacked.shape[1:] != shape or not np.isfinite(stacked).all():
        for i, obs in enumerate(observations):
            _check_observation(i, obs)
        raise RefinementError(f"{name} of the observations cannot be stacked to {shape}")  # pragma: no cover
    return stacked


def _refine_compiled(observations: list[HandObservation], intrinsics: CameraIntrinsics,
                     settings: RefineSettings) -> list[HandFit]:
    """refine() as one compiled call (solver_kernels.solve): the same maths as the numpy path below it, without
    its per-step Python and numpy glue (which costs more than the arithmetic when the caches are cold)."""
    b = len(observations)
    uv = _stack(observations, "keypoints_px", (NUM_JOINTS, 2))
    conf = _stack(observations, "confidence", (NUM_JOINTS,))
    world = _stack(observations, "world", (NUM_JOINTS, 3))
    lengths = _stack(observations, "bone_lengths", (len(BONES),))
    sides = [o.side for o in observations]
    if any(side not in ("left", "right") for side in sides) or np.any(lengths <= 0) or any(
            o.depth_m is not None for o in observations):
        for i, obs in enumerate(observations):  # the precise error (or the depth check) per hand
            _check_observation(i, obs)
    np.clip(conf, 0.0, 1.0, out=conf)
    mirror = np.array([hk.side_mirror(side) for side in sides])
    kz = np.zeros((b, NUM_JOINTS))
    kz_weight = np.zeros(b)
    depth = np.full((b, NUM_JOINTS), np.nan)
    has_depth = False
    previous = np.zeros((b, NUM_JOINTS, 3))
    has_previous = np.zeros(b, np.bool_)
    warm = np.zeros(b, np.bool_)
    warm_rotation = np.zeros((b, 3, 3))
    warm_translation = np.zeros((b, 3))
    warm_spread = np.zeros(b)
    warm_angles = np.zeros((b, len(hk.ACTIVE_ANGLES)))
    for i, obs in enumerate(observations):
        if obs.keypoints_z is not None:
            kz[i] = obs.keypoints_z
            kz_weight[i] = 1.0 / (obs.keypoints_z_sigma_m or RELATIVE_DEPTH_SIGMA_M)
        if obs.depth_m is not None:
            depth[i] = obs.depth_m
            has_depth = True
        if obs.previous is not None:
            previous[i] = obs.previous
            has_previous[i] = True
        if obs.warm_start is not None:
            _check_warm_start(i, obs.warm_start)
            warm[i] = True
            warm_rotation[i] = obs.warm_start.rotation
            warm_translation[i] = obs.warm_start.translation
            warm_spread[i] = obs.warm_start.palm_spread
            warm_angles[i] = np.asarray(obs.warm_start.angles, dtype=np.float64).reshape(-1)[hk.ACTIVE_ANGLES]
    depth_sigma = _depth_sigmas(observations, depth) if has_depth else np.ones((b, NUM_JOINTS))
    temporal = settings.temporal_sigma_m if has_previous.any() and settings.temporal_sigma_m is not None else -1.0
    iterations = settings.warm_iterations if warm.all() else settings.iterations
    intr = np.array([intrinsics.fx, intrinsics.fy, intrinsics.cx, intrinsics.cy], dtype=np.float64)
    joints, joints0, r_ref, x, residual, initial = _sk.solve(
        uv, conf, intr, lengths, mirror, kz, kz_weight, world, depth, depth_sigma, has_depth, previous, has_previous,
        warm, warm_rotation, warm_translation, warm_spread, warm_angles, int(iterations), int(settings.steps_2d),
        float(temporal), _KERNEL_SIGMAS, _LIMITS_FLAT, _LIMITS_ACTIVE_C, BONE_RADIUS_M, _SOLVE_CONSTS)
    angles = _full_angles(x[:, ANGLES:])
    return [HandFit(joints=joints[i], initial_joints=joints0[i], rotation=r_ref[i], translation=x[i, 3:6].copy(),
                    angles=angles[i], palm_spread=float(x[i, SPREAD]), residual_px=residual[i],
                    initial_residual_px=initial[i]) for i in range(b)]
