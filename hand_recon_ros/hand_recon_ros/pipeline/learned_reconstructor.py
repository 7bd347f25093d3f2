"""The learned two-hand network as a pipeline stage: one square crop around both hands in, 2D + 3D per side out.

It runs through the same Backend interface as the palm and landmark networks (create_backend on the file from
``hand-recon export``), on the square crop around every detected hand (from the detector/tracker), or on the
whole letterboxed image when no hand was detected (single-stage mode, not in residual mode). Its 2D keypoints
(mapped back to image pixels), wrist-relative 3D (as the world landmarks) and depth (as keypoints_z) replace the
landmark network's in each HandDetection, so the 3D placement and every output format stay as they are. In
residual mode the network's correction (refined minus prior joints) is added to the landmark network's values.
When two detections carry the same side, both take that side's output (assign_sides normally prevents it).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from hand_recon_ros.engines.base import Backend, BackendError
from hand_recon_ros.network.config import NetworkConfig
from hand_recon_ros.pipeline.roi import crop_roi, crop_to_image_matrix, landmarks_to_roi
from hand_recon_ros.pipeline.types import HandDetection, RotatedRect
from hand_recon_ros.skeleton import NUM_JOINTS, SIDES

IMAGES_INPUT = "images"
PRIOR_INPUT = "prior_joints"
NEEDED_OUTPUTS: frozenset[str] = frozenset({"joints_3d", "keypoints_2d", "presence", "camera"})
# The crop is the hands' keypoint bounding square grown by this factor (context around the fingers).
CROP_MARGIN = 1.4
# Smallest crop side, image pixels (a distant single hand still gets some context).
MIN_CROP_SIDE_PX = 64.0
PIXEL_SCALE = 1.0 / 255.0


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def square_crop(detections: list[HandDetection]) -> RotatedRect:
    """The axis-aligned square around every detection's keypoints, grown by CROP_MARGIN (image pixels)."""
    pts = np.concatenate([np.asarray(d.keypoints_2d, np.float64) for d in detections])
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    side = max(float((hi - lo).max()) * CROP_MARGIN, MIN_CROP_SIDE_PX)
    centre = (lo + hi) / 2.0
    return RotatedRect(float(centre[0]), float(centre[1]), side, side, 0.0)


def whole_image_crop(width: int, height: int) -> RotatedRect:
    """The square letterbox around the whole image (its long side)."""
    side = float(max(width, height))
    return RotatedRect(width / 2.0, height / 2.0, side, side, 0.0)


class LearnedReconstructor:
    """Runs an exported two-hand network (``hand-recon export``) on one crop per frame; see the module docstring."""

    def __init__(self, backend: Backend, cfg: NetworkConfig) -> None:
        self.backend = backend.load()
        self.cfg = cfg
        self.size = cfg.input_size
        inputs = [s.name for s in self.backend.inputs]
        expected = [IMAGES_INPUT, PRIOR_INPUT] if cfg.residual else [IMAGES_INPUT]
        if inputs != expected:
            raise BackendError(f"learned model {backend.model_path}: inputs {inputs}, expected {expected}")
        outputs = {s.name for s in self.backend.outputs}
        if not NEEDED_OUTPUTS <= outputs:
            raise BackendError(f"learned model {backend.model_path}: outputs lack {sorted(NEEDED_OUTPUTS - outputs)}")

    def warmup(self) -> None:
        """One run on blank input so the first frame does not pay the runtime's set-up."""
        self._run(np.zeros((self.size, self.size, 3), np.uint8), np.zeros((2, NUM_JOINTS, 3), np.float32))

    def _run(self, crop: np.ndarray, prior: np.ndarray) -> dict[str, np.ndarray]:
        images = (crop.astype(np.float32) * np.float32(PIXEL_SCALE)).transpose(2, 0, 1)[None]
        feeds = {IMAGES_INPUT: np.ascontiguousarray(images)}
        if self.cfg.residual:
            feeds[PRIOR_INPUT] = prior[None].astype(np.float32)
        return self.backend.run(feeds)

    def reconstruct(self, image_rgb: np.ndarray, detections: list[HandDetection], min_presence: float
                    ) -> list[HandDetection]:
        """Detections with the network's 2D/3D; with no detections, the hands it finds on the whole image."""
        if not detections and self.cfg.residual:
            return []  # residual mode refines the landmark pipeline's hands; with none there is nothing to refine
        height, width = image_rgb.shape[:2]
        roi = square_crop(detections) if detections else whole_image_crop(width, height)
        crop = crop_roi(image_rgb, roi, self.size)
        prior = np.zeros((2, NUM_JOINTS, 3), np.float32)
        for det in detections:
            world = np.asarray(det.world_landmarks, np.float32)
            prior[SIDES.index(det.side)] = world - world[0]
        out = self._run(crop, prior)
        matrix = crop_to_image_matrix(roi, self.size)
        image_px_per_crop_px = roi.width / self.size
        joints = np.asarray(out["joints_3d"], np.float32)[0]
        kp = np.asarray(out["keypoints_2d"], np.float64)[0]
        scale = np.asarray(out["camera"], np.float64)[0, :, 0] * image_px_per_crop_px  # image px per metre
        presence = _sigmoid(np.asarray(out["presence"], np.float64)[0])

        def placed(s: int) -> tuple[np.ndarray, np.ndarray]:
            keypoints = (kp[s] @ matrix[:, :2].T + matrix[:, 2]).astype(np.float32)
            return keypoints, (joints[s, :, 2] * scale[s]).astype(np.float32)

        if detections and self.cfg.residual:
            # Residual mode adds the refiner's correction to the landmark pipeline's own 2D, depth and 3D (an
            # untrained refiner's correction is exactly zero, so the output is then the landmark pipeline's).
            result = []
            for det in detections:
                s = SIDES.index(det.side)
                delta = joints[s] - prior[s]
                delta_px = (delta[:, :2].astype(np.float64) * scale[s]) @ (matrix[:, :2] / image_px_per_crop_px).T
                result.append(dataclasses.replace(
                    det, keypoints_2d=(det.keypoints_2d + delta_px).astype(np.float32),
                    keypoints_z=(det.keypoints_z + delta[:, 2] * scale[s]).astype(np.float32),
                    world_landmarks=(det.world_landmarks + delta).astype(np.float32)))
            return result
        if detections:
            result = []
            for det in detections:
                s = SIDES.index(det.side)
                keypoints, z_px = placed(s)
                result.append(dataclasses.replace(det, keypoints_2d=keypoints, keypoints_z=z_px,
                                                  world_landmarks=joints[s].copy()))
            return result
        found = []
        for s, side in enumerate(SIDES):
            if presence[s] < min_presence:
                continue
            keypoints, z_px = placed(s)
            found.append(HandDetection(side=side, score=float(presence[s]), side_score=1.0, keypoints_2d=keypoints,
                                       keypoints_z=z_px, world_landmarks=joints[s].copy(),
                                       roi=landmarks_to_roi(keypoints), track_id=-1))
        return found
