"""Palm detection stage: letterbox the whole image to 192x192, run the palm network, decode to palms in pixels."""

from __future__ import annotations

import cv2
import numpy as np

from hand_recon_ros.engines.base import Backend, BackendError
from hand_recon_ros.pipeline import solver_kernels
from hand_recon_ros.pipeline.anchors import PALM_INPUT_SIZE_PX, generate_anchors
from hand_recon_ros.pipeline.palm_decode import (
    Letterbox,
    PalmDetection,
    compiled_palms,
    decode_palms,
    unletterbox,
    weighted_nms,
)

PALM_BOXES_OUTPUT = "Identity"
PALM_SCORES_OUTPUT = "Identity_1"
PIXEL_SCALE = np.float32(1.0 / 255.0)  # float32: a Python float would make numpy compute in float64 (4x slower)


class PalmDetector:
    """Runs the palm network through a loaded Backend; ``detect`` returns palms in image pixels, best first."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend.load()
        if len(self.backend.inputs) != 1:
            raise BackendError(f"palm model must have one input, has {[s.name for s in self.backend.inputs]}")
        self.input_name = self.backend.inputs[0].name
        outputs = {s.name for s in self.backend.outputs}
        if not {PALM_BOXES_OUTPUT, PALM_SCORES_OUTPUT} <= outputs:
            raise BackendError(f"palm model outputs {sorted(outputs)} lack {PALM_BOXES_OUTPUT}/{PALM_SCORES_OUTPUT}")
        self.anchors = generate_anchors(PALM_INPUT_SIZE_PX)
        self._tensor = np.zeros((1, PALM_INPUT_SIZE_PX, PALM_INPUT_SIZE_PX, 3), np.float32)
        self._resized = np.zeros((0, 0, 3), np.uint8)
        self._fit: tuple[int, int, int, int] | None = None  # (new_w, new_h, x0, y0) the tensor's border is for

    def _resize(self, image_rgb: np.ndarray) -> tuple[Letterbox, tuple[int, int, int, int]]:
        """Resize the image into the kept uint8 buffer; the letterbox and (new_w, new_h, x0, y0) of the fit."""
        height, width = image_rgb.shape[:2]
        scale = PALM_INPUT_SIZE_PX / max(width, height)
        new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
        x0, y0 = (PALM_INPUT_SIZE_PX - new_w) // 2, (PALM_INPUT_SIZE_PX - new_h) // 2
        box = Letterbox(new_w / width, float(x0), float(y0))  # exact scale/offset of the pasted pixels
        fit = (new_w, new_h, x0, y0)
        if self._fit != fit:
            self._tensor[:] = 0.0
            self._resized = np.empty((new_h, new_w, 3), np.uint8)
            self._fit = fit
        cv2.resize(image_rgb, (new_w, new_h), dst=self._resized, interpolation=cv2.INTER_LINEAR)
        return box, fit

    def _write(self, tensor: np.ndarray, fit: tuple[int, int, int, int], border: bool) -> None:
        """Normalise the resized image into tensor (1, 192, 192, 3) float32, and its zero border when asked."""
        new_w, new_h, x0, y0 = fit
        image = tensor[0]
        if border:
            image[:y0] = 0.0
            image[y0 + new_h:] = 0.0
            image[y0:y0 + new_h, :x0] = 0.0
            image[y0:y0 + new_h, x0 + new_w:] = 0.0
        np.multiply(self._resized, PIXEL_SCALE, out=image[y0:y0 + new_h, x0:x0 + new_w], casting="unsafe")

    def preprocess(self, image_rgb: np.ndarray) -> tuple[np.ndarray, Letterbox]:
        """Letterboxed network input (1, 192, 192, 3) float32 in [0, 1] (zero border) and the fit used.

        The resized image is written into a kept uint8 buffer and normalised straight into a kept input array;
        its zero border is rewritten only when the image size (so the letterbox) changes.
        """
        box, fit = self._resize(image_rgb)
        self._write(self._tensor, fit, border=False)
        return self._tensor, box

    def detect(self, image_rgb: np.ndarray, min_score: float, max_count: int | None = None) -> list[PalmDetection]:
        """Palms with score >= min_score after weighted NMS, in image pixel coordinates, best first.

        The letterboxed input is written straight into the backend's input buffer (Backend.run_filled), border
        included: a runtime may reuse that buffer between calls.
        """
        box, fit = self._resize(image_rgb)
        outputs = self.backend.run_filled(1, lambda tensor: self._write(tensor, fit, border=True))
        if solver_kernels.enabled():
            return compiled_palms(outputs[PALM_BOXES_OUTPUT], outputs[PALM_SCORES_OUTPUT], self.anchors, min_score,
                                  box, max_count)
        boxes, scores = decode_palms(outputs[PALM_BOXES_OUTPUT], outputs[PALM_SCORES_OUTPUT], self.anchors, min_score)
        boxes, scores = weighted_nms(boxes, scores, max_count=max_count)
        return unletterbox(boxes, scores, box)
