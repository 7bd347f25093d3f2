"""Synthetic RGB-D for tests and benchmarks: z-buffer depth of the project's posed hand mesh plus a sensor model.

``render_depth`` rasterises triangle meshes (camera frame, metres) into a z-depth image (0 where nothing is hit);
``sensor_depth`` turns it into what a stereo/ToF camera delivers: noise growing with distance (sigma = base +
quadratic · z²), holes along depth edges (silhouettes), random dropouts, quantised 16-bit millimetres.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from hand_recon_ros.models import hand_kinematics as hk
from hand_recon_ros.models.open_hand_mesh import posed_mesh
from hand_recon_ros.pipeline import refinement
from hand_recon_ros.pipeline import synthetic_scenes as scenes
from hand_recon_ros.pipeline.types import CameraIntrinsics

# Sensor model (RealSense D4xx-like): depth noise sigma = base + quadratic · z² (metres).
NOISE_BASE_M = 0.0005
NOISE_QUADRATIC_PER_M = 0.002
# Pixels whose 3x3 neighbourhood spans more than this in depth are lost (silhouette edges, metres).
EDGE_JUMP_M = 0.03
# Fraction of the remaining pixels dropped at random (speckle holes).
DROPOUT_FRACTION = 0.03
UINT16_STEP_M = 0.001  # 16UC1: millimetres
# The wall behind the hands in synthetic scenes, this far behind them (metres).
BACKGROUND_BEHIND_M = 0.4


def _rasterise(zbuf: np.ndarray, uv: np.ndarray, z: np.ndarray, faces: np.ndarray, width: int, height: int,
               side: int) -> None:
    """Z-buffer the triangles ``faces`` whose pixel bounding boxes fit in ``side`` x ``side`` (vectorised)."""
    p = uv[faces]  # (F, 3, 2)
    lo = np.floor(p.min(axis=1)).astype(np.int64)
    grid = np.arange(side)
    us = lo[:, 0, None, None] + grid[None, None, :]  # (F, 1, side)
    vs = lo[:, 1, None, None] + grid[None, :, None]  # (F, side, 1)
    e1, e2 = p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]
    det = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    det = np.where(np.abs(det) < 1e-12, np.nan, det)[:, None, None]
    du, dv = us - p[:, 0, 0, None, None], vs - p[:, 0, 1, None, None]
    b1 = (du * e2[:, 1, None, None] - dv * e2[:, 0, None, None]) / det
    b2 = (e1[:, 0, None, None] * dv - e1[:, 1, None, None] * du) / det
    b0 = 1.0 - b1 - b2
    inside = (b0 >= 0) & (b1 >= 0) & (b2 >= 0) & (us >= 0) & (us < width) & (vs >= 0) & (vs < height)
    zf = z[faces]
    inv_z = b0 / zf[:, 0, None, None] + b1 / zf[:, 1, None, None] + b2 / zf[:, 2, None, None]  # 1/z: linear
    index = np.broadcast_to(vs * width + us, inside.shape)[inside]
    np.minimum.at(zbuf, index, 1.0 / inv_z[inside])


def render_depth(meshes: list[tuple[np.ndarray, np.ndarray]], intrinsics: CameraIntrinsics,
                 background_m: float | None = None) -> np.ndarray:
    """Z-depth (H, W) float32 metres of triangle meshes [(vertices (V, 3), faces (F, 3))] seen by a pinhole camera;
    0 where no surface is hit, or ``background_m`` (a wall facing the camera) when given."""
    height, width = intrinsics.height, intrinsics.width
    zbuf = np.full(height * width, np.inf)
    for vertices, faces in meshes:
        v = np.asarray(vertices, dtype=np.float64)
        faces = np.asarray(faces, dtype=np.int64)
        z = np.maximum(v[:, 2], 1e-6)
        uv = np.stack([intrinsics.fx * v[:, 0] / z + intrinsics.cx, intrinsics.fy * v[:, 1] / z + intrinsics.cy], 1)
        p = uv[faces]
        extent = np.ceil(p.max(axis=1)).astype(np.int64) - np.floor(p.min(axis=1)).astype(np.int64) + 1
        size = extent.max(axis=1)
        visible = (p.max(axis=1) >= 0).all(axis=1) & (p.min(axis=1) < [width, height]).all(axis=1)
        done = np.zeros(len(faces), bool)
        for side in (4, 8, 16, 32, 64, 128, 256):  # buckets of triangles by bounding-box size
            chosen = visible & ~done & (size <= side)
            if chosen.any():
                _rasterise(zbuf, uv, z, faces[chosen], width, height, side)
            done |= chosen
        for face in faces[visible & ~done]:  # huge triangles (a wall): one by one, at their full extent
            _rasterise(zbuf, uv, z, face[None], width, height, int(min(size.max(), max(width, height) * 4)))
    depth = zbuf.reshape(height, width)
    fill = 0.0 if background_m is None else background_m
    return np.where(np.isfinite(depth), depth, fill).astype(np.float32)


def sensor_depth(depth_m: np.ndarray, rng: np.random.Generator, noise_base_m: float = NOISE_BASE_M,
                 noise_quadratic_per_m: float = NOISE_QUADRATIC_PER_M, dropout: float = DROPOUT_FRACTION
                 ) -> np.ndarray:
    """A 16UC1 (millimetre) depth image as a camera would deliver ``depth_m``: noisy, holed at edges, quantised."""
    depth = np.asarray(depth_m, dtype=np.float64)
    valid = depth > 0
    kernel = np.ones((3, 3), np.uint8)
    high = cv2.dilate(np.where(valid, depth, 0.0).astype(np.float32), kernel)
    low = cv2.erode(np.where(valid, depth, np.inf).astype(np.float32), kernel)
    near_hole = cv2.erode(valid.astype(np.uint8), kernel, borderType=cv2.BORDER_REPLICATE) == 0
    edge = near_hole | (high - low > EDGE_JUMP_M)
    noisy = depth + rng.normal(0.0, 1.0, depth.shape) * (noise_base_m + noise_quadratic_per_m * depth ** 2)
    keep = valid & ~edge & (rng.random(depth.shape) >= dropout)
    return np.where(keep, np.round(noisy / UINT16_STEP_M), 0).clip(0, 65535).astype(np.uint16)


@dataclass
class RgbdScene:
    """Two synthetic hands: true joints, their noisy 2D/world observations, true bone lengths, the sensor's
    16UC1 depth image (millimetres) rendered from the posed hand meshes in front of a wall, and the noise-free
    render (metres) to draw more sensor frames from."""

    scene: scenes.SyntheticScene
    bone_lengths: list[np.ndarray]
    depth_mm: np.ndarray
    clean_m: np.ndarray

    def observe_again(self, rng: np.random.Generator, intrinsics: CameraIntrinsics, noise_px: float = 2.0
                      ) -> tuple[list[refinement.HandObservation], np.ndarray]:
        """Fresh observations and a fresh 16UC1 sensor frame of the same still hands (a video of a still scene)."""
        observations = [scenes._observe(rng, intrinsics, o.side, joints, noise_px, 0.006, 0.1, 1.0,
                                        scenes.RELATIVE_DEPTH_SCALE_RANGE, 3.0)
                        for o, joints in zip(self.scene.observations, self.scene.truth)]
        return observations, sensor_depth(self.clean_m, rng)


def synthetic_rgbd_scene(rng: np.random.Generator, intrinsics: CameraIntrinsics, depth_m: float = 0.6,
                         size_scale: float | None = None, gap_m: float = 0.12, noise_px: float = 2.0) -> RgbdScene:
    """Left and right hand ``depth_m`` from the camera (see ``synthetic_scenes.synthetic_scene`` for the 2D/world noise)
    with a rendered, sensor-noised depth image; ``size_scale`` fixes both hands' size relative to the adult prior
    (None: the scene's own 0.92-1.08 spread)."""
    truth, observations, lengths_all, meshes = [], [], [], []
    for side, rotation, wrist, angles, lengths in scenes._two_hand_poses(rng, gap_m, depth_m):
        if size_scale is not None:
            lengths = hk.BONE_LENGTH_PRIOR_M * size_scale
        joints = hk.pose_joints(rotation, wrist, angles, lengths, side)
        truth.append(joints)
        lengths_all.append(lengths)
        observations.append(scenes._observe(rng, intrinsics, side, joints, noise_px, 0.006, 0.1, 1.0,
                                            scenes.RELATIVE_DEPTH_SCALE_RANGE, 3.0))
        meshes.append(posed_mesh(rotation, wrist, angles, lengths, side))
    clean = render_depth(meshes, intrinsics, background_m=depth_m + BACKGROUND_BEHIND_M)
    return RgbdScene(scenes.SyntheticScene(truth, observations), lengths_all, sensor_depth(clean, rng), clean)


def synthetic_rgbd_sequence(rng: np.random.Generator, intrinsics: CameraIntrinsics, frames: int,
                            depth_m: float = 0.6, speed_m_s: float = 0.3, turn_rad_s: float = 1.0,
                            fps: float = 30.0, size_scale: float | None = None) -> list[RgbdScene]:
    """A two-hand RGB-D video like ``synthetic_scenes.synthetic_sequence`` (wrists moving together at ``speed_m_s``,
    hands turning at ``turn_rad_s``, fingers moving), each frame rendered and sensor-noised; ``size_scale`` as in
    ``synthetic_rgbd_scene``."""
    from scipy.spatial.transform import Rotation

    start, end = scenes._two_hand_poses(rng, 0.14, depth_m), scenes._two_hand_poses(rng, 0.14, depth_m)
    direction = rng.normal(0.0, 1.0, 3)
    velocity = direction / np.linalg.norm(direction) * speed_m_s / fps
    turns = []
    for (_, r0, _, _, _), (_, r1, _, _, _) in zip(start, end):
        turn = Rotation.from_matrix(r1 @ r0.T).as_rotvec()
        turns.append(turn / max(np.linalg.norm(turn), 1e-9) * turn_rad_s / fps)
    out = []
    for k in range(frames):
        f = k / max(frames - 1, 1)
        truth, observations, lengths_all, meshes = [], [], [], []
        for (side, r0, t0, a0, lengths), (_, _, _, a1, _), turn in zip(start, end, turns):
            if size_scale is not None:
                lengths = hk.BONE_LENGTH_PRIOR_M * size_scale
            rotation = Rotation.from_rotvec(turn * k).as_matrix() @ r0
            wrist, angles = t0 + velocity * k, (1 - f) * a0 + f * a1
            joints = hk.pose_joints(rotation, wrist, angles, lengths, side)
            truth.append(joints)
            lengths_all.append(lengths)
            observations.append(scenes._observe(rng, intrinsics, side, joints, 2.0, 0.006, 0.1, 1.0,
                                                scenes.RELATIVE_DEPTH_SCALE_RANGE, 3.0))
            meshes.append(posed_mesh(rotation, wrist, angles, lengths, side))
        clean = render_depth(meshes, intrinsics, background_m=depth_m + BACKGROUND_BEHIND_M)
        out.append(RgbdScene(scenes.SyntheticScene(truth, observations), lengths_all, sensor_depth(clean, rng),
                             clean))
    return out
