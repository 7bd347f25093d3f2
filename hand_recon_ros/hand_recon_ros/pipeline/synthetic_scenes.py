"""Synthetic two-hand scenes and videos (true joints plus noisy network-like observations) for tests and benchmarks.

Poses come from the project's kinematic model (``models.hand_kinematics``); observations carry pixel noise,
world-landmark noise and scale error, and a relative depth with a per-hand scale error, as the landmark network
delivers them (``refinement.HandObservation``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from hand_recon_ros.models import hand_kinematics as hk
from hand_recon_ros.pipeline.refinement import HandObservation, penetration_depths
from hand_recon_ros.pipeline.types import CameraIntrinsics
from hand_recon_ros.skeleton import NUM_JOINTS


@dataclass
class SyntheticScene:
    """Project-generated two-hand poses with their noisy observations (for tests and benchmarks)."""

    truth: list[np.ndarray]  # (21, 3) camera-frame joints per hand, metres
    observations: list[HandObservation]


MAX_SCENE_TRIES = 50
# Per-hand scale error of the network's relative depth in synthetic scenes (its ordering is right, its scale
# varies: about 0.45–1.85× between the annotated hands of ../shared/data).
RELATIVE_DEPTH_SCALE_RANGE = (0.5, 1.8)


def _observe(rng: np.random.Generator, intrinsics: CameraIntrinsics, side: str, joints: np.ndarray,
             noise_px: float, world_noise_m: float, world_scale_error: float, world_depth_scale: float,
             relative_depth_scale: tuple[float, float], relative_depth_noise_px: float) -> HandObservation:
    """A noisy observation of one hand's true camera-frame joints (see ``synthetic_scene`` for the noise model)."""
    uv = np.stack([intrinsics.fx * joints[:, 0] / joints[:, 2] + intrinsics.cx,
                   intrinsics.fy * joints[:, 1] / joints[:, 2] + intrinsics.cy], -1)
    world = (joints - joints.mean(0)) * rng.uniform(1 - world_scale_error, 1 + world_scale_error)
    world[:, 2] *= world_depth_scale
    relative_z = (joints[:, 2] - joints[0, 2]) * intrinsics.fx / joints[0, 2] * rng.uniform(*relative_depth_scale)
    relative_z[1:] += rng.normal(0, relative_depth_noise_px, NUM_JOINTS - 1)
    return HandObservation(
        side=side, keypoints_px=uv + rng.normal(0, noise_px, uv.shape), confidence=np.ones(NUM_JOINTS),
        world=world + rng.normal(0, world_noise_m, world.shape), keypoints_z=relative_z)


def _two_hand_poses(rng: np.random.Generator, gap_m: float, depth_m: float
                    ) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Left and right (side, rotation, wrist, angles, bone lengths) facing the camera, capsules apart."""
    facing = np.array([[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -1.0]])  # hand y up, palm to the camera
    poses: list[tuple[str, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
    for _ in range(MAX_SCENE_TRIES):  # physically valid truth: the two hands' capsules do not interpenetrate
        poses = []
        for side, offset in (("left", -gap_m / 2.0), ("right", gap_m / 2.0)):
            rotation = Rotation.from_rotvec(rng.normal(0.0, 0.35, 3)).as_matrix() @ facing
            lengths = hk.BONE_LENGTH_PRIOR_M * rng.uniform(0.92, 1.08)
            wrist = np.array([offset, 0.08 + rng.normal(0, 0.01), depth_m + rng.normal(0, 0.01)])
            poses.append((side, rotation, wrist, hk.random_angles(rng, spread=0.6), lengths))
        joints = [hk.pose_joints(r, t, a, n, side) for side, r, t, a, n in poses]
        if penetration_depths(joints[0], joints[1]).max() == 0.0:
            break
    return poses


def synthetic_scene(rng: np.random.Generator, intrinsics: CameraIntrinsics, noise_px: float = 2.0,
                    world_noise_m: float = 0.006, world_scale_error: float = 0.1, gap_m: float = 0.12,
                    depth_m: float = 0.6, world_depth_scale: float = 1.0,
                    relative_depth_scale: tuple[float, float] = RELATIVE_DEPTH_SCALE_RANGE,
                    relative_depth_noise_px: float = 3.0) -> SyntheticScene:
    """Left and right hand facing the camera ``gap_m`` apart (x), observed with pixel and world-landmark noise.

    ``world_depth_scale`` < 1 flattens the world landmarks along the camera axis (the network's failure on
    foreshortened hands); keypoints_z is the true wrist-relative depth in pixels times a per-hand scale drawn
    from ``relative_depth_scale`` plus ``relative_depth_noise_px`` noise.
    """
    truth, observations = [], []
    for side, rotation, wrist, angles, lengths in _two_hand_poses(rng, gap_m, depth_m):
        joints = hk.pose_joints(rotation, wrist, angles, lengths, side)
        truth.append(joints)
        observations.append(_observe(rng, intrinsics, side, joints, noise_px, world_noise_m, world_scale_error,
                                     world_depth_scale, relative_depth_scale, relative_depth_noise_px))
    return SyntheticScene(truth, observations)


def synthetic_sequence(rng: np.random.Generator, intrinsics: CameraIntrinsics, frames: int, noise_px: float = 2.0,
                       world_noise_m: float = 0.006, gap_m: float = 0.14, depth_m: float = 0.6,
                       speed_m_s: float = 0.3, turn_rad_s: float = 1.0, fps: float = 30.0) -> list[SyntheticScene]:
    """A two-hand video: both wrists move together at ``speed_m_s`` in a random direction while each hand turns
    towards another random orientation at ``turn_rad_s`` and its fingers move towards other random angles;
    observed every frame with fresh noise (tracking-mode tests and benchmarks)."""
    start, end = _two_hand_poses(rng, gap_m, depth_m), _two_hand_poses(rng, gap_m, depth_m)
    scenes = [SyntheticScene([], []) for _ in range(frames)]
    direction = rng.normal(0.0, 1.0, 3)
    velocity = direction / np.linalg.norm(direction) * speed_m_s / fps
    for (side, r0, t0, a0, lengths), (_, r1, _, a1, _) in zip(start, end):
        turn = Rotation.from_matrix(r1 @ r0.T).as_rotvec()
        turn = turn / max(np.linalg.norm(turn), 1e-9) * turn_rad_s / fps
        for k, scene in enumerate(scenes):
            f = k / max(frames - 1, 1)
            rotation = Rotation.from_rotvec(turn * k).as_matrix() @ r0
            joints = hk.pose_joints(rotation, t0 + velocity * k, (1 - f) * a0 + f * a1, lengths, side)
            scene.truth.append(joints)
            scene.observations.append(_observe(rng, intrinsics, side, joints, noise_px, world_noise_m, 0.1, 1.0,
                                               RELATIVE_DEPTH_SCALE_RANGE, 3.0))
    return scenes
