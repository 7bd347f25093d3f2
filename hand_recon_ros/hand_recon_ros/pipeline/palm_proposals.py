"""Proposal source "palm": weak palm-detector boxes from a second, normalised look at the frame and its tiles.

The frame's own palm pass (MediaPipe's pre-processing: bilinear resize to 192 px, no gain) misses hands in dim
or noisy frames and small or close-up hands. When a hand is missing, the palm detector looks again at a
normalised copy: area-averaged down-sampling (a 1280-px frame shrinks 6.7x, so bilinear sampling keeps almost all
of the sensor noise while area averaging removes most of it) and a contrast stretch from the 1st to the 99.5th
percentile (a dim frame fills the range again); once at the whole frame and once per tile (squares of the
image's short side, so hands look up to long/short times larger). Its boxes from PALM_MIN_SCORE up, merged
across looks, are the candidate hand ROIs the landmark network then judges (roi_proposals.propose_hands).
Measured with ``benchmarks/bench_proposals.py`` (docs/pipeline.md): on darkened and noisy frames of the shared
video where the frame's own pass finds nothing, these looks find the hands the grid finds, with 3 palm calls and
~4 landmark crops instead of the grid's ~40 crops.
"""

from __future__ import annotations

import cv2
import numpy as np

from hand_recon_ros.pipeline.anchors import PALM_INPUT_SIZE_PX
from hand_recon_ros.pipeline.palm_detector import PalmDetector
from hand_recon_ros.pipeline.roi import palm_to_roi, roi_iou
from hand_recon_ros.pipeline.types import RotatedRect

# Weakest palm box that becomes a candidate (the frame's own pass keeps min_detection_score, 0.5).
PALM_MIN_SCORE = 0.02
# Most boxes kept per look (after the detector's weighted NMS).
PALM_BOXES_PER_LOOK = 4
# Contrast stretch of the normalised look: these percentiles of its pixel values map to 0 and 255.
STRETCH_LOW_PERCENT = 1.0
STRETCH_HIGH_PERCENT = 99.5
# Tiles: squares of the image's short side spread evenly along its long side, at most MAX_PALM_TILES (2 cover
# images up to 2:1, e.g. 4:3 and 16:9 cameras; a square image has none: the whole look sees it at the same scale).
MAX_PALM_TILES = 2
# A weak palm box's hand ROI is often tight or off-centre; the landmark network judges it enlarged this much.
PALM_ROI_SCALE = 1.4
# Two candidate ROIs overlapping at least this much are one candidate (the better-scored one is kept); a candidate
# overlapping a found hand's ROI this much is that hand again.
CANDIDATE_IOU = 0.5


def palm_tiles(width: int, height: int) -> list[tuple[int, int, int]]:
    """Square tiles (x0, y0, side) in pixels: MAX_PALM_TILES squares of the short side spread along the long side
    (covering it up to long = MAX_PALM_TILES x short); none for a square image."""
    short, long_ = min(width, height), max(width, height)
    if long_ <= short:
        return []
    centres = np.linspace(short / 2.0, long_ - short / 2.0, MAX_PALM_TILES)
    xs, ys = (centres, [height / 2.0]) if width >= height else ([width / 2.0], centres)
    return [(int(round(x - short / 2.0)), int(round(y - short / 2.0)), short) for y in ys for x in xs]


def shrink(image: np.ndarray, width: int, height: int) -> tuple[np.ndarray, float, float]:
    """The image averaged down to width x height (each at most the image's) and its x and y scales (look pixels
    per image pixel, pixel-centre convention), all by area averaging: exact halvings first (OpenCV's fast path: a
    1280x720 frame in 0.2 ms, where one 3.75x area resize takes 3.4 ms), then the last factor (< 2; 1.3 ms from
    640x360; bilinear there took 0.2 ms but missed one more noisy hand in benchmarks/bench_proposals.py)."""
    small, per_x, per_y = image, 1.0, 1.0  # image pixels per pixel of ``small``
    while small.shape[1] >= 2 * width and small.shape[0] >= 2 * height:
        h, w = small.shape[0] // 2, small.shape[1] // 2  # an odd last row/column is left out: scale stays 2
        small = cv2.resize(small[:2 * h, :2 * w], (w, h), interpolation=cv2.INTER_AREA)
        per_x, per_y = 2.0 * per_x, 2.0 * per_y
    if small.shape[:2] != (height, width):
        per_x, per_y = per_x * small.shape[1] / width, per_y * small.shape[0] / height
        small = cv2.resize(small, (width, height), interpolation=cv2.INTER_AREA)
    return small, 1.0 / per_x, 1.0 / per_y


def normalised_look(image_rgb: np.ndarray, scale: float) -> tuple[np.ndarray, float, float]:
    """The image averaged down to about ``scale`` (<= 1; ``shrink``) and contrast-stretched (STRETCH_*_PERCENT of
    its values to 0..255): a new uint8 array, and its x and y scales."""
    height, width = image_rgb.shape[:2]
    look, scale_x, scale_y = shrink(image_rgb, max(1, round(width * scale)), max(1, round(height * scale)))
    if look is image_rgb:
        look = look.copy()
    counts = np.cumsum(np.bincount(look[::2, ::2].reshape(-1), minlength=256))  # every 4th pixel is plenty
    low = int(np.searchsorted(counts, counts[-1] * STRETCH_LOW_PERCENT / 100.0))
    high = int(np.searchsorted(counts, counts[-1] * STRETCH_HIGH_PERCENT / 100.0))
    if high > low:
        lut = np.clip((np.arange(256, dtype=np.float32) - low) * (255.0 / (high - low)), 0, 255).astype(np.uint8)
        cv2.LUT(look, lut, dst=look)
    return look, scale_x, scale_y


def _look_rois(palm: PalmDetector, look: np.ndarray, scale_x: float, scale_y: float, x0: float, y0: float
               ) -> list[tuple[float, RotatedRect]]:
    """(score, hand ROI in image pixels, enlarged PALM_ROI_SCALE) of the palm boxes on one look at (scale_x,
    scale_y) whose pixel (0, 0) is centred on image point (x0 + 0.5 / scale_x - 0.5, ...)."""
    rois = []
    for detection in palm.detect(np.ascontiguousarray(look), PALM_MIN_SCORE, PALM_BOXES_PER_LOOK):
        roi = palm_to_roi(detection)  # pixel-index coordinates of the look (a square in the look)
        size = roi.width * PALM_ROI_SCALE / (0.5 * (scale_x + scale_y))
        rois.append((detection.score, RotatedRect((roi.cx + 0.5) / scale_x - 0.5 + x0,
                                                  (roi.cy + 0.5) / scale_y - 0.5 + y0, size, size, roi.rotation)))
    return rois


def palm_candidates(palm: PalmDetector, image_rgb: np.ndarray, found: list[RotatedRect], count: int
                    ) -> list[RotatedRect]:
    """The ``count`` best-scored candidate hand ROIs (image pixels) from the normalised looks, none of them a
    ``found`` hand's ROI again, no two the same (CANDIDATE_IOU)."""
    if count <= 0:
        return []
    height, width = image_rgb.shape[:2]
    boxes = palm_tiles(width, height)
    # One area-averaged, stretched copy at the tiles' palm-input scale; the whole-frame look is shrunk from it.
    tile_side = max((side for _, _, side in boxes), default=max(width, height))
    look, sx, sy = normalised_look(image_rgb, min(1.0, PALM_INPUT_SIZE_PX / tile_side))
    fit = min(1.0, PALM_INPUT_SIZE_PX / max(look.shape[:2]))
    whole, wx, wy = shrink(look, max(1, round(look.shape[1] * fit)), max(1, round(look.shape[0] * fit)))
    scored = _look_rois(palm, whole, sx * wx, sy * wy, 0.0, 0.0)
    for x0, y0, side in boxes:
        lx, ly = round(x0 * sx), round(y0 * sy)
        tile = look[ly:ly + max(1, round(side * sy)), lx:lx + max(1, round(side * sx))]
        scored += _look_rois(palm, tile, sx, sy, lx / sx, ly / sy)
    scored.sort(key=lambda item: -item[0])
    kept: list[RotatedRect] = []
    for _, roi in scored:
        if len(kept) >= count:
            break
        if all(roi_iou(roi, other) < CANDIDATE_IOU for other in kept + found):
            kept.append(roi)
    return kept
