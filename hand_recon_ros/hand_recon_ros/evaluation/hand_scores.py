"""Hand-pose metrics: matching predictions to ground truth, 2D error, MPJPE (wrist-aligned), PA-MPJPE, MRRPE.

Conventions (stated in every report): MPJPE is root-relative with the WRIST as root (DIR's convention) and no
scale correction; PA-MPJPE after a similarity (rotation, translation, scale) Procrustes alignment; MRRPE is the
error of the right-wrist-minus-left-wrist vector; absolute wrist error is the camera-frame wrist distance.
All 3D errors in millimetres, 2D in pixels, over the ground truth's valid joints.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from hand_recon_ros.evaluation.interhand import GroundTruthHand

MM_PER_M = 1000.0
# A prediction matches a ground-truth hand of its side when its mean 2D keypoint distance is below this
# fraction of the ground-truth hand's 2D bounding-box diagonal.
MATCH_MAX_FRACTION = 0.5


@dataclass
class HandScore:
    """Errors of one matched hand under one lifter."""

    image: str
    side: str
    lifter: str
    error_2d_px: float
    mpjpe_mm: float
    pa_mpjpe_mm: float
    wrist_error_mm: float
    fit_residual_px: float

    def as_dict(self) -> dict:
        """Plain dict for JSON."""
        return asdict(self)


def similarity_align(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """``pred`` (N, 3) after the scale, rotation and translation that best map it onto ``truth`` (Umeyama)."""
    mu_p, mu_t = pred.mean(0), truth.mean(0)
    p, t = pred - mu_p, truth - mu_t
    u, s, vt = np.linalg.svd(t.T @ p)
    d = np.ones(3)
    d[2] = np.sign(np.linalg.det(u @ vt))
    rotation = (u * d) @ vt
    scale = float((s * d).sum() / max((p ** 2).sum(), 1e-18))
    return scale * p @ rotation.T + mu_t


def match_hands(pred_sides: list[str], pred_keypoints: list[np.ndarray], truth: list[GroundTruthHand]
                ) -> dict[int, int]:
    """Ground-truth index → prediction index, same side and nearest in 2D (greedy by distance, gated)."""
    candidates = []
    for g, hand in enumerate(truth):
        kp = hand.keypoints_2d[hand.valid]
        diag = float(np.linalg.norm(kp.max(0) - kp.min(0))) if len(kp) else 0.0
        for p, (side, keypoints) in enumerate(zip(pred_sides, pred_keypoints)):
            if side != hand.side:
                continue
            dist = float(np.linalg.norm(np.asarray(keypoints)[hand.valid] - kp, axis=1).mean())
            if dist <= MATCH_MAX_FRACTION * diag:
                candidates.append((dist, g, p))
    matches: dict[int, int] = {}
    used: set[int] = set()
    for _, g, p in sorted(candidates):
        if g not in matches and p not in used:
            matches[g] = p
            used.add(p)
    return matches


def hand_score(image: str, lifter: str, joints: np.ndarray, keypoints_2d: np.ndarray, truth: GroundTruthHand,
               fit_residual_px: float) -> HandScore:
    """Errors of one predicted hand (joints (21, 3) m, keypoints (21, 2) px) against its ground truth."""
    v = truth.valid
    joints = np.asarray(joints, dtype=np.float64)
    rel_pred, rel_true = joints - joints[0], truth.joints - truth.joints[0]
    mpjpe = np.linalg.norm(rel_pred[v] - rel_true[v], axis=1).mean() * MM_PER_M
    pa = np.linalg.norm(similarity_align(joints[v], truth.joints[v]) - truth.joints[v], axis=1).mean() * MM_PER_M
    err2d = np.linalg.norm(np.asarray(keypoints_2d)[v] - truth.keypoints_2d[v], axis=1).mean()
    wrist = np.linalg.norm(joints[0] - truth.joints[0]) * MM_PER_M if v[0] else float("nan")
    return HandScore(image, truth.side, lifter, float(err2d), float(mpjpe), float(pa), float(wrist),
                     float(fit_residual_px))


def mrrpe_mm(pred_right: np.ndarray, pred_left: np.ndarray, true_right: np.ndarray, true_left: np.ndarray) -> float:
    """Error (mm) of the right-minus-left wrist vector (joints (21, 3) metres)."""
    return float(np.linalg.norm((pred_right[0] - pred_left[0]) - (true_right[0] - true_left[0])) * MM_PER_M)


def _stats(values: list[float]) -> dict[str, float | int]:
    arr = np.asarray([v for v in values if np.isfinite(v)], dtype=np.float64)
    if arr.size == 0:
        return {"n": 0}
    return {"n": int(arr.size), "mean": float(arr.mean()), "median": float(np.median(arr)), "max": float(arr.max())}


def summarise(scores: list[HandScore], mrrpe: list[float], n_truth: int, n_detected: int) -> dict:
    """Detection rate and mean/median/max of every error over the matched hands of one lifter."""
    return {
        "hands_annotated": n_truth,
        "hands_matched": n_detected,
        "detection_rate": n_detected / n_truth if n_truth else float("nan"),
        "error_2d_px": _stats([s.error_2d_px for s in scores]),
        "mpjpe_mm": _stats([s.mpjpe_mm for s in scores]),
        "pa_mpjpe_mm": _stats([s.pa_mpjpe_mm for s in scores]),
        "wrist_error_mm": _stats([s.wrist_error_mm for s in scores]),
        "mrrpe_mm": _stats(mrrpe),
        "fit_residual_px": _stats([s.fit_residual_px for s in scores]),
    }
