"""Metric 3D by PnP: the network's world landmarks (metres, hand-centred) placed in the camera frame with OpenCV.

Used until the refinement stage (refine_lift.RefinementLifter) is available, and whenever refine_3d is off.
"""

from __future__ import annotations

from typing import Protocol

import cv2
import numpy as np

from hand_recon_ros.pipeline.camera import undistort_keypoints
from hand_recon_ros.pipeline.types import CameraIntrinsics, HandDetection, HandResult
from hand_recon_ros.pipeline.wrist_pose import wrist_pose

# Reprojection error at which a joint's confidence has fallen to exp(-1) of the hand's presence score.
CONFIDENCE_RESIDUAL_PX = 0.05  # as a fraction of the hand's ROI size (scale-free)
MIN_DEPTH_M = 0.05


class Lifter(Protocol):
    """Turns 2D detections into metric 3D hands in the camera optical frame."""

    def lift(
        self, detections: list[HandDetection], intrinsics: CameraIntrinsics, timestamp_s: float | None,
        want_mesh: bool,
    ) -> list[HandResult]:
        """One HandResult per detection, same order."""
        ...

    def reset(self) -> None:
        """Forget any temporal state."""
        ...


class PnPLifter:
    """solvePnP (SQPnP, then Levenberg-Marquardt refinement) of world landmarks against 2D keypoints."""

    def lift(
        self, detections: list[HandDetection], intrinsics: CameraIntrinsics, timestamp_s: float | None = None,
        want_mesh: bool = False,
    ) -> list[HandResult]:
        """Place each hand; joints_3d is None when PnP fails or puts the hand behind the camera."""
        return [self.lift_one(det, intrinsics) for det in detections]

    def reset(self) -> None:
        """PnP is stateless."""

    def lift_one(self, det: HandDetection, intrinsics: CameraIntrinsics) -> HandResult:
        """Place one hand in the camera frame."""
        object_pts = np.ascontiguousarray(det.world_landmarks, dtype=np.float64).reshape(-1, 1, 3)
        image_pts = np.ascontiguousarray(det.keypoints_2d, dtype=np.float64).reshape(-1, 1, 2)
        K = intrinsics.matrix
        if intrinsics.has_distortion:  # every CameraInfo model (fisheye included), then a pinhole with K
            image_pts = undistort_keypoints(image_pts.reshape(-1, 2), intrinsics).reshape(-1, 1, 2)
        zero_dist = np.zeros(5)
        fallback = HandResult(det, None, np.full(21, det.score, np.float32))
        ok, rvec, tvec = cv2.solvePnP(object_pts, image_pts, K, zero_dist, flags=cv2.SOLVEPNP_SQPNP)
        if not ok:
            return fallback
        rvec, tvec = cv2.solvePnPRefineLM(object_pts, image_pts, K, zero_dist, rvec, tvec)
        rotation, _ = cv2.Rodrigues(rvec)
        joints = (object_pts.reshape(-1, 3) @ rotation.T + tvec.reshape(1, 3)).astype(np.float32)
        if not np.all(np.isfinite(joints)) or float(np.median(joints[:, 2])) < MIN_DEPTH_M:
            return fallback
        projected, _ = cv2.projectPoints(object_pts, rvec, tvec, K, zero_dist)
        residuals = np.linalg.norm(projected.reshape(-1, 2) - image_pts.reshape(-1, 2), axis=1)
        scale_px = max(det.roi.width, 1.0) * CONFIDENCE_RESIDUAL_PX
        confidence = (det.score * np.exp(-((residuals / scale_px) ** 2))).astype(np.float32)
        try:
            position, quaternion = wrist_pose(joints, det.side)
        except ValueError:  # degenerate palm (collapsed landmarks): keep the joints, no orientation
            position, quaternion = joints[0].astype(np.float64), None
        return HandResult(
            detection=det,
            joints_3d=joints,
            joint_confidence=confidence,
            wrist_position=position.astype(np.float32),
            wrist_quaternion=None if quaternion is None else quaternion.astype(np.float32),
            fit_residual_px=float(residuals.mean()),
        )
