"""TrainRecords from COCO-WholeBody annotations: 2D hand keypoints only (the weak mode's data).

Each annotation may carry ``lefthand_kpts`` / ``righthand_kpts`` (63 numbers: x, y, v for 21 joints in the
OpenPose hand order, which is Hand.msg's order), ``lefthand_valid`` / ``righthand_valid`` and boxes. A joint
counts when v > 0 (confidence 1), a hand when its ``*_valid`` flag is true and it has at least
MIN_VISIBLE_JOINTS labelled joints. Image files are ``images_dir / file_name``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from hand_recon_ros.skeleton import NUM_JOINTS
from hand_recon_ros.training.records import DataError, HandLabel, TrainRecord, check_hand

MIN_VISIBLE_JOINTS = 6


def coco_wholebody_records(path: str | Path | None, images_dir: str | Path | None = None) -> list[TrainRecord]:
    """One record per annotated person with a usable hand; DataError naming the file and field otherwise."""
    path = Path(path or "")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: cannot read COCO-WholeBody JSON ({exc})") from exc
    if not isinstance(data, dict) or "images" not in data or "annotations" not in data:
        raise DataError(f"{path}: not COCO-WholeBody (needs 'images' and 'annotations')")
    root = Path(images_dir) if images_dir else path.parent
    images = {img["id"]: img for img in data["images"]}
    records = []
    for k, ann in enumerate(data["annotations"]):
        where = f"{path}: annotations[{k}]"
        hands = []
        for side in ("left", "right"):
            if not ann.get(f"{side}hand_valid", False):
                continue
            raw = ann.get(f"{side}hand_kpts")
            try:
                kpts = np.asarray(raw, np.float64).reshape(NUM_JOINTS, 3)
            except (TypeError, ValueError) as exc:
                raise DataError(f"{where}.{side}hand_kpts: expected 63 numbers ({exc})") from exc
            visible = kpts[:, 2] > 0
            if visible.sum() < MIN_VISIBLE_JOINTS:
                continue
            hands.append(check_hand(HandLabel(side, kpts[:, :2], visible.astype(np.float64)),
                                    f"{where}.{side}hand_kpts"))
        if not hands:
            continue
        image = images.get(ann.get("image_id"))
        if image is None:
            raise DataError(f"{where}.image_id: {ann.get('image_id')!r} is not in 'images'")
        records.append(TrainRecord(where, hands, image_path=root / image["file_name"]))
    if not records:
        raise DataError(f"{path}: no annotation with a valid hand")
    missing = sorted({r.image_path for r in records if not r.image_path.is_file()})
    if missing:
        raise DataError(f"{path}: {len(missing)} image(s) missing, first {missing[0]} (is data.images_dir right?)")
    return records
