"""The JSONL output contract of `hand-recon run`: one JSON object per frame (documented in docs/pipeline.md)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

import numpy as np

from hand_recon_ros.pipeline.types import FrameResult, HandResult

FLOAT_DECIMALS = 5


def _num(value: float) -> float | None:
    """A JSON-safe float (NaN/inf → None), rounded to keep lines short."""
    value = float(value)
    return round(value, FLOAT_DECIMALS) if math.isfinite(value) else None


def _array(values: np.ndarray | None) -> list[Any] | None:
    if values is None:
        return None
    return np.round(np.asarray(values, dtype=np.float64), FLOAT_DECIMALS).tolist()


def hand_to_dict(hand: HandResult) -> dict[str, Any]:
    """One hand as the JSON object of the contract."""
    det = hand.detection
    grasp = hand.grasp
    pose = None
    if hand.wrist_position is not None:
        pose = {
            "position": _array(hand.wrist_position),
            "quaternion_xyzw": _array(hand.wrist_quaternion) if hand.wrist_quaternion is not None else None,
        }
    return {
        "side": det.side,
        "score": _num(det.score),
        "side_score": _num(det.side_score),
        "track_id": int(det.track_id),
        "keypoints_2d": _array(det.keypoints_2d),
        "joints_3d": _array(hand.joints_3d),
        "joint_confidence": _array(hand.joint_confidence),
        "world_landmarks": _array(det.world_landmarks),
        "wrist_pose": pose,
        "fit_residual_px": _num(hand.fit_residual_px),
        "placement": hand.placement,
        "hand_length_m": _num(hand.hand_length_m),
        # grasp signals (pipeline/grasp_signals.py), as in Hand.msg: null distances and "open" without 3D
        "pinch_distance_m": None if grasp is None else _num(grasp.pinch_distance_m),
        "grasp_strength": None if grasp is None else _num(grasp.grasp_strength),
        "grasp_state": "open" if grasp is None else grasp.state.name.lower(),
    }


def frame_to_dict(source: str, frame: int, result: FrameResult) -> dict[str, Any]:
    """One processed frame as the JSON object of the contract."""
    return {
        "source": source,
        "frame": int(frame),
        "width": int(result.width),
        "height": int(result.height),
        "intrinsics": "given" if result.intrinsics_known else "assumed",
        "hands": [hand_to_dict(h) for h in result.hands],
        "timing_ms": {k: round(float(v), 3) for k, v in result.timing_ms.items()},
        "depth": result.depth,
    }


def error_to_dict(source: str, frame: int, error: str) -> dict[str, Any]:
    """A frame that could not be processed: same keys as a good frame where known, plus ``error``."""
    return {"source": source, "frame": int(frame), "error": error, "hands": []}


class JsonlWriter:
    """Writes one JSON object per line to a file (or a given text stream); a context manager."""

    def __init__(self, target: str | Path | TextIO) -> None:
        if isinstance(target, (str, Path)):
            path = Path(target)
            path.parent.mkdir(parents=True, exist_ok=True)
            self._stream: TextIO = path.open("w", encoding="utf-8")
            self._owned = True
        else:
            self._stream, self._owned = target, False

    def write(self, record: dict[str, Any]) -> None:
        """Append one record as a line and flush (so a tail -f or a crash keeps every finished frame)."""
        self._stream.write(json.dumps(record, separators=(",", ":")) + "\n")
        self._stream.flush()

    def close(self) -> None:
        """Close the file if this writer opened it."""
        if self._owned:
            self._stream.close()

    def __enter__(self) -> JsonlWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
