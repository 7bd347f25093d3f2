"""The lifter's per-track state: one bad fit stays local, stale tracks expire whatever the stamps, bones converge."""

from __future__ import annotations

import numpy as np
import pytest

from hand_recon_ros.models import hand_kinematics as hk
from hand_recon_ros.pipeline import refine_lift, synthetic_scenes
from hand_recon_ros.pipeline import refinement as rf
from hand_recon_ros.pipeline.refine_lift import RefinementLifter
from hand_recon_ros.pipeline.types import CameraIntrinsics, HandDetection, RotatedRect

INTR = CameraIntrinsics(600.0, 600.0, 320.0, 240.0, 640, 480)


def _video_lifter() -> RefinementLifter:
    return RefinementLifter(type("Cfg", (), {"mode": "video", "smoothing": 0.5})())


def _detections(scene: synthetic_scenes.SyntheticScene, shift_px: float = 0.0) -> list[HandDetection]:
    return [HandDetection(side=o.side, score=0.9, side_score=0.9,
                          keypoints_2d=(o.keypoints_px + shift_px).astype(np.float32),
                          keypoints_z=np.zeros(21, np.float32), world_landmarks=o.world.astype(np.float32),
                          roi=RotatedRect(320, 240, 200, 200, 0.0), track_id=k)
            for k, o in enumerate(scene.observations)]


class _FakeClock:
    """Host monotonic time under the test's control (the lifter's fallback when stamps do not advance)."""

    def __init__(self) -> None:
        self.now_s = 100.0

    def __call__(self) -> float:
        return self.now_s


def _poison_first_hand(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the solver return a non-finite fit for hand 0 once (the solver is not what this test is about)."""
    real = rf.refine
    calls = {"n": 0}

    def refine(observations, intrinsics, settings=None):
        fits = real(observations, intrinsics, settings)
        if calls["n"] == 0:
            fits[0].joints = np.full_like(fits[0].joints, np.nan)
            fits[0].translation = np.array([np.nan, 0.0, 0.5])
        calls["n"] += 1
        return fits

    monkeypatch.setattr(rf, "refine", refine)


@pytest.mark.parametrize("stamps", ["advancing", "constant", "zero"])
def test_a_non_finite_fit_stays_with_its_hand(monkeypatch, stamps):
    scene = synthetic_scenes.synthetic_scene(np.random.default_rng(21), INTR)
    stamp = {"advancing": lambda k: k / 30.0, "constant": lambda k: 1234.5, "zero": lambda k: 0.0}[stamps]
    lifter, reference = _video_lifter(), _video_lifter()
    for k in range(2):
        lifter.lift(_detections(scene, 0.7 * k), INTR, stamp(k))
        reference.lift(_detections(scene, 0.7 * k), INTR, stamp(k))
    _poison_first_hand(monkeypatch)
    bad = lifter.lift(_detections(scene, 1.4), INTR, stamp(2))
    assert bad[0].joints_3d is None
    assert bad[1].joints_3d is not None and np.all(np.isfinite(bad[1].joints_3d))
    assert lifter.failed_fits == 1 and len(lifter.warnings) == 1
    assert "left hand (track 0)" in lifter.warnings[0] and "not finite" in lifter.warnings[0]
    assert lifter._tracks[0].fit is None and lifter._tracks[0].joints is None  # its warm start is gone
    for k in range(3, 8):  # every later frame: both hands, finite, and no further reports
        later = lifter.lift(_detections(scene, 0.7 * k), INTR, stamp(k))
        assert all(r.joints_3d is not None and np.all(np.isfinite(r.joints_3d)) for r in later)
        assert lifter.warnings == []
    assert lifter.failed_fits == 1


def test_the_other_hand_gets_the_same_answer_as_without_the_bad_fit(monkeypatch):
    scene = synthetic_scenes.synthetic_scene(np.random.default_rng(22), INTR)
    lifter, reference = _video_lifter(), _video_lifter()
    for one in (lifter, reference):
        one.lift(_detections(scene), INTR, 0.0)
    expected = reference.lift(_detections(scene, 1.0), INTR, 1 / 30)
    _poison_first_hand(monkeypatch)
    got = lifter.lift(_detections(scene, 1.0), INTR, 1 / 30)
    np.testing.assert_allclose(got[1].joints_3d, expected[1].joints_3d, atol=1e-6)
    np.testing.assert_allclose(got[1].wrist_position, expected[1].wrist_position, atol=1e-6)


@pytest.mark.parametrize("stamp", [0.0, 42.0, None])
def test_tracks_expire_by_the_host_clock_when_stamps_do_not_advance(stamp):
    scene = synthetic_scenes.synthetic_scene(np.random.default_rng(23), INTR)
    clock = _FakeClock()
    lifter = _video_lifter()
    lifter._clock = clock
    lifter.lift(_detections(scene), INTR, stamp)
    assert lifter._tracks[0].fit is not None
    clock.now_s += 0.5 * refine_lift.TRACK_TIMEOUT_S  # still fresh: the warm start is kept
    lifter.lift(_detections(scene, 2.0), INTR, stamp)
    kept = lifter._tracks[0].fit
    clock.now_s += 2.0 * refine_lift.TRACK_TIMEOUT_S  # the same stamp two timeouts later: stale
    fresh = lifter.lift(_detections(scene, 4.0), INTR, stamp)
    cold = _video_lifter().lift(_detections(scene, 4.0), INTR, stamp)
    assert lifter._tracks[0].fit is not kept
    for a, b in zip(fresh, cold):  # a stale track starts cold: the same answer as a new lifter's
        np.testing.assert_allclose(a.joints_3d, b.joints_3d, atol=1e-6)
    clock.now_s += 2.0 * refine_lift.TRACK_TIMEOUT_S  # a frame without those hands: their tracks are deleted
    lifter.lift([], INTR, stamp)
    assert lifter._tracks == {}


def test_bone_lengths_converge_within_the_first_frames():
    rng = np.random.default_rng(24)
    scene = synthetic_scenes.synthetic_scene(rng, INTR)
    lifter = _video_lifter()
    history = []
    for k in range(3 * refine_lift.BONE_LENGTH_FRAMES):
        dets = _detections(scene, 0.8 * k)  # the hand moves, so every frame is solved
        for det in dets:  # fresh world-landmark noise every frame (about the network's)
            det.world_landmarks = (det.world_landmarks + rng.normal(0, 0.004, (21, 3))).astype(np.float32)
        lifter.lift(dets, INTR, k / 30.0)
        history.append(lifter._tracks[0].bone_lengths.copy())
    assert not np.allclose(history[0], hk.BONE_LENGTH_PRIOR_M)  # it does adapt ...
    settled = refine_lift.BONE_LENGTH_FRAMES - 1
    for later in history[settled:]:  # ... and then stays put (no creeping hand scale)
        np.testing.assert_array_equal(later, history[settled])


def test_a_still_hand_keeps_its_fit_and_a_moving_one_is_solved():
    scene = synthetic_scenes.synthetic_scene(np.random.default_rng(25), INTR)
    lifter = _video_lifter()
    first = lifter.lift(_detections(scene), INTR, 0.0)
    for k in range(1, 30):  # the same keypoints (sub-threshold jitter) for a second
        jitter = 0.4 * refine_lift.STILL_KEYPOINT_PX * np.sin(k)
        again = lifter.lift(_detections(scene, jitter), INTR, k / 30.0)
        for a, b in zip(first, again):
            np.testing.assert_array_equal(a.joints_3d, b.joints_3d)
    moved = lifter.lift(_detections(scene, 3.0), INTR, 1.0)
    assert all(np.abs(m.joints_3d - a.joints_3d).max() > 1e-4 for m, a in zip(moved, first))
