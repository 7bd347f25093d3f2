"""Pinhole camera helpers: undistort keypoints, project and back-project (camera optical frame, metres)."""

from __future__ import annotations

import cv2
import numpy as np

from hand_recon_ros.pipeline.types import CameraIntrinsics

# Depth below which a point is treated as behind/at the camera when projecting (metres).
MIN_DEPTH_M = 1e-6
# Distortion models read with cv2.undistortPoints (CameraInfo names) and the coefficient counts OpenCV takes.
OPENCV_MODELS: tuple[str, ...] = ("plumb_bob", "rational_polynomial")
OPENCV_COEFFICIENT_COUNTS: tuple[int, ...] = (4, 5, 8, 12, 14)
# The fisheye model read with cv2.fisheye.undistortPoints (k1..k4).
FISHEYE_MODEL = "equidistant"
FISHEYE_COEFFICIENT_COUNT = 4
DISTORTION_MODELS: tuple[str, ...] = (*OPENCV_MODELS, FISHEYE_MODEL)
# Iterate the inverse distortion to convergence (OpenCV's default is a fixed 5 steps, off by tenths of a pixel
# towards the corners of a wide lens): at most this many steps, until the reprojection error is below the eps.
UNDISTORT_MAX_ITERATIONS = 50
UNDISTORT_EPS_PX = 1e-6
UNDISTORT_CRITERIA = (cv2.TERM_CRITERIA_COUNT + cv2.TERM_CRITERIA_EPS, UNDISTORT_MAX_ITERATIONS, UNDISTORT_EPS_PX)


def undistort_keypoints(points_px: np.ndarray, intrinsics: CameraIntrinsics) -> np.ndarray:
    """Pixels (..., 2) of an ideal pinhole camera with the same K; unchanged when there is no distortion.

    plumb_bob and rational_polynomial go through cv2.undistortPoints, equidistant through cv2.fisheye.
    """
    points = np.asarray(points_px, dtype=np.float64)
    if points.shape[-1] != 2:
        raise ValueError(f"points_px must have shape (..., 2), got {points.shape}")
    if not intrinsics.has_distortion or points.size == 0:
        return points.copy()
    k = intrinsics.matrix
    dist = np.asarray(intrinsics.distortion, dtype=np.float64)
    model = intrinsics.distortion_model
    if model == FISHEYE_MODEL:
        if dist.size != FISHEYE_COEFFICIENT_COUNT:
            raise ValueError(f"equidistant distortion must have 4 coefficients (k1..k4), got {dist.size}")
        out = cv2.fisheye.undistortPoints(points.reshape(-1, 1, 2), k, dist.reshape(4, 1), P=k)
        return out.reshape(points.shape)
    if model not in OPENCV_MODELS:
        raise ValueError(f"unknown distortion model {model!r}; supported: {', '.join(DISTORTION_MODELS)}")
    if dist.size not in OPENCV_COEFFICIENT_COUNTS:
        raise ValueError(f"distortion must have 4, 5, 8, 12 or 14 coefficients (OpenCV), got {dist.size}")
    out = cv2.undistortPoints(points.reshape(-1, 1, 2), k, dist, P=k, criteria=UNDISTORT_CRITERIA)
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
