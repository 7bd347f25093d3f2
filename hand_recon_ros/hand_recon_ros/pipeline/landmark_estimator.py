"""Landmark stage: rotated 224x224 crops of every hand ROI, ONE batched network call, back-projection to pixels."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hand_recon_ros.engines.base import Backend, BackendError
from hand_recon_ros.pipeline.roi import LANDMARK_INPUT_SIZE_PX, crop_roi, crop_to_image_matrix
from hand_recon_ros.pipeline.types import RotatedRect

LANDMARKS_OUTPUT = "Identity"
PRESENCE_OUTPUT = "Identity_1"
HANDEDNESS_OUTPUT = "Identity_2"
WORLD_OUTPUT = "Identity_3"
# MediaPipe's TensorsToLandmarks option for the hand model: z is divided by this after x-like normalisation.
NORMALIZE_Z = 0.4
PIXEL_SCALE = 1.0 / 255.0


@dataclass
class LandmarkOutput:
    """Network results for one ROI, already in image terms.

    keypoints_2d (21, 2) image pixels; keypoints_z (21,) relative depth in image pixels (x scale);
    world_landmarks (21, 3) metres, rotated into the image axes; presence in [0, 1];
    right_probability: the network's handedness output, the probability that this is a RIGHT hand as seen in an
    un-mirrored camera image (MediaPipe labels this same number "Left": its labels assume a mirrored selfie
    image). Checked on shared/data/woman_hands.jpg and the InterHand2.6M photos (test_hand_pipeline.py).
    """

    keypoints_2d: np.ndarray
    keypoints_z: np.ndarray
    world_landmarks: np.ndarray
    presence: float
    right_probability: float


class LandmarkEstimator:
    """Runs the landmark network on all ROIs of a frame in one call (loops only if the model has a fixed batch)."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend.load()
        if len(self.backend.inputs) != 1:
            raise BackendError(f"landmark model must have one input, has {[s.name for s in self.backend.inputs]}")
        spec = self.backend.inputs[0]
        self.input_name = spec.name
        outputs = {s.name for s in self.backend.outputs}
        needed = {LANDMARKS_OUTPUT, PRESENCE_OUTPUT, HANDEDNESS_OUTPUT, WORLD_OUTPUT}
        if not needed <= outputs:
            raise BackendError(f"landmark model outputs {sorted(outputs)} lack {sorted(needed - outputs)}")
        batch = spec.shape[0] if spec.shape else None
        self.fixed_batch = batch if isinstance(batch, int) and batch > 0 else None
        self._crops = np.zeros((0, LANDMARK_INPUT_SIZE_PX, LANDMARK_INPUT_SIZE_PX, 3), np.uint8)

    def crops(self, image_rgb: np.ndarray, rois: list[RotatedRect]) -> np.ndarray:
        """The network input (N, 224, 224, 3) float32 in [0, 1] for the given ROIs."""
        n = len(rois)
        if self._crops.shape[0] < n:
            self._crops = np.zeros((n, LANDMARK_INPUT_SIZE_PX, LANDMARK_INPUT_SIZE_PX, 3), np.uint8)
        for i, roi in enumerate(rois):
            crop_roi(image_rgb, roi, LANDMARK_INPUT_SIZE_PX, out=self._crops[i])
        batch = np.empty(self._crops[:n].shape, np.float32)
        np.multiply(self._crops[:n], np.float32(PIXEL_SCALE), out=batch, casting="unsafe")
        return batch

    def _infer(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        if self.fixed_batch is None:
            return self.backend.run({self.input_name: batch})
        if self.fixed_batch != 1:
            raise BackendError(f"landmark model has a fixed batch of {self.fixed_batch}; need 1 or dynamic")
        parts = [self.backend.run({self.input_name: batch[i:i + 1]}) for i in range(batch.shape[0])]
        return {k: np.concatenate([p[k] for p in parts], axis=0) for k in parts[0]}

    def estimate(self, image_rgb: np.ndarray, rois: list[RotatedRect]) -> list[LandmarkOutput]:
        """Landmarks, presence, handedness and world landmarks for each ROI (same order)."""
        if not rois:
            return []
        out = self._infer(self.crops(image_rgb, rois))
        n = len(rois)
        raw = np.asarray(out[LANDMARKS_OUTPUT], np.float32).reshape(n, 21, 3)
        world = np.asarray(out[WORLD_OUTPUT], np.float32).reshape(n, 21, 3)
        presence = np.asarray(out[PRESENCE_OUTPUT], np.float32).reshape(n)
        right = np.asarray(out[HANDEDNESS_OUTPUT], np.float32).reshape(n)
        results = []
        for i, roi in enumerate(rois):
            matrix = crop_to_image_matrix(roi, LANDMARK_INPUT_SIZE_PX)
            keypoints = raw[i, :, :2].astype(np.float64) @ matrix[:, :2].T + matrix[:, 2]
            z_px = raw[i, :, 2] / NORMALIZE_Z * (roi.width / LANDMARK_INPUT_SIZE_PX)
            cos_r, sin_r = np.cos(roi.rotation), np.sin(roi.rotation)
            rot = np.array([[cos_r, -sin_r, 0.0], [sin_r, cos_r, 0.0], [0.0, 0.0, 1.0]], np.float32)
            results.append(LandmarkOutput(
                keypoints_2d=keypoints.astype(np.float32),
                keypoints_z=z_px.astype(np.float32),
                world_landmarks=(world[i] @ rot.T).astype(np.float32),
                presence=float(presence[i]),
                right_probability=float(right[i]),
            ))
        return results
