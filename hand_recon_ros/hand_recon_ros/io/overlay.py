"""Overlay drawing: skeleton, ROI and a label per hand, coloured by side (left blue-ish, right orange)."""

from __future__ import annotations

import cv2
import numpy as np

from hand_recon_ros.pipeline.roi import roi_corners
from hand_recon_ros.pipeline.types import FrameResult
from hand_recon_ros.skeleton import BONES

# RGB colours per side.
SIDE_COLOURS_RGB: dict[str, tuple[int, int, int]] = {"left": (40, 120, 255), "right": (255, 140, 0)}
ROI_COLOUR_RGB = (0, 200, 0)
JOINT_RADIUS_FRACTION = 0.006  # of the longer image side
LINE_WIDTH_FRACTION = 0.003


def draw_overlay(image_rgb: np.ndarray, result: FrameResult, draw_roi: bool = True) -> np.ndarray:
    """A copy of the RGB image with every hand drawn (bones, joints, ROI, "side score #id" label)."""
    canvas = np.ascontiguousarray(image_rgb).copy()
    longest = max(canvas.shape[:2])
    radius = max(2, int(round(longest * JOINT_RADIUS_FRACTION)))
    width = max(1, int(round(longest * LINE_WIDTH_FRACTION)))
    for hand in result.hands:
        det = hand.detection
        colour = SIDE_COLOURS_RGB.get(det.side, (255, 255, 255))
        points = np.round(det.keypoints_2d).astype(np.int32)
        if draw_roi:
            cv2.polylines(canvas, [np.round(roi_corners(det.roi)).astype(np.int32)], True, ROI_COLOUR_RGB, width,
                          cv2.LINE_AA)
        for parent, child in BONES:
            cv2.line(canvas, tuple(points[parent]), tuple(points[child]), colour, width, cv2.LINE_AA)
        for point in points:
            cv2.circle(canvas, tuple(point), radius, colour, -1, cv2.LINE_AA)
        label = f"{det.side} {det.side_score:.2f} #{det.track_id}"
        anchor = (int(points[:, 0].min()), max(12, int(points[:, 1].min()) - 6))
        scale = max(0.4, longest / 1400.0)
        cv2.putText(canvas, label, anchor, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), width + 2, cv2.LINE_AA)
        cv2.putText(canvas, label, anchor, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, width, cv2.LINE_AA)
    return canvas


def write_overlay(path: str, image_rgb: np.ndarray, result: FrameResult) -> None:
    """Draw and save the overlay (format from the file suffix); OSError naming the path when it fails."""
    bgr = cv2.cvtColor(draw_overlay(image_rgb, result), cv2.COLOR_RGB2BGR)
    if not cv2.imwrite(path, bgr):
        raise OSError(f"cannot write overlay image {path}")
