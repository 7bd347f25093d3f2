"""InterHand2.6M annotation reader (images + camera + 3D joints) and a writer of synthetic sets in that format.

Format (``{prefix}_data.json``, ``{prefix}_camera.json``, ``{prefix}_joint_3d.json`` next to the images):
COCO-like images/annotations (capture, camera, frame_idx, joint_valid 42×1, hand_type); per capture and camera
``campos`` (mm, camera centre), ``camrot`` (3×3), ``focal``, ``princpt``; per capture and frame ``world_coord``
(42×3 mm: right hand 0–20 then left 21–41, each tip→base per finger, thumb first, wrist last). Camera
coordinates are ``R·(X_world − campos)``; pixels by the pinhole model. Loaded joints are in metres, camera
optical frame, in the project's 21-joint order.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hand_recon_ros.pipeline.types import CameraIntrinsics
from hand_recon_ros.skeleton import INTERHAND_TO_OURS

MM_PER_M = 1000.0
# First index of each hand in InterHand2.6M's 42 joints.
INTERHAND_OFFSET: dict[str, int] = {"right": 0, "left": 21}


class InterHandFormatError(ValueError):
    """An InterHand2.6M folder or file that does not follow the format; the message names file and entry."""


@dataclass
class GroundTruthHand:
    """One annotated hand: joints (21, 3) metres camera frame, their pixels (21, 2), validity (21,) bool."""

    side: str
    joints: np.ndarray
    keypoints_2d: np.ndarray
    valid: np.ndarray


@dataclass
class InterHandSample:
    """One image with its intrinsics and annotated hands."""

    image_path: Path
    intrinsics: CameraIntrinsics
    hands: list[GroundTruthHand] = field(default_factory=list)
    hand_type: str = ""

    def hand(self, side: str) -> GroundTruthHand | None:
        """The annotated ``side`` hand, or None."""
        return next((h for h in self.hands if h.side == side), None)


def _find(folder: Path, suffix: str) -> Path:
    """The single ``*{suffix}`` file in ``folder``."""
    matches = sorted(folder.glob(f"*{suffix}"))
    if len(matches) != 1:
        raise InterHandFormatError(f"expected exactly one *{suffix} in {folder}, found {[m.name for m in matches]}")
    return matches[0]


def _load_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InterHandFormatError(f"{path}: cannot read JSON ({exc})") from exc


def load_interhand(folder: str | Path) -> list[InterHandSample]:
    """Every image of an InterHand2.6M-format folder with its intrinsics and ground-truth hands."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InterHandFormatError(f"InterHand2.6M folder not found: {folder}")
    data_path = _find(folder, "_data.json")
    data, cameras = _load_json(data_path), _load_json(_find(folder, "_camera.json"))
    joints_3d = _load_json(_find(folder, "_joint_3d.json"))
    annotations = {a["image_id"]: a for a in data.get("annotations", [])}
    samples = []
    for image in data.get("images", []):
        try:
            capture, camera, frame = str(image["capture"]), str(image["camera"]), str(image["frame_idx"])
            cam = cameras[capture]
            rot = np.asarray(cam["camrot"][camera], dtype=np.float64).reshape(3, 3)
            pos = np.asarray(cam["campos"][camera], dtype=np.float64).reshape(3)
            focal = np.asarray(cam["focal"][camera], dtype=np.float64).reshape(2)
            princpt = np.asarray(cam["princpt"][camera], dtype=np.float64).reshape(2)
            frame_data = joints_3d[capture][frame]
            world = np.asarray(frame_data["world_coord"], dtype=np.float64).reshape(42, 3)
            valid = np.asarray(frame_data["joint_valid"], dtype=bool).reshape(42)
            annotation = annotations.get(image["id"], {})
            if "joint_valid" in annotation:
                valid &= np.asarray(annotation["joint_valid"], dtype=bool).reshape(42)
        except (KeyError, ValueError, TypeError) as exc:
            raise InterHandFormatError(f"{data_path}: image {image.get('file_name', image)}: {exc!r}") from exc
        intrinsics = CameraIntrinsics(float(focal[0]), float(focal[1]), float(princpt[0]), float(princpt[1]),
                                      int(image["width"]), int(image["height"]))
        cam_mm = (world - pos) @ rot.T
        sample = InterHandSample(folder / image["file_name"], intrinsics,
                                 hand_type=str(annotation.get("hand_type", frame_data.get("hand_type", ""))))
        for side, offset in INTERHAND_OFFSET.items():
            order = [offset + i for i in INTERHAND_TO_OURS]
            hand_valid = valid[order]
            if not hand_valid.any():
                continue
            joints = cam_mm[order] / MM_PER_M
            uv = np.stack([focal[0] * joints[:, 0] / joints[:, 2] + princpt[0],
                           focal[1] * joints[:, 1] / joints[:, 2] + princpt[1]], axis=-1)
            sample.hands.append(GroundTruthHand(side, joints, uv, hand_valid))
        samples.append(sample)
    return samples


def write_synthetic_interhand(folder: str | Path, images: list[dict], prefix: str = "test_interhand2.6m") -> None:
    """Write annotation files in InterHand2.6M's format (for tests).

    Each entry of ``images``: file_name, width, height, focal (2,), princpt (2,), campos (3,) mm, camrot (3, 3),
    and ``right`` / ``left``: world joints (21, 3) in mm in the project's order (absent hand: key missing).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    data = {"images": [], "annotations": []}
    cameras: dict[str, dict] = {}
    joints: dict[str, dict] = {}
    for i, entry in enumerate(images):
        capture, camera, frame = str(i), str(400000 + i), str(1000 + i)
        world = np.zeros((42, 3))
        valid = np.zeros(42, dtype=bool)
        for side, offset in INTERHAND_OFFSET.items():
            if side in entry:
                order = [offset + k for k in INTERHAND_TO_OURS]
                world[order] = np.asarray(entry[side], dtype=np.float64)
                valid[order] = True
        hand_type = "interacting" if valid.all() else ("right" if valid[:21].any() else "left")
        data["images"].append({"id": i, "file_name": entry["file_name"], "width": entry["width"],
                               "height": entry["height"], "capture": int(capture), "camera": camera,
                               "frame_idx": int(frame)})
        data["annotations"].append({"id": i, "image_id": i, "joint_valid": [[int(v)] for v in valid],
                                    "hand_type": hand_type, "hand_type_valid": 1})
        cameras[capture] = {key: {camera: np.asarray(entry[key], dtype=float).tolist()}
                            for key in ("campos", "camrot", "focal", "princpt")}
        joints[capture] = {frame: {"world_coord": world.tolist(), "joint_valid": [[bool(v)] for v in valid],
                                   "hand_type": hand_type, "hand_type_valid": True}}
    (folder / f"{prefix}_data.json").write_text(json.dumps(data), encoding="utf-8")
    (folder / f"{prefix}_camera.json").write_text(json.dumps(cameras), encoding="utf-8")
    (folder / f"{prefix}_joint_3d.json").write_text(json.dumps(joints), encoding="utf-8")
