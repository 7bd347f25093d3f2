"""The ROS-free evaluation loop: every lifter scored on the same 2D detections of InterHand2.6M-format images.

The 2D stages run once per image (image mode, the dataset's intrinsics); each lifter (``pnp``: solvePnP of the
world landmarks; ``refine``: the decoupled refinement) lifts the same detections, so the 3D numbers differ only
by the lifter. ``hand-recon eval`` (commands/eval.py) builds the detector from its options and calls this.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from hand_recon_ros.evaluation import hand_scores as em
from hand_recon_ros.evaluation.interhand import InterHandSample
from hand_recon_ros.evaluation.metrics import HandEval, TwoHandEvaluator, format_table
from hand_recon_ros.pipeline.types import CameraIntrinsics, HandDetection

LIFTERS: tuple[str, ...] = ("pnp", "refine")
CONVENTIONS = ("MPJPE: wrist-aligned, no scale correction; PA-MPJPE: similarity Procrustes; MRRPE: right-minus-"
               "left wrist vector; wrist error: absolute camera-frame wrist distance; mm; 2D error in pixels")

Detector = Callable[[np.ndarray, CameraIntrinsics, InterHandSample], list[HandDetection]]


def read_rgb(path: Path) -> np.ndarray:
    """The image at ``path`` as RGB uint8, or OSError naming the file."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise OSError(f"cannot read image {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def make_lifters(names: list[str]) -> dict[str, Any]:
    """Fresh lifters by name (image mode: no temporal state)."""
    from hand_recon_ros.pipeline.pnp_lift import PnPLifter
    from hand_recon_ros.pipeline.refine_lift import RefinementLifter

    config = type("EvalLiftConfig", (), {"mode": "image", "smoothing": 0.0, "mano_dir": None})()
    table = {"pnp": PnPLifter, "refine": lambda: RefinementLifter(config)}
    return {name: table[name]() for name in names}


def evaluate(samples: list[InterHandSample], detect: Detector, lifters: dict[str, Any]) -> dict:
    """Score every lifter on the same detections; returns the report dict (summary per lifter, per-hand rows)."""
    rows: dict[str, list[em.HandScore]] = {name: [] for name in lifters}
    mrrpe: dict[str, list[float]] = {name: [] for name in lifters}
    lift_ms: dict[str, list[float]] = {name: [] for name in lifters}
    published = {name: TwoHandEvaluator() for name in lifters}  # both published conventions
    n_truth = n_matched = 0
    per_image = []
    for sample in samples:
        image = read_rgb(sample.image_path)
        detections = detect(image, sample.intrinsics, sample)
        matches = em.match_hands([d.side for d in detections], [d.keypoints_2d for d in detections], sample.hands)
        n_truth += len(sample.hands)
        n_matched += len(matches)
        per_image.append({"image": sample.image_path.name, "hands_annotated": len(sample.hands),
                          "detections": len(detections), "matched": len(matches)})
        for name, lifter in lifters.items():
            lifter.reset()
            start = time.perf_counter()
            results = lifter.lift(detections, sample.intrinsics, None, False) if detections else []
            lift_ms[name].append((time.perf_counter() - start) * 1000.0)
            placed = {}
            for g, p in matches.items():
                if results[p].joints_3d is None:
                    continue
                truth = sample.hands[g]
                rows[name].append(em.hand_score(sample.image_path.name, name, results[p].joints_3d,
                                                detections[p].keypoints_2d, truth, results[p].fit_residual_px))
                placed[truth.side] = (results[p].joints_3d, truth.joints, truth.valid)
            if "right" in placed and "left" in placed:
                mrrpe[name].append(em.mrrpe_mm(placed["right"][0], placed["left"][0], placed["right"][1],
                                               placed["left"][1]))
            published[name].add(sample.image_path.name, {side: HandEval(v[0]) for side, v in placed.items()},
                                {side: HandEval(v[1], valid=v[2]) for side, v in placed.items()})
    return {
        "conventions": CONVENTIONS,
        "images": per_image,
        "lifters": {name: {**em.summarise(rows[name], mrrpe[name], n_truth, n_matched),
                           "lift_ms_per_image": float(np.median(lift_ms[name])) if lift_ms[name] else float("nan")}
                    for name in lifters},
        "hands": [row.as_dict() for name in lifters for row in rows[name]],
        "published_conventions": {name: published[name].summary() for name in lifters},
    }


def format_summary(report: dict) -> str:
    """Fixed-width table: one row per lifter."""
    head = f"{'lifter':<8}{'det':>6}{'2D px':>8}{'MPJPE':>8}{'PA':>8}{'wrist med':>11}{'wrist mean':>12}{'MRRPE':>8}"
    lines = [report["conventions"], head]
    for name, s in report["lifters"].items():
        def pick(key: str, stat: str = "mean", s: dict = s) -> str:
            return f"{s[key][stat]:.1f}" if s[key].get("n") else "-"
        lines.append(f"{name:<8}{s['hands_matched']:>3}/{s['hands_annotated']:<2}{pick('error_2d_px'):>8}"
                     f"{pick('mpjpe_mm'):>8}{pick('pa_mpjpe_mm'):>8}{pick('wrist_error_mm', 'median'):>11}"
                     f"{pick('wrist_error_mm'):>12}{pick('mrrpe_mm'):>8}")
    for name, summary in report.get("published_conventions", {}).items():
        lines += [f"{name}: both published conventions", format_table(summary)]
    return "\n".join(lines)
