"""Result and camera dataclasses passed between pipeline stages and to the ROS layer.

Conventions for every array here: float32 unless stated, joints in the order of
``hand_recon_ros.skeleton.JOINT_NAMES``, images RGB uint8 (H, W, 3), pixel origin top-left.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

Side = Literal["left", "right"]

# Field of view assumed when no intrinsics are given (horizontal, degrees): a typical webcam/robot RGB camera.
ASSUMED_HFOV_DEG = 60.0


class IntrinsicsError(ValueError):
    """Raised for camera intrinsics that cannot be used (non-finite, non-positive focal length, ...)."""


@dataclass(frozen=True)
class CameraIntrinsics:
    """Pinhole intrinsics of the input image; ``known`` is False when they were assumed, not measured."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int
    distortion: tuple[float, ...] = ()
    known: bool = True
    # How ``distortion`` is read (CameraInfo names): plumb_bob / rational_polynomial (OpenCV's model) or
    # equidistant (OpenCV's fisheye model, 4 coefficients).
    distortion_model: str = "plumb_bob"

    def __post_init__(self) -> None:
        values = (self.fx, self.fy, self.cx, self.cy)
        if not all(math.isfinite(v) for v in values):
            raise IntrinsicsError(f"intrinsics must be finite, got fx,fy,cx,cy={values}")
        if self.fx <= 0 or self.fy <= 0:
            raise IntrinsicsError(f"focal lengths must be > 0, got fx={self.fx}, fy={self.fy}")
        if self.width <= 0 or self.height <= 0:
            raise IntrinsicsError(f"image size must be > 0, got {self.width}x{self.height}")
        if not all(math.isfinite(v) for v in self.distortion):
            raise IntrinsicsError(f"distortion coefficients must be finite, got {self.distortion}")

    @classmethod
    def assumed(cls, width: int, height: int, hfov_deg: float = ASSUMED_HFOV_DEG) -> CameraIntrinsics:
        """Intrinsics for an image with no calibration: centred principal point, square pixels, given HFOV."""
        f = 0.5 * width / math.tan(math.radians(hfov_deg) / 2.0)
        return cls(f, f, (width - 1) / 2.0, (height - 1) / 2.0, width, height, (), known=False)

    @property
    def matrix(self) -> np.ndarray:
        """The 3x3 camera matrix K (float64, as OpenCV wants it)."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]], dtype=np.float64)

    @property
    def has_distortion(self) -> bool:
        """True when any distortion coefficient is non-zero."""
        return any(abs(v) > 0.0 for v in self.distortion)


@dataclass
class RotatedRect:
    """A rotated region of interest in image pixels: centre, size and rotation (radians, image plane)."""

    cx: float
    cy: float
    width: float
    height: float
    rotation: float


@dataclass
class HandDetection:
    """One hand after localisation and landmarks (2D stage), before metric 3D.

    keypoints_2d: (21, 2) pixels in the input image.
    keypoints_z: (21,) relative depth in the same pixel scale as x (MediaPipe convention), wrist-relative.
    world_landmarks: (21, 3) metres, hand-centred, camera-aligned axes (MediaPipe "world" landmarks).
    """

    side: Side
    score: float
    side_score: float
    keypoints_2d: np.ndarray
    keypoints_z: np.ndarray
    world_landmarks: np.ndarray
    roi: RotatedRect
    track_id: int = -1


@dataclass
class HandMesh:
    """A triangle mesh in the camera optical frame: vertices (V, 3) metres float32, faces (F, 3) int32."""

    vertices: np.ndarray
    faces: np.ndarray


@dataclass
class HandResult:
    """One hand with everything the outputs need.

    joints_3d: (21, 3) metres in the camera optical frame, or None when it could not be placed.
    joint_confidence: (21,) in [0, 1].
    wrist_position: (3,) metres; wrist_quaternion: (4,) x, y, z, w (axes as documented in Hand.msg).
    fit_residual_px: mean reprojection residual of the 3D fit, pixels (NaN when no fit ran).
    placement: how the hand was placed in depth: "monocular" (keypoints and bone lengths) or "depth" (depth camera).
    hand_length_m: the hand length (wrist to middle fingertip) the fit used, metres (measured with depth).
    """

    detection: HandDetection
    joints_3d: np.ndarray | None
    joint_confidence: np.ndarray
    wrist_position: np.ndarray | None = None
    wrist_quaternion: np.ndarray | None = None
    mesh: HandMesh | None = None
    mano_pose: np.ndarray | None = None
    mano_shape: np.ndarray | None = None
    grasp: Any = None  # pipeline.grasp_signals.GraspSignals when computed (pinch, grasp strength, state)
    fit_residual_px: float = float("nan")
    placement: str = "monocular"
    hand_length_m: float = float("nan")

    @property
    def side(self) -> Side:
        """The true hand (left/right), already corrected for mirrored input."""
        return self.detection.side


@dataclass
class FrameResult:
    """Everything found in one image; ``timing_ms`` has one entry per stage plus ``total``; ``depth`` says what
    happened to a depth image given with it: "none" (none given), "used", or why it was refused."""

    width: int
    height: int
    intrinsics_known: bool
    hands: list[HandResult] = field(default_factory=list)
    timing_ms: dict[str, float] = field(default_factory=dict)
    depth: str = "none"
