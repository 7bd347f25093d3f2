"""A generated toy set: two posed hands of the project's kinematic model, drawn as coloured skeletons.

Each image has known 2D keypoints and camera-frame 3D joints, so tests and ``tiny-synthetic`` runs can check
that training learns without any dataset on disk. Left and right hands use different colour palettes (so a
horizontal flip would change the label: the toy config turns flips off). ``write_toy_interhand`` stores the
same kind of images with annotations in InterHand2.6M's format for loader tests.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from hand_recon_ros.evaluation.interhand import write_synthetic_interhand
from hand_recon_ros.models.hand_kinematics import BONE_LENGTH_PRIOR_M, pose_joints, random_angles
from hand_recon_ros.skeleton import BONES, NUM_JOINTS
from hand_recon_ros.training.records import HandLabel, TrainRecord

TOY_IMAGE_PX = 160
TOY_FOCAL_FRACTION = 1.4  # focal length as a fraction of the image width
TOY_DEPTH_M = (0.45, 0.6)
# Per-joint colours (RGB) of each side: left warm, right cool, brightness rising towards the fingertips.
_RAMP = np.linspace(0.45, 1.0, NUM_JOINTS)[:, None]
PALETTE = {"left": (np.array([255, 120, 40]) * _RAMP).astype(int),
           "right": (np.array([40, 160, 255]) * _RAMP).astype(int)}


def _rotation(rng: np.random.Generator, max_rad: float) -> np.ndarray:
    """A random rotation up to ``max_rad`` about a random axis (Rodrigues)."""
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    vec = axis * rng.uniform(0, max_rad)
    return cv2.Rodrigues(vec)[0]


def toy_hands(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Camera-frame joints (21, 3) m of a left and a right hand side by side, fingers up, random poses."""
    base = np.array([[1, 0, 0], [0, -1, 0], [0, 0, -1]], np.float64)  # hand +y (distal) → camera −y (up)
    depth = rng.uniform(*TOY_DEPTH_M)
    hands = {}
    for side, x in (("left", -0.07), ("right", 0.07)):
        rotation = _rotation(rng, 0.5) @ base
        wrist = np.array([x + rng.uniform(-0.015, 0.015), 0.08 + rng.uniform(-0.015, 0.015), depth])
        angles = random_angles(rng, spread=0.5)
        hands[side] = pose_joints(rotation, wrist, angles, BONE_LENGTH_PRIOR_M, side)
    return hands


def render_toy(rng: np.random.Generator, size_px: int = TOY_IMAGE_PX) -> tuple[np.ndarray, dict, dict]:
    """(image RGB uint8, {side: joints (21, 3) m}, {side: keypoints (21, 2) px}) and intrinsics in the dict."""
    focal = TOY_FOCAL_FRACTION * size_px
    centre = (size_px - 1) / 2.0
    background = rng.uniform(20, 90, size=3)
    image = np.clip(background + rng.normal(0, 6, size=(size_px, size_px, 3)), 0, 255).astype(np.uint8)
    hands = toy_hands(rng)
    keypoints = {}
    for side, joints in hands.items():
        uv = focal * joints[:, :2] / joints[:, 2:3] + centre
        keypoints[side] = uv
        colours = PALETTE[side]
        for parent, child in BONES:
            p, c = (tuple(int(round(v)) for v in uv[j]) for j in (parent, child))
            cv2.line(image, p, c, tuple(int(v) for v in colours[child]), 2, cv2.LINE_AA)
        for j in range(NUM_JOINTS):
            cv2.circle(image, tuple(int(round(v)) for v in uv[j]), 2, tuple(int(v) for v in colours[j]), -1,
                       cv2.LINE_AA)
    return image, hands, keypoints


def toy_records(n: int, seed: int = 0, size_px: int = TOY_IMAGE_PX) -> list[TrainRecord]:
    """``n`` generated two-hand images with full 2D and 3D labels (deterministic in ``seed``)."""
    rng = np.random.default_rng(seed)
    records = []
    for i in range(n):
        image, joints, keypoints = render_toy(rng, size_px)
        labels = [HandLabel(side, keypoints[side], np.ones(NUM_JOINTS), joints[side], np.ones(NUM_JOINTS, bool))
                  for side in ("left", "right")]
        records.append(TrainRecord(f"toy:{seed}:{i}", labels, image=image))
    return records


def write_toy_interhand(folder: str | Path, n: int, seed: int = 0, size_px: int = TOY_IMAGE_PX) -> None:
    """Write ``n`` toy images (JPEG) with InterHand2.6M-format annotations into ``folder`` (for loader tests)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    focal = TOY_FOCAL_FRACTION * size_px
    entries = []
    for i in range(n):
        image, joints, _ = render_toy(rng, size_px)
        name = f"toy{i:04d}.jpg"
        cv2.imwrite(str(folder / name), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        entry = {"file_name": name, "width": size_px, "height": size_px, "focal": [focal, focal],
                 "princpt": [(size_px - 1) / 2.0] * 2, "campos": [0.0, 0.0, 0.0], "camrot": np.eye(3).tolist()}
        entry.update({side: joints[side] * 1000.0 for side in joints})
        entries.append(entry)
    write_synthetic_interhand(folder, entries)
