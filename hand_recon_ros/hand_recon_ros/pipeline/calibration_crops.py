"""INT8 calibration samples for the landmark network: hand crops found by the FP32 palm detector, not whole images.

The landmark network only ever sees rotated hand crops, so its activation ranges must come from such crops. Each
calibration image gives, per detected hand, the palm-detector crop (the first frame of a track) and the crop
re-centred on the FP32 landmarks (what a tracked frame feeds the network).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

#: Detection and presence thresholds for the calibration crops (the pipeline's defaults).
CALIB_MIN_DETECTION_SCORE = 0.5
CALIB_MIN_PRESENCE_SCORE = 0.5
#: Generic ROI proposals per image added to the landmark calibration: the proposal search feeds the network
#: non-hand crops too, and their activation ranges must be covered or INT8 presence scores inflate on them.
CALIB_PROPOSAL_CROPS_PER_IMAGE = 4
_VARIANT = re.compile(r"^hand_landmark_(?P<variant>[a-z]+)\.")


def palm_onnx_beside(landmark_onnx: Path) -> Path:
    """The FP32 palm detector of the same variant in the same model folder (``ensure_models`` makes it if missing)."""
    from hand_recon_ros.engines.base import BackendError
    from hand_recon_ros.models.model_files import ensure_models

    match = _VARIANT.match(landmark_onnx.name)
    if not match:
        raise BackendError(f"INT8 calibration: cannot tell the model variant of {landmark_onnx.name}")
    return ensure_models(match["variant"], landmark_onnx.parent).palm_onnx


def landmark_calibration_samples(
    onnx_path: Path, images: list[np.ndarray], sample_shape: tuple[int, ...]
) -> np.ndarray:
    """(N, 224, 224, 3) float32 crops in [0, 1]: detector and landmark-centred crops of every hand found, and a few
    generic proposal crops per image (what the proposal search feeds the network)."""
    from hand_recon_ros.engines.onnxruntime_backend import OnnxRuntimeBackend
    from hand_recon_ros.pipeline.landmark_estimator import LandmarkEstimator
    from hand_recon_ros.pipeline.palm_detector import PalmDetector
    from hand_recon_ros.pipeline.roi import landmarks_to_roi, palm_to_roi
    from hand_recon_ros.pipeline.roi_proposals import grid_proposals

    palm = PalmDetector(OnnxRuntimeBackend(palm_onnx_beside(onnx_path)))
    landmarks = LandmarkEstimator(OnnxRuntimeBackend(onnx_path))
    crops: list[np.ndarray] = []
    try:
        for image in images:
            grid = grid_proposals(image.shape[1], image.shape[0])
            step = max(1, len(grid) // CALIB_PROPOSAL_CROPS_PER_IMAGE)
            crops.append(landmarks.crops(image, grid[::step][:CALIB_PROPOSAL_CROPS_PER_IMAGE]))
            rois = [palm_to_roi(p) for p in palm.detect(image, CALIB_MIN_DETECTION_SCORE)]
            if not rois:
                continue
            crops.append(landmarks.crops(image, rois))
            outputs = landmarks.estimate(image, rois)
            tracked = [landmarks_to_roi(o.keypoints_2d) for o in outputs if o.presence >= CALIB_MIN_PRESENCE_SCORE]
            if tracked:
                crops.append(landmarks.crops(image, tracked))
    finally:
        palm.backend.close()
        landmarks.backend.close()
    if not crops:
        return np.zeros((0, *sample_shape), np.float32)
    return np.ascontiguousarray(np.concatenate(crops, axis=0))
