"""Landmark stage: rotated 224x224 crops of every hand ROI, ONE batched network call, back-projection to pixels."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hand_recon_ros.engines.base import Backend, BackendError
from hand_recon_ros.pipeline import prepost_kernels, solver_kernels
from hand_recon_ros.pipeline.roi import LANDMARK_INPUT_SIZE_PX, crop_roi
from hand_recon_ros.pipeline.types import RotatedRect

LANDMARKS_OUTPUT = "Identity"
PRESENCE_OUTPUT = "Identity_1"
HANDEDNESS_OUTPUT = "Identity_2"
WORLD_OUTPUT = "Identity_3"
# MediaPipe's TensorsToLandmarks option for the hand model: z is divided by this after x-like normalisation.
NORMALIZE_Z = 0.4
PIXEL_SCALE = np.float32(1.0 / 255.0)  # float32: a Python float would compute in float64


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

    def _warp(self, image_rgb: np.ndarray, rois: list[RotatedRect]) -> np.ndarray:
        """The rotated uint8 crops (N, 224, 224, 3) of the ROIs, in a kept buffer."""
        n = len(rois)
        if self._crops.shape[0] < n:
            self._crops = np.zeros((n, LANDMARK_INPUT_SIZE_PX, LANDMARK_INPUT_SIZE_PX, 3), np.uint8)
        for i, roi in enumerate(rois):
            crop_roi(image_rgb, roi, LANDMARK_INPUT_SIZE_PX, out=self._crops[i])
        return self._crops[:n]

    def crops(self, image_rgb: np.ndarray, rois: list[RotatedRect]) -> np.ndarray:
        """The network input (N, 224, 224, 3) float32 in [0, 1] for the given ROIs."""
        crops = self._warp(image_rgb, rois)
        batch = np.empty(crops.shape, np.float32)
        np.multiply(crops, PIXEL_SCALE, out=batch, casting="unsafe")
        return batch

    def _infer(self, image_rgb: np.ndarray, rois: list[RotatedRect]) -> dict[str, np.ndarray]:
        """The network outputs for the ROIs' crops: normalised straight into the backend's input buffer."""
        crops = self._warp(image_rgb, rois)
        if self.fixed_batch is None:
            return self.backend.run_filled(len(rois), lambda batch: np.multiply(crops, PIXEL_SCALE, out=batch,
                                                                                casting="unsafe"))
        if self.fixed_batch != 1:
            raise BackendError(f"landmark model has a fixed batch of {self.fixed_batch}; need 1 or dynamic")
        parts = [self.backend.run_filled(1, lambda batch, i=i: np.multiply(crops[i:i + 1], PIXEL_SCALE, out=batch,
                                                                           casting="unsafe"))
                 for i in range(len(rois))]
        return {k: np.concatenate([p[k] for p in parts], axis=0) for k in parts[0]}

    def estimate(self, image_rgb: np.ndarray, rois: list[RotatedRect]) -> list[LandmarkOutput]:
        """Landmarks, presence, handedness and world landmarks for each ROI (same order)."""
        if not rois:
            return []
        out = self._infer(image_rgb, rois)
        n = len(rois)
        raw = np.asarray(out[LANDMARKS_OUTPUT], np.float32).reshape(n, 21, 3)
        world = np.asarray(out[WORLD_OUTPUT], np.float32).reshape(n, 21, 3)
        presence = np.asarray(out[PRESENCE_OUTPUT], np.float32).reshape(n).tolist()
        right = np.asarray(out[HANDEDNESS_OUTPUT], np.float32).reshape(n).tolist()
        params = np.array([(r.cx, r.cy, r.width, r.height, r.rotation) for r in rois])
        if solver_kernels.enabled():
            keypoints, z_px, world_image = prepost_kernels.landmarks_to_image(
                np.ascontiguousarray(raw), np.ascontiguousarray(world), params, float(LANDMARK_INPUT_SIZE_PX),
                NORMALIZE_Z)
        else:
            keypoints, z_px, world_image = _landmarks_to_image(raw, world, params)
        return [LandmarkOutput(keypoints_2d=keypoints[i], keypoints_z=z_px[i], world_landmarks=world_image[i],
                               presence=presence[i], right_probability=right[i]) for i in range(n)]


def _landmarks_to_image(raw: np.ndarray, world: np.ndarray, params: np.ndarray
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keypoints (N, 21, 2) pixels, relative depth (N, 21) and world landmarks in image axes (N, 21, 3) float32
    for ROIs (N, 5) = cx, cy, width, height, rotation: the numpy reference of prepost_kernels.landmarks_to_image."""
    n = len(params)
    # Crop → image affine of every ROI at once: [u, v] ↦ A·[u, v] + o (roi.crop_to_image_matrix, batched).
    cos_r, sin_r = np.cos(params[:, 4]), np.sin(params[:, 4])
    sx, sy = params[:, 2] / LANDMARK_INPUT_SIZE_PX, params[:, 3] / LANDMARK_INPUT_SIZE_PX
    linear = np.stack([np.stack([cos_r * sx, -sin_r * sy], -1), np.stack([sin_r * sx, cos_r * sy], -1)], 1)
    offset = params[:, :2] - linear.sum(axis=2) * (LANDMARK_INPUT_SIZE_PX / 2.0)
    keypoints = (np.einsum("nij,nkj->nki", linear, raw[:, :, :2].astype(np.float64))
                 + offset[:, None]).astype(np.float32)
    z_px = (raw[:, :, 2] / np.float32(NORMALIZE_Z) * sx[:, None].astype(np.float32)).astype(np.float32)
    zeros, ones = np.zeros(n), np.ones(n)
    rot = np.stack([np.stack([cos_r, -sin_r, zeros], -1), np.stack([sin_r, cos_r, zeros], -1),
                    np.stack([zeros, zeros, ones], -1)], 1).astype(np.float32)
    return keypoints, z_px, np.matmul(world, rot.transpose(0, 2, 1)).astype(np.float32)
