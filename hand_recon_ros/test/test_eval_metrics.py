"""Evaluation metrics in both conventions (wrist, no scaling; middle-MCP root with bone-length scaling)."""

from __future__ import annotations

import numpy as np
import pytest

from hand_recon_ros.evaluation.metrics import (
    CONVENTIONS,
    HandEval,
    TwoHandEvaluator,
    format_table,
    mpjpe_mm,
    mpvpe_mm,
    mrrpe_mm,
    pa_mpjpe_mm,
)
from hand_recon_ros.models.hand_kinematics import BONE_LENGTH_PRIOR_M, pose_joints, random_angles

WRIST, SCALED = CONVENTIONS


def _hand(seed: int, side: str = "right", offset: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return pose_joints(np.eye(3), np.array([offset, 0.0, 0.5]), random_angles(rng), BONE_LENGTH_PRIOR_M, side)


def test_translation_and_scale_conventions() -> None:
    truth = _hand(0)
    shifted = truth + [0.1, -0.2, 0.3]
    assert mpjpe_mm(shifted, truth, None, WRIST) == pytest.approx(0.0, abs=1e-9)
    bigger = (truth - truth[0]) * 1.2 + truth[0]
    assert mpjpe_mm(bigger, truth, None, WRIST) > 5.0
    assert mpjpe_mm(bigger, truth, None, SCALED) == pytest.approx(0.0, abs=1e-9)  # rescaled by root bone length
    assert pa_mpjpe_mm(bigger, truth) == pytest.approx(0.0, abs=1e-6)


def test_root_choice_changes_the_number() -> None:
    truth = _hand(1)
    pred = truth.copy()
    pred[0] += [0.01, 0.0, 0.0]  # only the wrist is off by 10 mm
    assert mpjpe_mm(pred, truth, None, WRIST) == pytest.approx(10.0 * 20 / 21, rel=1e-6)  # the 20 others shift
    # middle-MCP root: mostly the wrist is wrong (its error also changes the root-bone scale a little)
    assert 10.0 / 21 <= mpjpe_mm(pred, truth, None, SCALED) < 1.0
    valid = np.ones(21, bool)
    valid[0] = False
    assert mpjpe_mm(pred, truth, valid, WRIST) == pytest.approx(10.0, rel=1e-6)


def test_mpvpe_and_mrrpe() -> None:
    truth_l, truth_r = _hand(2, "left", -0.1), _hand(3, "right", 0.1)
    verts = np.random.default_rng(0).normal(size=(50, 3)) * 0.03 + truth_r[0]
    assert mpvpe_mm(verts + 0.2, verts, truth_r + 0.2, truth_r, WRIST) == pytest.approx(0.0, abs=1e-9)
    pred_r = truth_r + [0.02, 0.0, 0.0]
    assert mrrpe_mm(truth_l, pred_r, truth_l, truth_r, WRIST) == pytest.approx(20.0, rel=1e-6)
    assert mrrpe_mm(truth_l, pred_r, truth_l, truth_r, SCALED) == pytest.approx(20.0, rel=1e-6)


def test_evaluator_reports_both_conventions() -> None:
    evaluator = TwoHandEvaluator()
    truth = {"left": HandEval(_hand(4, "left", -0.1)), "right": HandEval(_hand(5, "right", 0.1))}
    pred = {"left": HandEval(truth["left"].joints + 0.05), "right": HandEval(truth["right"].joints * 1.0)}
    evaluator.add("a.jpg", pred, truth)
    summary = evaluator.summary()
    assert summary["hands"] == 2
    wrist = summary["conventions"]["wrist"]
    assert wrist["mpjpe_mm"] == pytest.approx(0.0, abs=1e-6) and wrist["mpvpe_mm"] is None
    assert wrist["mrrpe_mm"] == pytest.approx(np.linalg.norm([50.0, 50.0, 50.0]), rel=1e-6)
    table = format_table(summary)
    assert "wrist" in table and "middle_mcp_scaled" in table and "IntagHand" in table


def test_eval_report_prints_both_conventions(tmp_path) -> None:
    """`hand-recon eval` reports the published conventions; its wrist MPJPE agrees with the existing column."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from test_eval import _synthetic_set

    from hand_recon_ros.evaluation.evaluate import evaluate, format_summary, make_lifters
    from hand_recon_ros.evaluation.interhand import load_interhand
    from hand_recon_ros.pipeline.types import HandDetection, RotatedRect

    rng = np.random.default_rng(5)
    _synthetic_set(tmp_path, rng)

    def detect(image, intrinsics, sample):
        return [HandDetection(side=h.side, score=0.9, side_score=0.9, keypoints_2d=h.keypoints_2d.astype(np.float32),
                              keypoints_z=np.zeros(21, np.float32),
                              world_landmarks=(h.joints - h.joints.mean(0)).astype(np.float32),
                              roi=RotatedRect(0, 0, 150, 150, 0.0), track_id=i) for i, h in enumerate(sample.hands)]

    report = evaluate(load_interhand(tmp_path), detect, make_lifters(["pnp"]))
    published = report["published_conventions"]["pnp"]
    assert published["hands"] == 7 and published["conventions"]["wrist"]["pairs"] == 3
    assert published["conventions"]["wrist"]["mpjpe_mm"] == pytest.approx(report["lifters"]["pnp"]["mpjpe_mm"]["mean"])
    assert published["pa_mpjpe_mm"] == pytest.approx(report["lifters"]["pnp"]["pa_mpjpe_mm"]["mean"])
    text = format_summary(report)
    assert "middle_mcp_scaled" in text and "wrist root, no scaling (DIR)" in text
