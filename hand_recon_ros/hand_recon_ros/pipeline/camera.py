"""Pinhole camera helpers: undistort keypoints, project and back-project (camera optical frame, metres)."""

from __future__ import annotations

import cv2
import numpy as np

from hand_recon_ros.pipeline.types import CameraIntrinsics

# Depth below which a point is treated as behind/at the camera when projecting (metres).
MIN_DEPTH_M = 1e-6


def undistort_keypoints(points_px: np.ndarray, intrinsics: CameraIntrinsics) -> np.ndarray:
    """Pixels (..., 2) of an ideal pinhole camera with the same K; unchanged when there is no distortion."""
    points = np.asarray(points_px, dtype=np.float64)
    if points.shape[-1] != 2:
        raise ValueError(f"points_px must have shape (..., 2), got {points.shape}")
    if not intrinsics.has_distortion or points.size == 0:
        return points.copy()
    k = intrinsics.matrix
    dist = np.asarray(intrinsics.distortion, dtype=np.float64)
    if dist.size not in (4, 5, 8, 12, 14):
        raise ValueError(f"distortion must have 4, 5, 8, 12 or 14 coefficients (OpenCV), got {dist.size}")
    out = cv2.undistortPoints(points.reshape(-1, 1, 2), k, dist, P=k)
    return out.reshape(points.shape)


def project(points_m: np.ndarray, intrinsics: CameraIntrinsics) -> np.ndarray:
    """Pixels (..., 2) of camera-frame points (..., 3) through the distortion-free pinhole model."""
    points = np.asarray(points_m, dtype=np.float64)
    z = np.maximum(points[..., 2], MIN_DEPTH_M)
    u = intrinsics.fx * points[..., 0] / z + intrinsics.cx
    v = intrinsics.fy * points[..., 1] / z + intrinsics.cy
    return np.stack([u, v], axis=-1)


def pixel_rays(points_px: np.ndarray, intrinsics: CameraIntrinsics) -> np.ndarray:
    """Unit viewing rays (..., 3) through undistorted pixels (..., 2)."""
    points = np.asarray(points_px, dtype=np.float64)
    rays = np.stack(
        [(points[..., 0] - intrinsics.cx) / intrinsics.fx, (points[..., 1] - intrinsics.cy) / intrinsics.fy,
         np.ones(points.shape[:-1])],
        axis=-1,
    )
    return rays / np.linalg.norm(rays, axis=-1, keepdims=True)


def ray_alignment(ray: np.ndarray) -> np.ndarray:
    """Rotation (3, 3) taking the optical axis (0, 0, 1) onto the unit ``ray`` (shortest arc)."""
    z = np.array([0.0, 0.0, 1.0])
    axis = np.cross(z, ray)
    s, c = np.linalg.norm(axis), float(np.clip(ray @ z, -1.0, 1.0))
    if s < 1e-12:
        return np.eye(3)
    rotvec = axis / s * np.arctan2(s, c)
    return cv2.Rodrigues(rotvec)[0]
