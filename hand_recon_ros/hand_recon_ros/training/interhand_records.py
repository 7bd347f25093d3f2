"""TrainRecords from an InterHand2.6M-format folder (evaluation/interhand.py reads the annotations).

``path`` holds ``*_data.json``, ``*_camera.json`` and ``*_joint_3d.json``; image file names are relative to
``images_dir`` (InterHand2.6M's own layout: annotations/train + images/train) or to ``path`` when it is not
given. 2D labels are the projections of the 3D joints (confidence 1 where the joint is valid, else 0).
MANO_NeuralAnnot meshes are not read yet: the vertex loss needs them (see docs/training.md).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hand_recon_ros.evaluation.interhand import InterHandFormatError, load_interhand
from hand_recon_ros.training.records import DataError, HandLabel, TrainRecord, check_hand


def _label(side: str, keypoints: np.ndarray, joints: np.ndarray, valid: np.ndarray) -> HandLabel:
    """A label whose invalid joints are zeroed (their coordinates are arbitrary and may not even project)."""
    keypoints, joints = np.array(keypoints, np.float64), np.array(joints, np.float64)
    keypoints[~valid], joints[~valid] = 0.0, 0.0
    return HandLabel(side, keypoints, valid.astype(np.float64), joints, valid)


def interhand_records(path: str | Path | None, images_dir: str | Path | None = None) -> list[TrainRecord]:
    """One record per annotated image with at least one hand; DataError naming the file on a bad folder."""
    folder = Path(path or "")
    try:
        samples = load_interhand(folder)
    except InterHandFormatError as exc:
        raise DataError(str(exc)) from exc
    root = Path(images_dir) if images_dir else folder
    records = []
    for sample in samples:
        if not sample.hands:
            continue
        image = root / sample.image_path.relative_to(folder)
        where = f"{folder}: image {image.name}"
        hands = [check_hand(_label(h.side, h.keypoints_2d, h.joints, h.valid), where) for h in sample.hands]
        records.append(TrainRecord(where, hands, image_path=image))
    if not records:
        raise DataError(f"{folder}: no annotated hand in the InterHand2.6M files")
    missing = [r.image_path for r in records if not r.image_path.is_file()]
    if missing:
        raise DataError(f"{folder}: {len(missing)} image(s) missing, first {missing[0]} (is data.images_dir right?)")
    return records
