"""Regions of interest: palm → hand ROI, landmarks → next ROI, rotated crops and back-projection.

Pixel convention everywhere: OpenCV pixel-index coordinates of the input image (centre of the top-left pixel
at 0, 0), so results line up with camera intrinsics. The crop is addressed in continuous coordinates
u, v in [0, size] (what the landmark network outputs). A RotatedRect's ``rotation`` turns the crop's +x axis
into the image direction (cos r, sin r) (image y down), as MediaPipe's NormalizedRect does.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from hand_recon_ros.pipeline.palm_decode import PalmDetection
from hand_recon_ros.pipeline.types import RotatedRect

# MediaPipe palm_detection → hand ROI (DetectionsToRects + RectTransformation options).
PALM_WRIST_KEYPOINT = 0
PALM_MIDDLE_MCP_KEYPOINT = 2
TARGET_ANGLE_RAD = math.pi / 2.0
PALM_ROI_SCALE = 2.6
PALM_ROI_SHIFT_Y = -0.5
# MediaPipe hand landmarks → next-frame ROI (HandLandmarksToRect + RectTransformation options).
LANDMARK_ROI_SUBSET: tuple[int, ...] = (0, 1, 2, 3, 5, 6, 9, 10, 13, 14, 17, 18)
LANDMARK_ROI_SCALE = 2.0
LANDMARK_ROI_SHIFT_Y = -0.1
LANDMARK_INPUT_SIZE_PX = 224


def normalize_radians(angle: float) -> float:
    """Angle wrapped to [-pi, pi)."""
    return angle - 2.0 * math.pi * math.floor((angle + math.pi) / (2.0 * math.pi))


def rotation_from_points(start: np.ndarray, end: np.ndarray) -> float:
    """ROI rotation that makes the start→end direction point up in the crop (MediaPipe's target angle 90°)."""
    return normalize_radians(TARGET_ANGLE_RAD - math.atan2(-(float(end[1]) - float(start[1])),
                                                           float(end[0]) - float(start[0])))


def transform_rect(rect: RotatedRect, scale: float, shift_y: float, shift_x: float = 0.0) -> RotatedRect:
    """Shift along the rect's own axes (fractions of its size), make it square on the long side, then scale."""
    cos_r, sin_r = math.cos(rect.rotation), math.sin(rect.rotation)
    dx, dy = rect.width * shift_x, rect.height * shift_y
    cx = rect.cx + dx * cos_r - dy * sin_r
    cy = rect.cy + dx * sin_r + dy * cos_r
    side = max(rect.width, rect.height)
    return RotatedRect(cx, cy, side * scale, side * scale, rect.rotation)


def palm_to_roi(palm: PalmDetection) -> RotatedRect:
    """The hand ROI MediaPipe crops for a palm detection (pixels): rotated wrist→middle MCP, 2.6x, shifted."""
    rotation = rotation_from_points(palm.keypoints[PALM_WRIST_KEYPOINT], palm.keypoints[PALM_MIDDLE_MCP_KEYPOINT])
    cx, cy, w, h = (float(v) for v in palm.box)
    return transform_rect(RotatedRect(cx, cy, w, h, rotation), PALM_ROI_SCALE, PALM_ROI_SHIFT_Y)


def landmarks_to_roi(keypoints_2d: np.ndarray) -> RotatedRect:
    """Next-frame ROI from 21 landmarks (pixels): palm-axis rotation, rotated bounding box, 2.0x, shifted."""
    kp = np.asarray(keypoints_2d, dtype=np.float64)
    if kp.shape != (21, 2):
        raise ValueError(f"landmarks_to_roi needs (21, 2) keypoints, got {kp.shape}")
    end = ((kp[5] + kp[13]) / 2.0 + kp[9]) / 2.0
    rotation = rotation_from_points(kp[0], end)
    pts = kp[list(LANDMARK_ROI_SUBSET)]
    centre = (pts.max(axis=0) + pts.min(axis=0)) / 2.0
    cos_r, sin_r = math.cos(rotation), math.sin(rotation)
    to_rect = np.array([[cos_r, sin_r], [-sin_r, cos_r]])  # rotation by -r
    projected = (pts - centre) @ to_rect.T
    lo, hi = projected.min(axis=0), projected.max(axis=0)
    mid = (lo + hi) / 2.0
    back = np.array([[cos_r, -sin_r], [sin_r, cos_r]]) @ mid + centre
    rect = RotatedRect(float(back[0]), float(back[1]), float(hi[0] - lo[0]), float(hi[1] - lo[1]), rotation)
    return transform_rect(rect, LANDMARK_ROI_SCALE, LANDMARK_ROI_SHIFT_Y)


def crop_to_image_matrix(roi: RotatedRect, size_px: int = LANDMARK_INPUT_SIZE_PX) -> np.ndarray:
    """2x3 affine (float64) taking continuous crop coordinates u, v in [0, size] to image pixel coordinates."""
    cos_r, sin_r = math.cos(roi.rotation), math.sin(roi.rotation)
    linear = np.array([[cos_r, -sin_r], [sin_r, cos_r]]) @ np.diag([roi.width / size_px, roi.height / size_px])
    offset = np.array([roi.cx, roi.cy]) - linear @ np.array([size_px / 2.0, size_px / 2.0])
    return np.hstack([linear, offset[:, None]])


def crop_points_to_image(points: np.ndarray, roi: RotatedRect, size_px: int = LANDMARK_INPUT_SIZE_PX) -> np.ndarray:
    """Map (N, 2) continuous crop coordinates to image pixels (N, 2) float32."""
    matrix = crop_to_image_matrix(roi, size_px)
    return (np.asarray(points, np.float64) @ matrix[:, :2].T + matrix[:, 2]).astype(np.float32)


def image_points_to_crop(points: np.ndarray, roi: RotatedRect, size_px: int = LANDMARK_INPUT_SIZE_PX) -> np.ndarray:
    """Inverse of crop_points_to_image: (N, 2) image pixels → continuous crop coordinates."""
    inverse = cv2.invertAffineTransform(crop_to_image_matrix(roi, size_px))
    return (np.asarray(points, np.float64) @ inverse[:, :2].T + inverse[:, 2]).astype(np.float32)


def crop_roi(image: np.ndarray, roi: RotatedRect, size_px: int = LANDMARK_INPUT_SIZE_PX,
             out: np.ndarray | None = None) -> np.ndarray:
    """The rotated ROI resampled to size x size (bilinear, replicated border), same dtype/channels as image."""
    matrix = crop_to_image_matrix(roi, size_px)
    # warpAffine samples dst pixel index j at crop coordinate j + 0.5.
    matrix[:, 2] += matrix[:, :2] @ np.array([0.5, 0.5])
    return cv2.warpAffine(image, matrix, (size_px, size_px), dst=out,
                          flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)


def roi_corners(roi: RotatedRect) -> np.ndarray:
    """The 4 corners (4, 2) float32 of a rotated rect in image pixels."""
    return crop_points_to_image(np.array([[0, 0], [1, 0], [1, 1], [0, 1]], np.float64), roi, 1)


def roi_iou(a: RotatedRect, b: RotatedRect) -> float:
    """Intersection over union of two rotated rects (OpenCV's rotated-rectangle intersection)."""
    area_a, area_b = a.width * a.height, b.width * b.height
    if area_a <= 0 or area_b <= 0:
        return 0.0
    rect_a = ((a.cx, a.cy), (a.width, a.height), math.degrees(a.rotation))
    rect_b = ((b.cx, b.cy), (b.width, b.height), math.degrees(b.rotation))
    kind, region = cv2.rotatedRectangleIntersection(rect_a, rect_b)
    if kind == cv2.INTERSECT_NONE or region is None or len(region) < 3:
        return 0.0
    inter = float(cv2.contourArea(cv2.convexHull(region)))
    return inter / max(area_a + area_b - inter, 1e-12)
