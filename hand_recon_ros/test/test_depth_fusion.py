"""Depth fusion: robust joint depths from depth images, the solver's depth term, fallback, and the hand's size."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from hand_recon_ros.models import hand_kinematics as hk
from hand_recon_ros.pipeline import refinement, synthetic_scenes
from hand_recon_ros.pipeline.depth_fusion import (
    MIN_DEPTH_JOINTS,
    SURFACE_OFFSET_M,
    SURFACE_OFFSET_SIGMA_M,
    DepthError,
    check_depth,
    depth_to_metres,
    joint_depth_sigma,
    joint_depths,
)
from hand_recon_ros.pipeline.refine_lift import RefinementLifter, bone_prior, hand_length_of
from hand_recon_ros.pipeline.synthetic_depth import (
    render_depth,
    sensor_depth,
    synthetic_rgbd_scene,
    synthetic_rgbd_sequence,
)
from hand_recon_ros.pipeline.types import CameraIntrinsics, HandDetection, RotatedRect

INTR = CameraIntrinsics(600.0, 600.0, 319.5, 239.5, 640, 480)
DISTANCES_M = (0.3, 0.6, 1.0)
SCENES_PER_DISTANCE = 6
GOAL_WRIST_MEDIAN_M = 0.005  # the goal with depth at 0.3-1 m
SIZE_CASES = ((0.5, 0.85), (0.8, 1.15))  # (distance m, hand size relative to the adult prior)
SIZE_FRAMES = 40


class _Config:
    def __init__(self, mode: str, hand_length_m: float = 0.0) -> None:
        self.mode, self.hand_length_m = mode, hand_length_m


def _detections(observations: list[refinement.HandObservation], tracked: bool = False) -> list[HandDetection]:
    return [HandDetection(o.side, 1.0, 1.0, o.keypoints_px, o.keypoints_z, o.world, RotatedRect(0, 0, 200, 200, 0),
                          track_id=i if tracked else -1) for i, o in enumerate(observations)]


def test_depth_to_metres_reads_millimetres_and_metres_and_refuses_other_types() -> None:
    mm = np.array([[0, 1000], [523, 65535]], np.uint16)
    assert np.allclose(depth_to_metres(mm), [[0.0, 1.0], [0.523, 65.535]])
    assert np.allclose(depth_to_metres(mm, 0.0001), [[0.0, 0.1], [0.0523, 6.5535]])
    metres = np.array([[0.5, np.nan]], np.float32)
    assert depth_to_metres(metres)[0, 0] == pytest.approx(0.5) and np.isnan(depth_to_metres(metres)[0, 1])
    with pytest.raises(DepthError, match="complex64"):
        depth_to_metres(np.zeros((2, 2), np.complex64))
    with pytest.raises(DepthError, match="single-channel"):
        depth_to_metres(np.zeros((2, 2, 3), np.uint16))
    with pytest.raises(DepthError, match="scale"):
        depth_to_metres(mm, -1.0)


def test_check_depth_refuses_wrong_size_and_empty_depth() -> None:
    good = np.full((48, 64), 0.7, np.float32)
    check_depth(good, 64, 48)
    with pytest.raises(DepthError, match="64x48 but the colour image is 640x480"):
        check_depth(good, 640, 480)
    for bad in (np.zeros((48, 64), np.float32), np.full((48, 64), np.nan, np.float32),
                np.full((48, 64), np.inf, np.float32)):
        with pytest.raises(DepthError, match="no valid pixel"):
            check_depth(bad, 64, 48)


def _hand_keypoints(center: tuple[float, float] = (320.0, 240.0), palm_px: float = 100.0) -> np.ndarray:
    """Keypoints of a flat hand-sized layout: wrist below, middle MCP ``palm_px`` above it, fingers spread."""
    uv = np.zeros((21, 2))
    cx, cy = center
    uv[0] = (cx, cy + palm_px / 2)
    for c, chain in enumerate(((1, 2, 3, 4), (5, 6, 7, 8), (9, 10, 11, 12), (13, 14, 15, 16), (17, 18, 19, 20))):
        for k, j in enumerate(chain):
            uv[j] = (cx + (c - 2) * 20.0, cy + palm_px / 2 - palm_px * (0.5 + 0.3 * k) if c else cy + 10 * k)
    uv[9] = (cx, cy - palm_px / 2)
    return uv


def test_joint_depths_keep_the_hand_and_drop_the_background_holes_and_outliers() -> None:
    uv = _hand_keypoints()
    depth = np.full((480, 640), 1.2, np.float32)  # wall
    plate = np.zeros((480, 640), bool)
    for u, v in uv:  # the hand: a 16-px blob around every keypoint at 0.50 m, wall visible around it
        plate[int(v) - 8:int(v) + 9, int(u) - 8:int(u) + 9] = True
    depth[plate] = 0.50
    got = joint_depths(depth, uv)
    assert got.count == 21
    assert np.allclose(got.z_m, 0.50 + SURFACE_OFFSET_M, atol=1e-6), "background behind the hand leaked in"
    holed = depth.copy()
    u, v = uv[8].astype(int)
    holed[v - 9:v + 10, u - 9:u + 10] = 0.0  # a hole over the index tip
    u, v = uv[16].astype(int)
    holed[v - 9:v + 10, u - 9:u + 10] = 0.2  # something 0.3 m in front of the ring tip: an outlier
    got = joint_depths(holed, uv)
    assert np.isnan(got.z_m[8]) and np.isnan(got.z_m[16]) and got.count == 19
    assert np.allclose(got.z_m[got.valid], (0.50 + SURFACE_OFFSET_M)[got.valid], atol=1e-6)
    sparse = np.zeros_like(depth)
    sparse[:, :] = 0.0
    for u, v in uv[: MIN_DEPTH_JOINTS - 1]:
        sparse[int(v) - 8:int(v) + 9, int(u) - 8:int(u) + 9] = 0.5
    assert joint_depths(sparse, uv).count == 0, "too few joints with depth must mean no depth for the hand"


def test_a_joint_depth_weighs_by_the_pixels_behind_it() -> None:
    """A joint's expected error is the surface offset's where many pixels back it (also at 1 m) and grows where few
    valid pixels do, more so far away (sensor noise grows with z²); joint_depths gives it for every depth joint."""
    many, few = joint_depth_sigma(np.array([0.3, 1.0]), np.array([400, 400])), joint_depth_sigma(
        np.array([0.3, 1.0]), np.array([5, 5]))
    assert np.all(many < 1.2 * SURFACE_OFFSET_SIGMA_M) and np.all(many >= SURFACE_OFFSET_SIGMA_M)
    assert few[1] > 1.5 * SURFACE_OFFSET_SIGMA_M and few[1] > few[0] > many[0]
    uv = _hand_keypoints()
    depth = np.full((480, 640), 0.5, np.float32)
    u, v = uv[8].astype(int)
    depth[v - 5:v + 6, u - 5:u + 6] = 0.0  # most of the index tip's window is a hole
    depth[v - 5:v - 2, u - 5:u - 2] = 0.5
    got = joint_depths(depth, uv)
    assert np.array_equal(np.isfinite(got.sigma_m), got.valid)
    assert got.sigma_m[8] > got.sigma_m[12], "a window with few valid pixels must weigh less"


def test_a_nearer_occluder_moves_the_hand_less_than_a_symmetric_huber_would() -> None:
    """Depth readings nearer than a joint (a finger in front of it) are down-weighted early: 6 of 21 joints read
    3 cm in front of the truth and the wrist moves towards the camera by ~1 mm, not the ~2.5 mm a symmetric
    Huber at DEPTH_HUBER_M gives."""
    shifts = []
    for seed in range(4):
        scene = synthetic_scenes.synthetic_scene(np.random.default_rng(seed), INTR, depth_m=0.6)
        clean = [dataclasses.replace(o, depth_m=t[:, 2].copy()) for o, t in zip(scene.observations, scene.truth)]
        occluded = []
        for o in clean:
            z = o.depth_m.copy()
            z[[5, 6, 9, 10, 13, 14]] -= 0.03
            occluded.append(dataclasses.replace(o, depth_m=z))
        for a, b in zip(refinement.refine(clean, INTR), refinement.refine(occluded, INTR)):
            shifts.append(abs(b.joints[0, 2] - a.joints[0, 2]))
    assert np.median(shifts) < 0.0015, shifts


def test_all_nan_depth_is_exactly_the_monocular_solve() -> None:
    scene = synthetic_scenes.synthetic_scene(np.random.default_rng(4), INTR)
    mono = refinement.refine(scene.observations, INTR)
    nan = refinement.refine([dataclasses.replace(o, depth_m=np.full(21, np.nan)) for o in scene.observations], INTR)
    for a, b in zip(mono, nan):
        np.testing.assert_array_equal(a.joints, b.joints)
    with pytest.raises(refinement.RefinementError, match="depth_m"):
        refinement.refine([dataclasses.replace(scene.observations[0], depth_m=np.full(21, -1.0))], INTR)


def test_render_and_sensor_model_look_like_a_depth_camera() -> None:
    rng = np.random.default_rng(0)
    corners = np.array([[-1, -1, 0.5], [1, -1, 0.5], [1, 1, 0.5], [-1, 1, 0.5]], float)
    plane = (corners, np.array([[0, 1, 2], [0, 2, 3]]))
    clean = render_depth([plane], INTR)
    assert np.allclose(clean, 0.5, atol=1e-6)
    box = (plane[0] * [0.05, 0.05, 1.0], plane[1])  # a 10 cm square at 0.5 m in front of a 1.5 m wall
    clean = render_depth([box], INTR, background_m=1.5)
    raw = sensor_depth(clean, rng)
    assert raw.dtype == np.uint16
    centre = raw[230:250, 310:330].astype(float)
    assert abs(np.median(centre[centre > 0]) - 500) <= 1
    assert (raw[240, 255:265] == 0).any(), "the square's silhouette edge should be a hole"
    far = sensor_depth(np.full((100, 100), 2.0, np.float32), rng, dropout=0.0).astype(float)
    near = sensor_depth(np.full((100, 100), 0.3, np.float32), rng, dropout=0.0).astype(float)
    assert far[1:-1, 1:-1].std() > 3 * near[1:-1, 1:-1].std(), "noise must grow with distance"


def test_synthetic_rgbd_depth_places_the_wrist_within_the_goal() -> None:
    """Wrist error with depth vs monocular on rendered, sensor-noised depth at 0.3-1 m (image mode, sizes vary)."""
    rng = np.random.default_rng(11)
    lifter = RefinementLifter(_Config("image"))
    errors: dict[str, list[float]] = {"monocular": [], "depth": []}
    for distance in DISTANCES_M:
        for _ in range(SCENES_PER_DISTANCE):
            rgbd = synthetic_rgbd_scene(rng, INTR, depth_m=distance)
            detections = _detections(rgbd.scene.observations)
            mono = lifter.lift(detections, INTR)
            fused = lifter.lift(detections, INTR, depth_m=depth_to_metres(rgbd.depth_mm))
            for m, f, truth in zip(mono, fused, rgbd.scene.truth):
                assert (m.placement, f.placement) == ("monocular", "depth")
                errors["monocular"].append(float(np.linalg.norm(m.joints_3d[0] - truth[0])))
                errors["depth"].append(float(np.linalg.norm(f.joints_3d[0] - truth[0])))
    depth_median, mono_median = np.median(errors["depth"]), np.median(errors["monocular"])
    assert depth_median <= GOAL_WRIST_MEDIAN_M, (depth_median, mono_median)
    assert depth_median < 0.5 * mono_median


def test_depth_with_holes_over_a_hand_falls_back_to_monocular_for_that_hand() -> None:
    rgbd = synthetic_rgbd_scene(np.random.default_rng(5), INTR, depth_m=0.6)
    depth = depth_to_metres(rgbd.depth_mm)
    left_uv = rgbd.scene.observations[0].keypoints_px
    lo, hi = np.floor(left_uv.min(0)).astype(int) - 20, np.ceil(left_uv.max(0)).astype(int) + 20
    depth[max(lo[1], 0):hi[1], max(lo[0], 0):hi[0]] = 0.0  # no depth over the left hand
    lifter = RefinementLifter(_Config("image"))
    detections = _detections(rgbd.scene.observations)
    mono = lifter.lift(detections, INTR)
    fused = lifter.lift(detections, INTR, depth_m=depth)
    assert [r.placement for r in fused] == ["monocular", "depth"]
    np.testing.assert_allclose(fused[0].joints_3d, mono[0].joints_3d, atol=1e-6)  # that hand: as without depth
    assert np.linalg.norm(fused[1].joints_3d[0] - rgbd.scene.truth[1][0]) < 0.01


@pytest.mark.parametrize("size_scale", [0.85, 1.15])
def test_a_given_hand_size_places_the_wrist_at_the_true_depth(size_scale: float) -> None:
    """Monocular: the measured hand length puts the wrist at the true depth (1 %); the adult prior does not."""
    rng = np.random.default_rng(7)
    true_length = hand_length_of(hk.BONE_LENGTH_PRIOR_M * size_scale)
    sized = RefinementLifter(_Config("image", hand_length_m=true_length))
    default = RefinementLifter(_Config("image"))
    sized_err, default_err = [], []
    for _ in range(10):
        rgbd = synthetic_rgbd_scene(rng, INTR, depth_m=0.6, size_scale=size_scale, noise_px=1.0)
        for lifter, store in ((sized, sized_err), (default, default_err)):
            for result, truth in zip(lifter.lift(_detections(rgbd.scene.observations), INTR), rgbd.scene.truth):
                store.append(result.joints_3d[0, 2] / truth[0, 2] - 1.0)
                assert result.hand_length_m == pytest.approx(true_length if lifter is sized else 0.19, rel=1e-6)
    assert abs(np.median(sized_err)) <= 0.01, np.median(sized_err)
    assert abs(np.median(default_err)) > 0.05, "the adult prior should misplace a hand of another size"


def test_with_depth_each_track_measures_its_size() -> None:
    """Video mode, hands 15 % smaller / larger than the prior, changing pose every frame (fresh render and sensor
    noise): each track's measured size converges within 2 % of the truth."""
    rng = np.random.default_rng(9)
    for distance, size_scale in SIZE_CASES:
        lifter = RefinementLifter(_Config("video"))
        sizes, true_length = [], hand_length_of(hk.BONE_LENGTH_PRIOR_M * size_scale)
        for frame in range(SIZE_FRAMES):
            rgbd = synthetic_rgbd_scene(rng, INTR, depth_m=distance, size_scale=size_scale)
            results = lifter.lift(_detections(rgbd.scene.observations, tracked=True), INTR, frame / 30.0,
                                  depth_m=depth_to_metres(rgbd.depth_mm))
            assert all(r.placement == "depth" for r in results)
            sizes.append([r.hand_length_m for r in results])
        final = np.asarray(sizes[-1])
        assert np.all(np.abs(final / true_length - 1.0) <= 0.02), (distance, final / true_length - 1.0)


@pytest.mark.parametrize("mode", ["image", "video"])
def test_a_given_hand_size_is_not_overridden_by_depth(mode: str) -> None:
    """hand_length_m given: depth places the hands, but their size stays the given one (no measurement), even
    when the hand in the image is 15 % larger than that."""
    rng = np.random.default_rng(12)
    given = 0.18
    lifter = RefinementLifter(_Config(mode, hand_length_m=given))
    measuring = RefinementLifter(_Config(mode))
    for frame in range(15):
        rgbd = synthetic_rgbd_scene(rng, INTR, depth_m=0.6, size_scale=1.15)
        detections = _detections(rgbd.scene.observations, tracked=mode == "video")
        depth = depth_to_metres(rgbd.depth_mm)
        results = lifter.lift(detections, INTR, frame / 30.0, depth_m=depth)
        measured = measuring.lift(detections, INTR, frame / 30.0, depth_m=depth)
        assert [r.placement for r in results] == ["depth", "depth"]
        assert [r.hand_length_m for r in results] == pytest.approx([given, given], rel=1e-9)
    assert all(r.hand_length_m > 1.1 * given for r in measured), "the same frames measure a larger hand"


def test_the_measured_size_is_unbiased_at_a_distance() -> None:
    """Moving hands of 0.16 and 0.21 m at 1 m: the size measurement takes its relative depth from the depth
    camera, so the network's relative-depth scale error (0.5-1.8x here) no longer biases it (it gave +1.5 %)."""
    rng = np.random.default_rng(21)
    errors = []
    for length in (0.16, 0.21):
        scale = length / hand_length_of(hk.BONE_LENGTH_PRIOR_M)
        lifter = RefinementLifter(_Config("video"))
        for frame in range(30):
            rgbd = synthetic_rgbd_scene(rng, INTR, depth_m=1.0, size_scale=scale)
            results = lifter.lift(_detections(rgbd.scene.observations, tracked=True), INTR, frame / 30.0,
                                  depth_m=depth_to_metres(rgbd.depth_mm))
        errors += [r.hand_length_m / length - 1.0 for r in results]
    assert abs(np.mean(errors)) < 0.006 and np.max(np.abs(errors)) < 0.015, errors


def test_a_depth_jump_under_an_unchanged_image_is_followed_at_once() -> None:
    """Video mode, the same keypoints every frame, a constant depth map that jumps from 0.6 to 0.5 m: the very
    next frame is at the new depth (within 1 cm); the temporal prior does not hold the hands back."""
    scene = synthetic_scenes.synthetic_scene(np.random.default_rng(3), INTR, depth_m=0.6)
    detections = _detections(scene.observations, tracked=True)
    lifter = RefinementLifter(_Config("video"))
    for frame in range(21):
        depth = np.full((480, 640), 0.6 if frame < 20 else 0.5, np.float32)
        results = lifter.lift(detections, INTR, frame / 30.0, depth_m=depth)
    for result in results:
        skin = np.median(result.joints_3d[:, 2] - SURFACE_OFFSET_M)
        assert abs(skin - 0.5) < 0.01, skin


def test_a_track_keeps_its_measured_size_when_depth_drops_out() -> None:
    """Video mode: 40 frames with depth, then 10 without: the hand keeps its measured size, so its monocular
    placement stays near the true depth (a fresh monocular track with the adult prior does not)."""
    rng = np.random.default_rng(3)
    size_scale = 1.15
    video = synthetic_rgbd_sequence(rng, INTR, 50, depth_m=0.7, speed_m_s=0.1, size_scale=size_scale)
    lifter = RefinementLifter(_Config("video"))
    for frame, rgbd in enumerate(video[:40]):
        lifter.lift(_detections(rgbd.scene.observations, tracked=True), INTR, frame / 30.0,
                    depth_m=depth_to_metres(rgbd.depth_mm))
    fresh = RefinementLifter(_Config("video"))
    kept, prior = [], []
    for frame, rgbd in enumerate(video[40:], start=40):
        detections = _detections(rgbd.scene.observations, tracked=True)
        for store, results in ((kept, lifter.lift(detections, INTR, frame / 30.0)),
                               (prior, fresh.lift(detections, INTR, frame / 30.0))):
            for result, truth in zip(results, rgbd.scene.truth):
                assert result.placement == "monocular"
                store.append((result.hand_length_m, result.joints_3d[0, 2] / truth[0, 2] - 1.0))
    true_length = hand_length_of(hk.BONE_LENGTH_PRIOR_M * size_scale)
    assert all(abs(length / true_length - 1.0) <= 0.03 for length, _ in kept)
    assert abs(np.median([e for _, e in kept])) < 0.5 * abs(np.median([e for _, e in prior]))


def test_bone_prior_scales_to_the_hand_length() -> None:
    assert np.array_equal(bone_prior(0.0), hk.BONE_LENGTH_PRIOR_M)
    assert hand_length_of(bone_prior(0.17)) == pytest.approx(0.17)
    with pytest.raises(ValueError, match="hand_length_m"):
        bone_prior(-0.1)
