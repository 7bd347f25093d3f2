"""MPJPE, MPVPE, MRRPE and PA-MPJPE of two-hand predictions, in both published conventions.

- ``wrist``: joints relative to the WRIST, no scale correction (DIR's convention).
- ``middle_mcp_scaled``: joints relative to the MIDDLE-finger MCP, the prediction scaled so that its
  wrist→middle-MCP bone has the ground truth's length (IntagHand's convention; DIR's README numbers too).

MPVPE uses the same root and scale as the joints of its hand. MRRPE is the error of the right-root minus
left-root vector (the convention's root joint, metric, never scaled). PA-MPJPE follows a similarity
(Procrustes) alignment and is the same in both conventions. Inputs are metres in the camera frame; outputs mm.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hand_recon_ros.evaluation.hand_scores import similarity_align
from hand_recon_ros.skeleton import MIDDLE_MCP, WRIST

MM_PER_M = 1000.0


@dataclass(frozen=True)
class Convention:
    """A root joint and whether the prediction is rescaled to the ground truth's root bone length."""

    name: str
    root: int
    scale_by_bone: bool
    description: str


CONVENTIONS: tuple[Convention, ...] = (
    Convention("wrist", WRIST, False, "wrist root, no scaling (DIR)"),
    Convention("middle_mcp_scaled", MIDDLE_MCP, True, "middle-MCP root, scaled to GT wrist-middle-MCP length "
               "(IntagHand)"),
)


def root_scale(pred: np.ndarray, truth: np.ndarray, convention: Convention) -> float:
    """Factor applied to the root-relative prediction (1 unless the convention rescales by bone length)."""
    if not convention.scale_by_bone:
        return 1.0
    pred_len = float(np.linalg.norm(pred[MIDDLE_MCP] - pred[WRIST]))
    return float(np.linalg.norm(truth[MIDDLE_MCP] - truth[WRIST])) / max(pred_len, 1e-9)


def aligned(pred: np.ndarray, truth: np.ndarray, convention: Convention, pred_points: np.ndarray | None = None,
            truth_points: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Root-relative (and, if the convention says so, rescaled) points: the joints, or the given vertices."""
    pred_points = pred if pred_points is None else pred_points
    truth_points = truth if truth_points is None else truth_points
    scale = root_scale(pred, truth, convention)
    return (pred_points - pred[convention.root]) * scale, truth_points - truth[convention.root]


def mpjpe_mm(pred: np.ndarray, truth: np.ndarray, valid: np.ndarray | None, convention: Convention) -> float:
    """Mean joint error (mm) of one hand (21, 3) over the valid joints, after root alignment."""
    valid = np.ones(len(truth), bool) if valid is None else np.asarray(valid, bool)
    p, t = aligned(np.asarray(pred, np.float64), np.asarray(truth, np.float64), convention)
    return float(np.linalg.norm(p[valid] - t[valid], axis=1).mean() * MM_PER_M)


def mpvpe_mm(pred_vertices: np.ndarray, truth_vertices: np.ndarray, pred_joints: np.ndarray,
             truth_joints: np.ndarray, convention: Convention) -> float:
    """Mean vertex error (mm) of one hand (V, 3), aligned with its joints' root (and scale)."""
    p, t = aligned(np.asarray(pred_joints, np.float64), np.asarray(truth_joints, np.float64), convention,
                   np.asarray(pred_vertices, np.float64), np.asarray(truth_vertices, np.float64))
    return float(np.linalg.norm(p - t, axis=1).mean() * MM_PER_M)


def pa_mpjpe_mm(pred: np.ndarray, truth: np.ndarray, valid: np.ndarray | None = None) -> float:
    """Mean joint error (mm) after the similarity transform that best maps the prediction onto the truth."""
    valid = np.ones(len(truth), bool) if valid is None else np.asarray(valid, bool)
    p, t = np.asarray(pred, np.float64)[valid], np.asarray(truth, np.float64)[valid]
    return float(np.linalg.norm(similarity_align(p, t) - t, axis=1).mean() * MM_PER_M)


def mrrpe_mm(pred_left: np.ndarray, pred_right: np.ndarray, truth_left: np.ndarray, truth_right: np.ndarray,
             convention: Convention) -> float:
    """Error (mm) of the right-root minus left-root vector (joints (21, 3) metres, camera frame)."""
    r = convention.root
    return float(np.linalg.norm((pred_right[r] - pred_left[r]) - (truth_right[r] - truth_left[r])) * MM_PER_M)


@dataclass
class HandEval:
    """One hand to score: joints (21, 3) metres camera frame, optional vertices (V, 3), validity (21,)."""

    joints: np.ndarray
    vertices: np.ndarray | None = None
    valid: np.ndarray | None = None


@dataclass
class TwoHandEvaluator:
    """Accumulates per-hand errors over images and summarises them per convention."""

    rows: list[dict] = field(default_factory=list)
    mrrpe: dict[str, list[float]] = field(default_factory=lambda: {c.name: [] for c in CONVENTIONS})

    def add(self, image: str, pred: dict[str, HandEval], truth: dict[str, HandEval]) -> None:
        """Score the sides present in both ``pred`` and ``truth`` ("left"/"right") of one image."""
        for side in ("left", "right"):
            if side not in pred or side not in truth:
                continue
            p, t = pred[side], truth[side]
            row = {"image": image, "side": side, "pa_mpjpe_mm": pa_mpjpe_mm(p.joints, t.joints, t.valid)}
            for c in CONVENTIONS:
                row[f"mpjpe_mm/{c.name}"] = mpjpe_mm(p.joints, t.joints, t.valid, c)
                if p.vertices is not None and t.vertices is not None:
                    row[f"mpvpe_mm/{c.name}"] = mpvpe_mm(p.vertices, t.vertices, p.joints, t.joints, c)
            self.rows.append(row)
        if all(s in pred and s in truth for s in ("left", "right")):
            for c in CONVENTIONS:
                self.mrrpe[c.name].append(mrrpe_mm(pred["left"].joints, pred["right"].joints,
                                                   truth["left"].joints, truth["right"].joints, c))

    def summary(self) -> dict:
        """Mean of every metric per convention (None where nothing was scored, e.g. MPVPE without vertices)."""
        def mean(values: list[float]) -> float | None:
            return float(np.mean(values)) if values else None

        out: dict = {"hands": len(self.rows), "pa_mpjpe_mm": mean([r["pa_mpjpe_mm"] for r in self.rows]),
                     "conventions": {}}
        for c in CONVENTIONS:
            out["conventions"][c.name] = {
                "description": c.description,
                "mpjpe_mm": mean([r[f"mpjpe_mm/{c.name}"] for r in self.rows]),
                "mpvpe_mm": mean([r[f"mpvpe_mm/{c.name}"] for r in self.rows if f"mpvpe_mm/{c.name}" in r]),
                "mrrpe_mm": mean(self.mrrpe[c.name]),
                "pairs": len(self.mrrpe[c.name]),
            }
        return out


def format_table(summary: dict) -> str:
    """Fixed-width table, one row per convention."""
    def num(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}"

    lines = [f"{'convention':<20}{'MPJPE':>8}{'MPVPE':>8}{'MRRPE':>8}{'PA-MPJPE':>10}  (mm, {summary['hands']} hands)"]
    for name, s in summary["conventions"].items():
        lines.append(f"{name:<20}{num(s['mpjpe_mm']):>8}{num(s['mpvpe_mm']):>8}{num(s['mrrpe_mm']):>8}"
                     f"{num(summary['pa_mpjpe_mm']):>10}  {s['description']}")
    return "\n".join(lines)
