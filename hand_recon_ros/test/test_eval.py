"""Evaluation: InterHand2.6M-format reading/writing, metrics, matching, and the eval flow with real lifters."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from hand_recon_ros.evaluation import hand_scores as em
from hand_recon_ros.evaluation.evaluate import evaluate, make_lifters
from hand_recon_ros.evaluation.interhand import InterHandFormatError, load_interhand, write_synthetic_interhand
from hand_recon_ros.models import hand_kinematics as hk
from hand_recon_ros.pipeline.types import HandDetection, RotatedRect

FOCAL = (1200.0, 1210.0)
PRINCPT = (170.0, 250.0)


def _synthetic_set(folder, rng: np.random.Generator, n: int = 4) -> list[dict]:
    """Two-hand (or one-hand) poses in world millimetres seen by a rotated, translated camera."""
    entries = []
    camrot = Rotation.from_rotvec([0.1, -0.2, 0.05]).as_matrix()
    campos = np.array([100.0, -50.0, -900.0])
    facing = np.array([[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -1.0]])
    for i in range(n):
        entry = {"file_name": f"img{i}.jpg", "width": 334, "height": 512, "focal": FOCAL, "princpt": PRINCPT,
                 "campos": campos, "camrot": camrot}
        for side, dx in (("left", -0.06), ("right", 0.06)):
            if i == n - 1 and side == "left":
                continue  # last image: right hand only
            wrist_cam = np.array([dx, 0.05, 1.0 + 0.05 * i])
            rot_cam = Rotation.from_rotvec(rng.normal(0, 0.2, 3)).as_matrix() @ facing
            cam = hk.pose_joints(rot_cam, wrist_cam, hk.random_angles(rng, spread=0.5), hk.BONE_LENGTH_PRIOR_M, side)
            entry[side] = (cam * 1000.0) @ camrot + campos  # X_world = R^T X_cam + campos
        entries.append(entry)
        cv2.imwrite(str(folder / entry["file_name"]), np.zeros((512, 334, 3), np.uint8))
    write_synthetic_interhand(folder, entries)
    return entries


def test_loader_reads_the_format_back(tmp_path):
    entries = _synthetic_set(tmp_path, np.random.default_rng(0))
    samples = load_interhand(tmp_path)
    assert [s.image_path.name for s in samples] == [e["file_name"] for e in entries]
    first = samples[0]
    assert (first.intrinsics.fx, first.intrinsics.cy) == (FOCAL[0], PRINCPT[1])
    assert first.hand_type == "interacting" and samples[-1].hand("left") is None
    right = first.hand("right")
    world = np.asarray(entries[0]["right"])
    expected = (world - entries[0]["campos"]) @ entries[0]["camrot"].T / 1000.0
    np.testing.assert_allclose(right.joints, expected, atol=1e-9)
    np.testing.assert_allclose(right.keypoints_2d[:, 0], FOCAL[0] * expected[:, 0] / expected[:, 2] + PRINCPT[0])
    assert right.valid.all()


def test_loader_names_missing_files(tmp_path):
    with pytest.raises(InterHandFormatError, match="_data.json"):
        load_interhand(tmp_path)
    with pytest.raises(InterHandFormatError, match="not found"):
        load_interhand(tmp_path / "absent")


def test_metrics_on_known_errors():
    rng = np.random.default_rng(1)
    truth = hk.pose_joints(np.eye(3), np.array([0.0, 0.0, 0.8]), hk.random_angles(rng), hk.BONE_LENGTH_PRIOR_M,
                           "right")
    moved = truth + np.array([0.01, 0.0, 0.0])  # pure translation: MPJPE 0, wrist error 10 mm
    gt = em.GroundTruthHand("right", truth, truth[:, :2] * 1000, np.ones(21, bool))
    score = em.hand_score("x", "test", moved, truth[:, :2] * 1000, gt, 1.0)
    assert score.mpjpe_mm == pytest.approx(0.0, abs=1e-9)
    assert score.wrist_error_mm == pytest.approx(10.0)
    rotated = 1.2 * (truth - truth.mean(0)) @ Rotation.from_rotvec([0.3, 0.2, 0.1]).as_matrix().T + 0.5
    assert em.hand_score("x", "t", rotated, truth[:, :2], gt, 0.0).pa_mpjpe_mm == pytest.approx(0.0, abs=1e-6)
    assert em.mrrpe_mm(truth, truth - 0.1, truth, truth - 0.1) == pytest.approx(0.0)
    assert em.mrrpe_mm(truth + 0.003, truth, truth, truth) == pytest.approx(np.sqrt(3) * 3.0)


def test_matching_uses_side_and_proximity():
    kp = np.stack([np.linspace(100, 200, 21), np.linspace(100, 300, 21)], 1)
    truth = [em.GroundTruthHand("right", np.zeros((21, 3)), kp, np.ones(21, bool)),
             em.GroundTruthHand("left", np.zeros((21, 3)), kp + 150, np.ones(21, bool))]
    matches = em.match_hands(["left", "right", "right"], [kp + 152, kp + 400, kp + 3], truth)
    assert matches == {0: 2, 1: 0}
    assert em.match_hands(["left"], [kp], truth[:1]) == {}  # wrong side never matches


def test_evaluate_scores_both_lifters_on_the_same_detections(tmp_path):
    rng = np.random.default_rng(2)
    _synthetic_set(tmp_path, rng)
    samples = load_interhand(tmp_path)

    def detect(image, intrinsics, sample):
        """Noisy keypoints and a shape prior with a wrong scale (what the landmark network gives)."""
        return [HandDetection(side=h.side, score=0.9, side_score=0.9,
                              keypoints_2d=(h.keypoints_2d + rng.normal(0, 1.5, (21, 2))).astype(np.float32),
                              keypoints_z=np.zeros(21, np.float32),
                              world_landmarks=((h.joints - h.joints.mean(0)) * 0.85
                                               + rng.normal(0, 0.004, (21, 3))).astype(np.float32),
                              roi=RotatedRect(0, 0, 150, 150, 0.0), track_id=i) for i, h in enumerate(sample.hands)]

    report = evaluate(samples, detect, make_lifters(["pnp", "refine"]))
    pnp, refine = report["lifters"]["pnp"], report["lifters"]["refine"]
    assert pnp["hands_annotated"] == 7 and pnp["detection_rate"] == 1.0
    assert refine["mrrpe_mm"]["n"] == 3
    # PnP trusts the shrunken shape and lands too close; the refinement's bone-length prior fixes the scale.
    assert refine["wrist_error_mm"]["median"] < 0.5 * pnp["wrist_error_mm"]["median"]
    assert refine["mpjpe_mm"]["mean"] < 15.0
    assert len(report["hands"]) == 14
    json.dumps(report)


def test_eval_command_on_real_photos(interhand_dir, model_paths, tmp_path):
    from hand_recon_ros.cli import main

    out = tmp_path / "report.json"
    assert main(["eval", "--format", "interhand", str(interhand_dir), "--rois", "ground-truth", "-o", str(out)]) == 0
    report = json.loads(out.read_text())
    for name in ("pnp", "refine"):
        summary = report["lifters"][name]
        assert summary["hands_annotated"] == 6 and summary["hands_matched"] == 6
        assert summary["mpjpe_mm"]["n"] == 6 and summary["mrrpe_mm"]["n"] == 2
