"""The pseudo-label file (``hand-recon pseudo-label`` output): per frame, each hand's 2D keypoints, per-joint
confidence, side, box and camera-frame 3D, from the default pipeline.

Format (JSON): ``{"format": "hand_recon_pseudo_labels", "version": 1, "min_score", "frames": [{"image"
(path relative to the labels file), "source", "frame", "width", "height", "intrinsics" [fx, fy, cx, cy],
"intrinsics_known", "hands": [{"side", "score", "box" [x0, y0, x1, y1] px, "keypoints_2d" [[u, v] ×21] px,
"joint_confidence" [×21], "joints_3d" [[x, y, z] ×21] metres camera optical frame, or null}]}]}``.
Joint order as in Hand.msg. The pipeline's 3D joints double as the residual mode's prior joints.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from hand_recon_ros.training.records import DataError, HandLabel, TrainRecord, check_hand

FORMAT_NAME = "hand_recon_pseudo_labels"
FORMAT_VERSION = 1


def hand_entry(side: str, score: float, keypoints_2d: np.ndarray, confidence: np.ndarray,
               joints_3d: np.ndarray | None) -> dict[str, Any]:
    """One hand of a frame entry (box = the keypoints' bounding box)."""
    kp = np.asarray(keypoints_2d, np.float64)
    return {"side": side, "score": float(score), "box": [*map(float, kp.min(0)), *map(float, kp.max(0))],
            "keypoints_2d": kp.round(3).tolist(), "joint_confidence": np.asarray(confidence, float).round(4).tolist(),
            "joints_3d": None if joints_3d is None else np.asarray(joints_3d, np.float64).round(5).tolist()}


def write_labels(path: Path, frames: list[dict[str, Any]], min_score: float) -> None:
    """Write the labels file (to a temporary name first, so a failed run leaves no half-written file)."""
    payload = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "min_score": min_score, "frames": frames}
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload), encoding="utf-8")
    tmp.replace(path)


def _field(entry: dict, key: str, where: str) -> Any:
    if key not in entry:
        raise DataError(f"{where}: missing field {key!r}")
    return entry[key]


def pseudo_label_records(path: str | Path) -> list[TrainRecord]:
    """TrainRecords of a labels file (frames without hands skipped); DataError naming the file and the field."""
    path = Path(path)
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: cannot read pseudo-labels ({exc})") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT_NAME:
        raise DataError(f"{path}: field 'format' is not {FORMAT_NAME!r} (not a pseudo-label file)")
    if payload.get("version") != FORMAT_VERSION:
        raise DataError(f"{path}: field 'version' is {payload.get('version')!r}, this reader knows {FORMAT_VERSION}")
    frames = payload.get("frames")
    if not isinstance(frames, list):
        raise DataError(f"{path}: field 'frames' must be a list")
    records = []
    for i, frame in enumerate(frames):
        where = f"{path}: frames[{i}]"
        if not isinstance(frame, dict):
            raise DataError(f"{where}: expected an object")
        image = path.parent / str(_field(frame, "image", where))
        if not image.is_file():
            raise DataError(f"{where}.image: no such file {image}")
        hands = []
        for j, hand in enumerate(_field(frame, "hands", where)):
            hwhere = f"{where}.hands[{j}]"
            joints = hand.get("joints_3d")
            try:
                joints = None if joints is None else np.asarray(joints, np.float64)
                label = HandLabel(str(_field(hand, "side", hwhere)),
                                  np.asarray(_field(hand, "keypoints_2d", hwhere), np.float64),
                                  np.asarray(_field(hand, "joint_confidence", hwhere), np.float64),
                                  joints, prior_joints=joints)
            except (TypeError, ValueError) as exc:
                raise DataError(f"{hwhere}: not numeric ({exc})") from exc
            hands.append(check_hand(label, hwhere, {"confidence": "joint_confidence"}))
        if len({h.side for h in hands}) != len(hands):
            raise DataError(f"{where}.hands: two hands with the same side")
        if hands:
            records.append(TrainRecord(f"{path}#{i}", hands, image_path=image))
    if not records:
        raise DataError(f"{path}: no frame with a hand (nothing to train on)")
    return records
