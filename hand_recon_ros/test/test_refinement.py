"""Refinement on project-generated two-hand scenes: closer to the truth than its start, limits, bones, contact."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from hand_recon_ros.models import hand_kinematics as hk
from hand_recon_ros.pipeline import refinement as rf
from hand_recon_ros.pipeline import synthetic_scenes
from hand_recon_ros.pipeline.camera import project, undistort_keypoints
from hand_recon_ros.pipeline.refine_lift import DetectionError, RefinementLifter
from hand_recon_ros.pipeline.types import CameraIntrinsics, HandDetection, RotatedRect

INTR = CameraIntrinsics(600.0, 600.0, 320.0, 240.0, 640, 480)


def _root_relative_error_m(joints: np.ndarray, truth: np.ndarray) -> float:
    return float(np.linalg.norm((joints - joints[0]) - (truth - truth[0]), axis=1).mean())


def test_refined_hands_closer_to_truth_than_initial_placement():
    rng = np.random.default_rng(1)
    before, after, res_before, res_after = [], [], [], []
    for _ in range(12):
        scene = synthetic_scenes.synthetic_scene(rng, INTR)
        for fit, truth in zip(rf.refine(scene.observations, INTR), scene.truth):
            before.append(_root_relative_error_m(fit.initial_joints, truth))
            after.append(_root_relative_error_m(fit.joints, truth))
            res_before.append(fit.initial_residual_px.mean())
            res_after.append(fit.residual_px.mean())
    assert np.mean(after) < 0.8 * np.mean(before)
    assert np.mean(res_after) < 0.5 * np.mean(res_before)
    assert np.mean(res_after) < 4.0  # keypoint noise is 2 px


def test_limits_hold_and_bone_lengths_stay_fixed():
    rng = np.random.default_rng(2)
    scene = synthetic_scenes.synthetic_scene(rng, INTR, noise_px=6.0, world_noise_m=0.02)
    lengths = hk.BONE_LENGTH_PRIOR_M * 1.1
    for obs in scene.observations:
        obs.bone_lengths = lengths
    for fit in rf.refine(scene.observations, INTR):
        low, high = hk.JOINT_LIMITS_RAD[..., 0], hk.JOINT_LIMITS_RAD[..., 1]
        assert np.all(fit.angles >= low - 1e-9) and np.all(fit.angles <= high + 1e-9)
        np.testing.assert_allclose(hk.bone_lengths_of(fit.joints), lengths, atol=1e-9)


def _interpenetrating_scene(rng: np.random.Generator) -> synthetic_scenes.SyntheticScene:
    """Truth hands that do not touch, observed so that the initial placement makes them interpenetrate."""
    while True:
        scene = synthetic_scenes.synthetic_scene(rng, INTR, gap_m=0.035)
        if rf.penetration_depths(*scene.truth).max() == 0.0:
            fits = rf.refine(scene.observations, INTR, rf.RefineSettings(iterations=0))
            if rf.penetration_depths(fits[0].initial_joints, fits[1].initial_joints).max() > 0.003:
                return scene


def test_penetration_depth_drops():
    rng = np.random.default_rng(3)
    before, after = [], []
    for _ in range(4):
        scene = _interpenetrating_scene(rng)
        fits = rf.refine(scene.observations, INTR)
        before.append(rf.penetration_depths(fits[0].initial_joints, fits[1].initial_joints).max())
        after.append(rf.penetration_depths(fits[0].joints, fits[1].joints).max())
    assert np.mean(after) < 0.5 * np.mean(before)


def test_segment_distances_match_brute_force():
    rng = np.random.default_rng(4)
    p1, q1, p2, q2 = rng.normal(size=(4, 50, 3))
    s = np.linspace(0, 1, 201)
    a = p1[:, None] + (q1 - p1)[:, None] * s[None, :, None]
    b = p2[:, None] + (q2 - p2)[:, None] * s[None, :, None]
    brute = np.linalg.norm(a[:, :, None] - b[:, None], axis=-1).min(axis=(1, 2))
    np.testing.assert_allclose(rf.segment_distances(p1, q1, p2, q2), brute, atol=2e-2)
    assert np.all(rf.segment_distances(p1, q1, p2, q2) <= brute + 1e-9)


def test_bad_observation_named():
    rng = np.random.default_rng(5)
    scene = synthetic_scenes.synthetic_scene(rng, INTR)
    scene.observations[1].keypoints_px = np.zeros((20, 2))
    with pytest.raises(rf.RefinementError, match="hand 1: keypoints_px"):
        rf.refine(scene.observations, INTR)


def test_undistort_round_trip():
    intr = CameraIntrinsics(600.0, 600.0, 320.0, 240.0, 640, 480, (-0.2, 0.05, 0.001, -0.001, 0.0))
    rng = np.random.default_rng(6)
    points = np.c_[rng.uniform(-0.3, 0.3, 30), rng.uniform(-0.2, 0.2, 30), np.ones(30)]
    import cv2

    distorted, _ = cv2.projectPoints(points, np.zeros(3), np.zeros(3), intr.matrix, np.array(intr.distortion))
    np.testing.assert_allclose(undistort_keypoints(distorted.reshape(-1, 2), intr), project(points, intr), atol=0.05)
    np.testing.assert_array_equal(undistort_keypoints(distorted.reshape(-1, 2), INTR), distorted.reshape(-1, 2))


def _detections(scene: synthetic_scenes.SyntheticScene, track_ids: tuple[int, int] = (0, 1)) -> list[HandDetection]:
    dets = []
    for obs, tid in zip(scene.observations, track_ids):
        dets.append(HandDetection(
            side=obs.side, score=0.9, side_score=0.9, keypoints_2d=obs.keypoints_px.astype(np.float32),
            keypoints_z=np.zeros(21, np.float32), world_landmarks=obs.world.astype(np.float32),
            roi=RotatedRect(320, 240, 200, 200, 0.0), track_id=tid))
    return dets


def test_lifter_outputs_metric_hands_and_meshes():
    rng = np.random.default_rng(7)
    scene = synthetic_scenes.synthetic_scene(rng, INTR)
    lifter = RefinementLifter(None)
    results = lifter.lift(_detections(scene), INTR, 0.0, want_mesh=True)
    assert [r.side for r in results] == ["left", "right"]
    for result, truth in zip(results, scene.truth):
        assert result.joints_3d.shape == (21, 3) and result.joints_3d.dtype == np.float32
        assert np.linalg.norm(result.wrist_position - truth[0]) < 0.08
        assert _root_relative_error_m(result.joints_3d, truth) < 0.02
        assert 0.0 < result.fit_residual_px < 6.0
        assert result.wrist_quaternion.shape == (4,)
        assert np.all((result.joint_confidence > 0) & (result.joint_confidence <= 0.9 + 1e-6))
        assert result.mesh is not None and result.mesh.vertices.shape[1] == 3
    bad = _detections(scene)
    bad[0].world_landmarks = np.zeros((21, 2))
    with pytest.raises(DetectionError, match="detection 0 \\(left\\): world_landmarks"):
        lifter.lift(bad, INTR, 0.1, want_mesh=False)


def test_video_mode_smooths_and_adapts_bone_lengths():
    rng = np.random.default_rng(8)
    scene = synthetic_scenes.synthetic_scene(rng, INTR, noise_px=0.5)

    class Cfg:
        mode, smoothing = "video", 1.0

    lifter = RefinementLifter(Cfg())
    first = lifter.lift(_detections(scene), INTR, 0.0, False)
    jittered = _detections(scene)
    for det in jittered:
        det.keypoints_2d = det.keypoints_2d + np.float32(8.0)  # a sudden 8 px jump of every keypoint
    smooth = lifter.lift(jittered, INTR, 0.033, False)
    raw = RefinementLifter(None)
    raw.mode = "image"
    unsmoothed = raw.lift(jittered, INTR, 0.033, False)
    for a, s, u in zip(first, smooth, unsmoothed):
        assert np.linalg.norm(s.joints_3d - a.joints_3d) < np.linalg.norm(u.joints_3d - a.joints_3d)
    assert not np.allclose(lifter._tracks[0].bone_lengths, hk.BONE_LENGTH_PRIOR_M)
    lifter.reset()
    assert not lifter._tracks


def test_pipeline_with_refinement_on_a_real_photo(woman_hands_path, model_paths):
    import cv2

    from hand_recon_ros.pipeline.config import PipelineConfig
    from hand_recon_ros.pipeline.hand_pipeline import HandPipeline

    image = cv2.cvtColor(cv2.imread(str(woman_hands_path)), cv2.COLOR_BGR2RGB)
    pipeline = HandPipeline(PipelineConfig(mode="image", mesh=True))
    assert pipeline.lifter_name == "refinement"
    result = pipeline.process(image)
    assert sorted(h.side for h in result.hands) == ["left", "right"]
    for hand in result.hands:
        assert np.all(np.isfinite(hand.joints_3d)) and 0.2 < hand.joints_3d[0, 2] < 3.0
        assert hand.fit_residual_px < 10.0
        np.testing.assert_allclose(hk.bone_lengths_of(hand.joints_3d), hk.BONE_LENGTH_PRIOR_M, atol=1e-5)
        assert 300 <= len(hand.mesh.vertices) <= 1000
    joints = [h.joints_3d.astype(np.float64) for h in result.hands]
    assert rf.penetration_depths(*joints).max() < 0.002
    pipeline.close()


def test_analytic_joint_jacobian_matches_finite_differences():
    rng = np.random.default_rng(9)
    scene = synthetic_scenes.synthetic_scene(rng, INTR)
    batch, x, r_ref, _ = rf.initialise(scene.observations, INTR)
    x[:, rf.SPREAD] = 0.1
    x[:, rf.ANGLES:] += rng.normal(0.0, 0.2, x[:, rf.ANGLES:].shape)  # off the limits' edges, any pose
    joints, jac = rf._pose(batch, r_ref, x)
    step = 1e-6
    for p in range(rf.NUM_PARAMS):
        moved, turned = x.copy(), r_ref.copy()
        if p < 3:  # the rotation increment is folded into the reference rotation: r_ref·exp(δ)
            turned = r_ref @ Rotation.from_rotvec(np.eye(3)[p] * step).as_matrix()
        else:
            moved[:, p] += step
        numeric = (rf._pose(batch, turned, moved, jacobian=False)[0] - joints) / step
        np.testing.assert_allclose(jac[:, p], numeric, atol=2e-6, err_msg=f"parameter {p}")


def test_penetration_gradient_matches_finite_differences():
    rng = np.random.default_rng(10)
    p1, q1, p2, q2 = rng.normal(size=(4, 30, 3))
    dist, s, direction = rf._segment_closest(p1, q1, p2, q2)
    step = 1e-7
    for axis in range(3):
        shift = np.zeros(3)
        shift[axis] = step
        d_p = (rf.segment_distances(p1 + shift, q1, p2, q2) - dist) / step
        d_q = (rf.segment_distances(p1, q1 + shift, p2, q2) - dist) / step
        np.testing.assert_allclose(d_p, direction[:, axis] * (1.0 - s), atol=1e-4)
        np.testing.assert_allclose(d_q, direction[:, axis] * s, atol=1e-4)


def test_relative_depth_prior_recovers_shape_when_world_landmarks_are_flattened():
    # The network flattens foreshortened hands along the camera axis in its world landmarks; keypoints_z keeps
    # the depth ordering (with a per-hand scale error), so using it must bring the refined shape closer.
    rng = np.random.default_rng(11)
    with_prior, without = [], []
    for _ in range(15):
        scene = synthetic_scenes.synthetic_scene(rng, INTR, world_depth_scale=0.3)
        plain = [rf.HandObservation(o.side, o.keypoints_px, o.confidence, o.world) for o in scene.observations]
        for fit, bare, truth in zip(rf.refine(scene.observations, INTR), rf.refine(plain, INTR), scene.truth):
            with_prior.append(_root_relative_error_m(fit.joints, truth))
            without.append(_root_relative_error_m(bare.joints, truth))
    assert np.mean(with_prior) < 0.85 * np.mean(without)


def test_lifter_passes_relative_depth_only_when_present():
    rng = np.random.default_rng(12)
    scene = synthetic_scenes.synthetic_scene(rng, INTR, world_depth_scale=0.3)
    dets = _detections(scene)
    for det, obs in zip(dets, scene.observations):
        det.keypoints_z = obs.keypoints_z.astype(np.float32)
    as_lifted = [rf.HandObservation(d.side, d.keypoints_2d.astype(np.float64), np.full(21, d.score),
                                    d.world_landmarks.astype(np.float64), keypoints_z=d.keypoints_z.astype(np.float64))
                 for d in dets]
    used = RefinementLifter(None).lift(dets, INTR, 0.0, False)
    for result, fit in zip(used, rf.refine(as_lifted, INTR)):
        np.testing.assert_allclose(result.joints_3d, fit.joints, atol=1e-5)
    for det in dets:
        det.keypoints_z = np.zeros(21, np.float32)  # a backend without relative depth: prior off, not "all flat"
    plain = RefinementLifter(None).lift(dets, INTR, 0.0, False)
    bare = rf.refine([replace(o, keypoints_z=None) for o in as_lifted], INTR)
    for result, fit in zip(plain, bare):
        np.testing.assert_allclose(result.joints_3d, fit.joints, atol=1e-4)


def test_wrist_poses_batch_matches_single_and_flags_degenerate_hands():
    from hand_recon_ros.pipeline.wrist_pose import wrist_pose, wrist_poses

    rng = np.random.default_rng(13)
    scene = synthetic_scenes.synthetic_scene(rng, INTR)
    degenerate = np.zeros((21, 3))
    poses = wrist_poses([scene.truth[0], degenerate, scene.truth[1]], ["left", "right", "right"])
    for (position, quat), joints, side in zip([poses[0], poses[2]], scene.truth, ["left", "right"]):
        single_position, single_quat = wrist_pose(joints, side)
        np.testing.assert_allclose(position, single_position)
        np.testing.assert_allclose(quat, single_quat)
    np.testing.assert_array_equal(poses[1][0], np.zeros(3))
    assert poses[1][1] is None
    from hand_recon_ros.pipeline.wrist_pose import wrist_frame

    for (_, quat), joints, side in zip([poses[0], poses[2]], scene.truth, ["left", "right"]):
        assert quat[3] >= 0.0
        np.testing.assert_allclose(Rotation.from_quat(quat).as_matrix(), wrist_frame(joints, side), atol=1e-9)


def _sequence_errors(lifter: RefinementLifter, sequence: list[synthetic_scenes.SyntheticScene]) -> tuple[float, float]:
    """Mean root-relative error and mean joint jitter (second difference minus the truth's), metres."""
    joints, errors, jitter = [], [], []
    for k, scene in enumerate(sequence):
        results = lifter.lift(_detections(scene), INTR, k / 30.0, False)
        joints.append([r.joints_3d.astype(np.float64) for r in results])
        errors += [_root_relative_error_m(j, t) for j, t in zip(joints[-1], scene.truth)]
        if k >= 2:
            for h in range(2):
                accel = joints[k][h] - 2 * joints[k - 1][h] + joints[k - 2][h]
                truth = sequence[k].truth[h] - 2 * sequence[k - 1].truth[h] + sequence[k - 2].truth[h]
                jitter.append(np.linalg.norm(accel - truth, axis=1).mean())
    return float(np.mean(errors)), float(np.mean(jitter))


def test_synthetic_sequence_moves_smoothly_and_keeps_hands_apart():
    sequence = synthetic_scenes.synthetic_sequence(np.random.default_rng(3), INTR, 20, speed_m_s=0.3)
    assert len(sequence) == 20 and all(len(s.truth) == 2 for s in sequence)
    steps = [np.linalg.norm(b.truth[0][0] - a.truth[0][0]) for a, b in zip(sequence, sequence[1:])]
    np.testing.assert_allclose(steps, 0.3 / 30.0, rtol=1e-6)  # the wrist moves at the requested speed
    for scene in sequence:
        for truth, obs in zip(scene.truth, scene.observations):
            assert obs.keypoints_px.shape == (21, 2) and np.all(truth[:, 2] > 0.3)


def test_warm_start_in_video_mode_is_smoother_and_no_less_accurate():
    rng = np.random.default_rng(11)
    sequences = [synthetic_scenes.synthetic_sequence(rng, INTR, 20) for _ in range(3)]

    def config(warm: bool) -> object:
        return type("Cfg", (), {"mode": "video", "smoothing": 0.5, "warm_start": warm})()

    cold = [_sequence_errors(RefinementLifter(config(False)), s) for s in sequences]
    warm = [_sequence_errors(RefinementLifter(config(True)), s) for s in sequences]
    cold_error, cold_jitter = np.mean(cold, axis=0)
    warm_error, warm_jitter = np.mean(warm, axis=0)
    assert warm_jitter < 0.85 * cold_jitter
    assert warm_error < cold_error + 0.001


def test_warm_start_is_the_solvers_starting_point():
    scene = synthetic_scenes.synthetic_scene(np.random.default_rng(12), INTR)
    first = rf.refine(scene.observations, INTR)
    warm = [replace(o, warm_start=f) for o, f in zip(scene.observations, first)]
    fits = rf.refine(warm, INTR, rf.RefineSettings(warm_iterations=0))
    for fit, previous in zip(fits, first):
        np.testing.assert_allclose(fit.initial_joints, previous.joints, atol=1e-9)
        np.testing.assert_allclose(fit.joints, previous.joints, atol=1e-9)
    broken = replace(first[0], translation=np.array([0.0, np.nan, 0.5]))
    with pytest.raises(rf.RefinementError, match="hand 0: warm_start.translation"):
        rf.refine([replace(scene.observations[0], warm_start=broken)], INTR)
