"""Dataset-independent labels: one image and its hands in original pixels, before cropping and augmentation.

Every loader (InterHand2.6M, COCO-WholeBody, pseudo-labels, the toy set) produces ``TrainRecord``s; the
``HandCropDataset`` turns them into network inputs. Sides are "left"/"right" (network side 0 / 1); joints in
the order of Hand.msg; 3D joints in metres in the camera optical frame (x right, y down, z forward).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from hand_recon_ros.skeleton import NUM_JOINTS, SIDES


class DataError(ValueError):
    """A dataset file or entry that cannot be used; the message names the file and the field."""


@dataclass
class HandLabel:
    """One labelled hand: keypoints (21, 2) px, confidence (21,) in [0, 1], optional joints (21, 3) m + validity."""

    side: str
    keypoints_2d: np.ndarray
    confidence: np.ndarray
    joints_3d: np.ndarray | None = None
    joints_valid: np.ndarray | None = None
    prior_joints: np.ndarray | None = None


@dataclass
class TrainRecord:
    """One image (a file, or pixels in memory for generated sets) with its labelled hands."""

    source: str
    hands: list[HandLabel] = field(default_factory=list)
    image_path: Path | None = None
    image: np.ndarray | None = None

    def load_image(self) -> np.ndarray:
        """RGB uint8 (H, W, 3); DataError naming the file when it cannot be read."""
        if self.image is not None:
            return self.image
        bgr = cv2.imread(str(self.image_path), cv2.IMREAD_COLOR) if self.image_path else None
        if bgr is None:
            raise DataError(f"{self.image_path}: cannot read image (missing or not an image) [{self.source}]")
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def check_hand(hand: HandLabel, where: str, field_names: dict[str, str] | None = None) -> HandLabel:
    """``hand`` with arrays of the right shapes and finite values; DataError naming ``where`` and the field.

    ``field_names`` maps our field names to the file's (e.g. confidence → joint_confidence) for the message.
    """
    names = field_names or {}
    if hand.side not in SIDES:
        raise DataError(f"{where}: side {hand.side!r} is not one of {list(SIDES)}")
    arrays = {"keypoints_2d": (hand.keypoints_2d, (NUM_JOINTS, 2)), "confidence": (hand.confidence, (NUM_JOINTS,))}
    if hand.joints_3d is not None:
        arrays["joints_3d"] = (hand.joints_3d, (NUM_JOINTS, 3))
    for name, (value, shape) in arrays.items():
        array = np.asarray(value, dtype=np.float64)
        if array.shape != shape:
            raise DataError(f"{where}: field {names.get(name, name)} has shape {array.shape}, expected {shape}")
        if not np.isfinite(array).all():
            bad = int(np.argwhere(~np.isfinite(array))[0][0])
            raise DataError(f"{where}: field {names.get(name, name)} has a non-finite value (NaN/inf) at joint {bad}")
    confidence = np.asarray(hand.confidence, dtype=np.float64)
    if (confidence < 0).any() or (confidence > 1).any():
        raise DataError(f"{where}: field {names.get('confidence', 'confidence')} has values outside [0, 1]")
    if hand.prior_joints is not None:
        prior = np.asarray(hand.prior_joints, np.float64)
        if prior.shape != (NUM_JOINTS, 3) or not np.isfinite(prior).all():
            raise DataError(f"{where}: field prior_joints must be (21, 3) finite values")
    valid = np.ones(NUM_JOINTS, bool) if hand.joints_valid is None else np.asarray(hand.joints_valid, bool)
    return HandLabel(hand.side, np.asarray(hand.keypoints_2d, np.float64), confidence,
                     None if hand.joints_3d is None else np.asarray(hand.joints_3d, np.float64),
                     None if hand.joints_3d is None else valid,
                     None if hand.prior_joints is None else np.asarray(hand.prior_joints, np.float64))
