"""Wrist pose (position + orientation) of a hand from its 21 joints, with the axes documented in Hand.msg."""

from __future__ import annotations

import cv2
import numpy as np

from hand_recon_ros.skeleton import INDEX, MIDDLE_MCP, PINKY, WRIST

MIN_AXIS_LENGTH_M = 1e-6


def wrist_frame(joints_3d: np.ndarray, side: str) -> np.ndarray:
    """3x3 rotation (columns x, y, z) of the wrist frame: x wrist→middle MCP, z out of the palm, y = z × x.

    joints_3d: (21, 3) any consistent frame/unit (metres, camera optical frame in practice).
    With z out of the palm on both hands, the right-handed y = z × x points to the pinky side on a right hand
    and to the thumb side on a left hand (Hand.msg's comment says the opposite; the frame here follows its
    x and z definitions, which fix y).
    """
    joints = np.asarray(joints_3d, dtype=np.float64)
    if joints.shape != (21, 3) or not np.all(np.isfinite(joints)):
        raise ValueError(f"wrist_pose needs finite (21, 3) joints, got shape {joints.shape}")
    if side not in ("left", "right"):
        raise ValueError(f"side must be 'left' or 'right', got {side!r}")
    wrist = joints[WRIST]
    x_axis = joints[MIDDLE_MCP] - wrist
    to_index, to_pinky = joints[INDEX[0]] - wrist, joints[PINKY[0]] - wrist
    # On a right hand (index - wrist) x (pinky - wrist) points out of the palm; mirrored on a left hand.
    normal = _cross(to_index, to_pinky) if side == "right" else _cross(to_pinky, to_index)
    x_len = np.linalg.norm(x_axis)
    if x_len < MIN_AXIS_LENGTH_M:
        raise ValueError("wrist and middle-finger MCP coincide; cannot define the wrist frame")
    x_axis /= x_len
    z_axis = normal - np.dot(normal, x_axis) * x_axis
    z_len = np.linalg.norm(z_axis)
    if z_len < MIN_AXIS_LENGTH_M:
        raise ValueError("palm joints are collinear; cannot define the palm normal")
    z_axis /= z_len
    y_axis = _cross(z_axis, x_axis)
    return np.stack([x_axis, y_axis, z_axis], axis=1)


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cross product of two 3-vectors (np.cross's axis handling costs more than the product here)."""
    return np.array([a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]])


def wrist_pose(joints_3d: np.ndarray, side: str) -> tuple[np.ndarray, np.ndarray]:
    """Wrist position (3,) (joint 0) and orientation quaternion (4,) x, y, z, w (w ≥ 0), float64."""
    frame = wrist_frame(joints_3d, side)
    position = np.asarray(joints_3d, dtype=np.float64)[WRIST].copy()
    return position, _quaternions([frame])[0]


def _quaternions(frames: list[np.ndarray]) -> list[np.ndarray]:
    """Quaternions (x, y, z, w), w ≥ 0, of rotation matrices, via OpenCV's Rodrigues (axis-angle)."""
    out = []
    for frame in frames:
        rotvec = cv2.Rodrigues(frame)[0][:, 0]
        angle = float(np.linalg.norm(rotvec))
        axis = rotvec / angle if angle > 0.0 else np.zeros(3)
        out.append(np.array([*(axis * np.sin(angle / 2.0)), np.cos(angle / 2.0)]))
    return out


def wrist_poses(joints_3d: list[np.ndarray], sides: list[str]) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """wrist_pose of several hands with one quaternion conversion; a hand without a defined frame gets None."""
    frames, defined = [], []
    for joints, side in zip(joints_3d, sides):
        try:
            frames.append(wrist_frame(joints, side))
            defined.append(True)
        except ValueError:
            defined.append(False)
    quats = iter(_quaternions(frames))
    return [(np.asarray(j, dtype=np.float64)[WRIST].copy(), next(quats) if ok else None)
            for j, ok in zip(joints_3d, defined)]
