"""Camera-frame hand joints -> dex-retargeting's wrist-centred operator frame (pure numpy, no library import).

The project's joints are MediaPipe's 21-keypoint order (``skeleton.JOINT_NAMES``, the order dex-retargeting's
``target_link_human_indices`` index into) in the camera optical frame (x right, y down, z forward, metres).
dex-retargeting expects them wrist-centred and rotated into its operator frame, which its video example builds
from MediaPipe keypoints in three steps, reproduced here (docs/teleop.md, "Operator frame"):

1. subtract the wrist (joint 0);
2. wrist frame W (columns x, n, z): x from the middle MCP (9) to the wrist (0), made orthogonal to the palm
   normal n (the least-squares normal of joints 0, 5, 9); z = x × n, flipped together with n so that z points
   from the middle MCP towards the index MCP (5);
3. operator = joints @ W @ OPERATOR_FROM_WRIST[side] (the library's ``OPERATOR2MANO_RIGHT/LEFT``).

In the result z runs from the wrist to the middle MCP, x is the palm normal pointing out of the palm (fingers
curl towards +x), y points to the index side on a right hand and to the pinky side on a left hand (a left hand
is the right one mirrored in y), as the library's robot configs expect.

A mirrored (selfie) image shows a right hand with a left hand's chirality; ``mirrored=True`` negates camera x
first so a hand reported as "right" (already corrected for mirroring) has a right hand's geometry again.
"""

from __future__ import annotations

import numpy as np

from hand_recon_ros.skeleton import NUM_JOINTS

WRIST, INDEX_MCP, MIDDLE_MCP = 0, 5, 9
# Wrist frame -> operator frame, per side (equal to dex_retargeting.constants.OPERATOR2MANO_RIGHT / _LEFT).
OPERATOR_FROM_WRIST: dict[str, np.ndarray] = {
    "right": np.array([[0.0, 0.0, -1.0], [-1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]),
    "left": np.array([[0.0, 0.0, -1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0]]),
}
# Below this palm extent (metres) the wrist frame is undefined (collapsed or degenerate hand).
MIN_PALM_EXTENT_M = 1e-4


class OperatorFrameError(ValueError):
    """Joints from which no operator frame can be built (wrong shape, non-finite, degenerate palm)."""


def wrist_frame(joints: np.ndarray) -> np.ndarray:
    """The (3, 3) wrist frame (columns x, n, z) of wrist-centred joints (21, 3), in the joints' frame."""
    palm = joints[[WRIST, INDEX_MCP, MIDDLE_MCP]]
    along = palm[0] - palm[2]  # middle MCP -> wrist
    centred = palm - palm.mean(axis=0)
    if np.linalg.norm(along) < MIN_PALM_EXTENT_M or np.linalg.norm(centred[1] - centred[2]) < MIN_PALM_EXTENT_M:
        raise OperatorFrameError("degenerate palm: wrist, index MCP and middle MCP (nearly) coincide")
    normal = np.linalg.svd(centred)[2][2]
    x = along - np.dot(along, normal) * normal
    x /= np.linalg.norm(x)
    z = np.cross(x, normal)
    if np.dot(z, centred[1] - centred[2]) < 0.0:  # z towards the index side
        normal, z = -normal, -z
    return np.stack([x, normal, z], axis=1)


def to_operator_frame(joints_camera: np.ndarray, side: str, mirrored: bool = False) -> np.ndarray:
    """Joints (21, 3) float64 in dex-retargeting's operator frame from camera-frame joints (21, 3) metres."""
    if side not in OPERATOR_FROM_WRIST:
        raise OperatorFrameError(f"side must be 'left' or 'right', got {side!r}")
    joints = np.asarray(joints_camera, dtype=np.float64)
    if joints.shape != (NUM_JOINTS, 3):
        raise OperatorFrameError(f"joints must have shape ({NUM_JOINTS}, 3), got {joints.shape}")
    if not np.all(np.isfinite(joints)):
        raise OperatorFrameError("joints hold NaN or inf")
    if mirrored:
        joints = joints * np.array([-1.0, 1.0, 1.0])
    joints = joints - joints[WRIST]
    return joints @ wrist_frame(joints) @ OPERATOR_FROM_WRIST[side]
