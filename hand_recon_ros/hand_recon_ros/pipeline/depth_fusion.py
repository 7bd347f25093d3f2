"""Depth at the hand's joints from a registered depth image: robust per-joint samples for the 3D solver. ROS-free.

A depth camera sees the skin, not the joint centre. Per visible joint we take the valid pixels in a small window
around its keypoint (zeros, NaN/inf and out-of-range values are holes), keep the front layer (the hand is the
nearest surface; the background behind it is dropped), take their median, reject joints far from the hand's
median depth, and add the front-surface offset (the finger or palm half-thickness) to reach the joint centre.
Each joint depth carries its expected error (``JointDepths.sigma_m``), the solver's weight for it: the error of
the skin-to-centre offset (pose-dependent, the same at every distance) combined with the sensor noise left in a
median over that joint's pixels (the per-pixel noise grows with z², but a hand at 1 m still covers tens of pixels
per joint, so the median's share stays small unless few pixels are valid).
Too few usable joints means no depth for that hand (the solver then places it monocularly).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hand_recon_ros.models.open_hand_mesh import TUBE_RADIUS_M
from hand_recon_ros.skeleton import FINGERS, NUM_JOINTS

# Metres per unit of 16-bit depth images (16UC1 / 16-bit PNG: millimetres).
DEFAULT_UINT16_SCALE_M = 0.001
# Depth readings outside this range are holes (metres).
MIN_VALID_DEPTH_M = 0.1
MAX_VALID_DEPTH_M = 5.0
# Sampling window around each keypoint: this fraction of the wrist→middle-MCP distance in pixels (~7 mm).
WINDOW_PALM_FRACTION = 0.08
MIN_WINDOW_RADIUS_PX = 2
MAX_WINDOW_RADIUS_PX = 15
# A joint needs at least this fraction of its window's pixels valid (fewer: a hole, no depth for that joint).
MIN_VALID_FRACTION = 0.25
# The front layer: pixels within this of the window's near percentile belong to the hand (metres).
FRONT_PERCENTILE = 10.0
FRONT_LAYER_M = 0.02
# A joint's depth further than this from the hand's median depth is an outlier (a hand is ~0.19 m long).
HAND_OUTLIER_M = 0.12
# Fewer usable joints than this: the hand is placed monocularly.
MIN_DEPTH_JOINTS = 6
# Front-surface offsets where the mesh's radii do not apply (metres, see _surface_offsets).
WRIST_OFFSET_M = 0.008
TIP_OFFSET_M = 0.002
# Error of a joint depth beyond the sensor noise: the visible skin's offset from the joint centre varies with how
# the finger or palm is turned and how much of the window the surface fills (metres; the measured spread on the
# synthetic hands is 1-4 mm per visible joint).
SURFACE_OFFSET_SIGMA_M = 0.004
# The depth camera's per-pixel noise, sigma = base + quadratic · z² (stereo: grows with z²; RealSense D4xx class,
# about 1 % at 2 m), and the pixels over which it is correlated (stereo matching windows), which sets how many
# independent samples a window's median averages.
SENSOR_NOISE_BASE_M = 0.001
SENSOR_NOISE_QUADRATIC_PER_M = 0.005
NOISE_CORRELATION_PIXELS = 9.0


def _surface_offsets() -> np.ndarray:
    """Joint centre minus visible skin depth per joint (21,), metres: the project mesh's tube radius at every
    finger joint but the tips (the tip landmark sits on the skin at the finger's end: TIP_OFFSET_M), and
    WRIST_OFFSET_M at the wrist (the landmark is at the crease, where the palm slab thins out)."""
    offsets = np.empty(NUM_JOINTS)
    offsets[0] = WRIST_OFFSET_M
    for chain, joints in enumerate(FINGERS):
        offsets[list(joints)] = TUBE_RADIUS_M[chain]
        offsets[joints[-1]] = TIP_OFFSET_M
    return offsets


SURFACE_OFFSET_M: np.ndarray = _surface_offsets()


class DepthError(ValueError):
    """A depth image that cannot be used with this colour frame; the message says what is wrong."""


@dataclass
class JointDepths:
    """Per-joint depth of one hand: joint-centre camera z (21,) metres, NaN where the joint has no usable depth,
    and its expected error sigma_m (21,) metres (NaN there too)."""

    z_m: np.ndarray
    sigma_m: np.ndarray

    @property
    def valid(self) -> np.ndarray:
        """Mask (21,) of joints with a depth."""
        return np.isfinite(self.z_m)

    @property
    def count(self) -> int:
        """How many joints have a depth."""
        return int(self.valid.sum())


def depth_to_metres(depth: np.ndarray, scale_m: float | None = None) -> np.ndarray:
    """A depth image (H, W) as float32 metres: uint16 times ``scale_m`` (default millimetres), float times
    ``scale_m`` (default 1: metres); holes stay 0/NaN. DepthError for other types or shapes."""
    array = np.asarray(depth)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim != 2 or array.size == 0:
        raise DepthError(f"depth must be a single-channel (H, W) image, got shape {array.shape}")
    if scale_m is not None and (not np.isfinite(scale_m) or scale_m <= 0):
        raise DepthError(f"depth scale must be a positive number of metres per unit, got {scale_m!r}")
    if array.dtype in (np.uint16, np.uint8, np.int32, np.int16):
        scale = DEFAULT_UINT16_SCALE_M if scale_m is None else scale_m
        return (array.astype(np.float32) * np.float32(scale)).astype(np.float32)
    if array.dtype in (np.float32, np.float64):
        return (array.astype(np.float32) * np.float32(1.0 if scale_m is None else scale_m)).astype(np.float32)
    raise DepthError(f"depth pixels must be 16-bit integers or floats, got {array.dtype}")


def check_depth(depth_m: np.ndarray, width: int, height: int) -> None:
    """Raise DepthError when a metric depth image does not fit a width x height colour frame or has no data."""
    if depth_m.shape != (height, width):
        raise DepthError(f"depth is {depth_m.shape[1]}x{depth_m.shape[0]} but the colour image is {width}x{height} "
                         "(depth must be registered to the colour image)")
    valid = np.isfinite(depth_m) & (depth_m > MIN_VALID_DEPTH_M) & (depth_m < MAX_VALID_DEPTH_M)
    if not valid.any():
        raise DepthError(f"depth has no valid pixel (all zero, NaN/inf or outside {MIN_VALID_DEPTH_M}-"
                         f"{MAX_VALID_DEPTH_M} m)")


def _window_radius(keypoints_px: np.ndarray) -> int:
    """Sampling window radius (pixels) for a hand whose keypoints are given (scaled with its size in the image)."""
    palm_px = float(np.linalg.norm(keypoints_px[9] - keypoints_px[0]))
    return int(np.clip(round(WINDOW_PALM_FRACTION * palm_px), MIN_WINDOW_RADIUS_PX, MAX_WINDOW_RADIUS_PX))


def _window_values(depth_m: np.ndarray, uv: np.ndarray, radius: int) -> np.ndarray:
    """Depths (21, (2r+1)²) in each keypoint's window, NaN for holes, out-of-range values and pixels off the image."""
    height, width = depth_m.shape
    offsets = np.arange(-radius, radius + 1)
    finite = np.isfinite(uv).all(axis=1)
    centre = np.where(finite[:, None], np.round(np.nan_to_num(uv)), -10 * (radius + 1)).astype(np.int64)
    us = centre[:, 0, None, None] + offsets[None, None, :]  # (21, 1, k)
    vs = centre[:, 1, None, None] + offsets[None, :, None]  # (21, k, 1)
    inside = (us >= 0) & (us < width) & (vs >= 0) & (vs < height)
    values = depth_m[np.clip(vs, 0, height - 1), np.clip(us, 0, width - 1)].astype(np.float64)
    valid = inside & np.isfinite(values) & (values > MIN_VALID_DEPTH_M) & (values < MAX_VALID_DEPTH_M)
    return np.where(valid, values, np.nan).reshape(len(uv), -1)


def _front_depths(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per window (rows of ``values``, NaN = hole): the median of the front layer of its valid depths (the
    background behind the hand dropped), NaN where too few pixels are valid, and how many pixels it used."""
    ordered = np.sort(values, axis=1)  # NaN last
    count = np.isfinite(ordered).sum(axis=1)
    enough = count >= max(3, MIN_VALID_FRACTION * values.shape[1])
    rank = FRONT_PERCENTILE / 100.0 * np.maximum(count - 1, 0)  # numpy's linear percentile
    low = np.floor(rank).astype(np.int64)
    high = np.minimum(low + 1, np.maximum(count - 1, 0))

    def take(index: np.ndarray) -> np.ndarray:
        return np.take_along_axis(ordered, index[:, None], axis=1)[:, 0]

    front = take(low) + (take(high) - take(low)) * (rank - low)
    kept = np.sum(ordered <= (front + FRONT_LAYER_M)[:, None], axis=1)  # a prefix of the sorted values
    kept = np.maximum(kept, 1)
    median = 0.5 * (take((kept - 1) // 2) + take(kept // 2))
    return np.where(enough, median, np.nan), kept


def joint_depths(depth_m: np.ndarray, keypoints_px: np.ndarray) -> JointDepths:
    """Robust joint-centre depth of one hand (see the module docstring) from metric depth and its keypoints
    (pixels of the image the depth is registered to)."""
    uv = np.asarray(keypoints_px, dtype=np.float64)
    surface, pixels = _front_depths(_window_values(depth_m, uv, _window_radius(np.nan_to_num(uv))))
    if np.isfinite(surface).sum() >= MIN_DEPTH_JOINTS:
        median = np.nanmedian(surface)
        surface[np.abs(surface - median) > HAND_OUTLIER_M] = np.nan
    z = surface + SURFACE_OFFSET_M
    if np.isfinite(z).sum() < MIN_DEPTH_JOINTS:
        z[:] = np.nan
    return JointDepths(z, np.where(np.isfinite(z), joint_depth_sigma(z, pixels), np.nan))


def joint_depth_sigma(z_m: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """Expected error (metres) of joint depths ``z_m`` that are medians of ``pixels`` valid pixels each: the surface
    offset's error and the sensor noise left in the median (1.2533 sigma / sqrt(independent samples))."""
    z = np.nan_to_num(np.asarray(z_m, dtype=np.float64))
    sensor = SENSOR_NOISE_BASE_M + SENSOR_NOISE_QUADRATIC_PER_M * z ** 2
    samples = np.maximum(np.asarray(pixels, dtype=np.float64) / NOISE_CORRELATION_PIXELS, 1.0)
    return np.hypot(SURFACE_OFFSET_SIGMA_M, 1.2533 * sensor / np.sqrt(samples))
