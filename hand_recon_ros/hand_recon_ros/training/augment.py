"""Crop-and-augment: one affine map (scale, rotation, translation, horizontal flip) applied to the image, the
2D keypoints and (rotation about the optical axis, mirror) the 3D joints, plus colour jitter; flip swaps sides.

The crop is the square around all labelled hands (the pipeline's square crop around both hands), enlarged by
``crop_margin``. The 3D joints rotate with the image about the camera's optical axis (exact for a crop centred
on the principal point, a small-angle approximation elsewhere: the usual practice in hand-pose training).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

MIN_CROP_PX = 16.0


@dataclass
class AugmentParams:
    """One draw of the augmentation: scale (>1 zooms out), rotation (rad), shift (fraction of crop), flip, colour."""

    scale: float = 1.0
    rotation_rad: float = 0.0
    shift: tuple[float, float] = (0.0, 0.0)
    flip: bool = False
    brightness: float = 0.0
    contrast: float = 1.0
    saturation: float = 1.0


def draw_params(rng: np.random.Generator, scale_range: tuple[float, float], rotation_deg: float,
                translation_fraction: float, colour_jitter: float, flip_probability: float) -> AugmentParams:
    """Random augmentation parameters from the config ranges."""
    return AugmentParams(
        scale=float(rng.uniform(*scale_range)),
        rotation_rad=float(np.deg2rad(rng.uniform(-rotation_deg, rotation_deg))),
        shift=(float(rng.uniform(-translation_fraction, translation_fraction)),
               float(rng.uniform(-translation_fraction, translation_fraction))),
        flip=bool(rng.uniform() < flip_probability),
        brightness=float(rng.uniform(-colour_jitter, colour_jitter)),
        contrast=float(1.0 + rng.uniform(-colour_jitter, colour_jitter)),
        saturation=float(1.0 + rng.uniform(-colour_jitter, colour_jitter)),
    )


def crop_box(keypoints: list[np.ndarray], margin: float) -> tuple[np.ndarray, float]:
    """Centre (2,) and side length (px) of the square around all keypoint sets, times ``margin``."""
    points = np.concatenate([np.asarray(k, np.float64).reshape(-1, 2) for k in keypoints], axis=0)
    low, high = points.min(0), points.max(0)
    return (low + high) / 2.0, max(float((high - low).max()) * margin, MIN_CROP_PX)


def crop_matrix(center: np.ndarray, size_px: float, out_size: int, params: AugmentParams) -> np.ndarray:
    """3×3 affine from original pixels to input pixels for this crop and augmentation."""
    size = size_px * params.scale
    c = np.asarray(center, np.float64) + np.asarray(params.shift) * size
    cos, sin = np.cos(params.rotation_rad), np.sin(params.rotation_rad)
    k = out_size / size
    half = (out_size - 1) / 2.0
    to_origin = np.array([[1, 0, -c[0]], [0, 1, -c[1]], [0, 0, 1]], np.float64)
    rotate_scale = np.array([[k * cos, -k * sin, half], [k * sin, k * cos, half], [0, 0, 1]], np.float64)
    matrix = rotate_scale @ to_origin
    if params.flip:
        matrix = np.array([[-1, 0, out_size - 1], [0, 1, 0], [0, 0, 1]], np.float64) @ matrix
    return matrix


def warp_image(image: np.ndarray, matrix: np.ndarray, out_size: int) -> np.ndarray:
    """The (out_size, out_size, 3) crop of ``image`` under ``matrix`` (bilinear, black outside)."""
    return cv2.warpAffine(image, matrix[:2], (out_size, out_size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))


def warp_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Pixels (..., 2) under the affine ``matrix``."""
    points = np.asarray(points, np.float64)
    return points @ matrix[:2, :2].T + matrix[:2, 2]


def rotate_joints(joints: np.ndarray, params: AugmentParams) -> np.ndarray:
    """3D joints (..., 3) camera frame rotated with the image about the optical axis and mirrored on flip."""
    cos, sin = np.cos(params.rotation_rad), np.sin(params.rotation_rad)
    rotation = np.array([[cos, -sin, 0], [sin, cos, 0], [0, 0, 1]], np.float64)
    if params.flip:
        rotation = np.diag([-1.0, 1.0, 1.0]) @ rotation
    return np.asarray(joints, np.float64) @ rotation.T


def jitter_colour(image: np.ndarray, params: AugmentParams) -> np.ndarray:
    """Float image (H, W, 3) in [0, 1] with brightness, contrast and saturation changed."""
    grey = image.mean(axis=2, keepdims=True)
    out = grey + (image - grey) * params.saturation
    out = (out - 0.5) * params.contrast + 0.5 + params.brightness
    return np.clip(out, 0.0, 1.0)
