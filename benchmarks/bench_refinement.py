"""Time the 3D stage for two hands: refinement alone, refinement + open hand meshes, and the whole lifter.

Usage: python benchmarks/bench_refinement.py [--frames N] [--json] [--accuracy]
Scenes are project-generated two-hand poses (apart, and touching so the non-penetration term is active);
reports median and p95 wall time and median CPU time per frame in milliseconds. The video-mode lifter runs on
synthetic two-hand videos (``synthetic_scenes.synthetic_sequence``, 20 frames each, 0.3 m/s, 1 rad/s), so tracked
hands start from their previous fit. ``--accuracy`` also prints, on the same scenes (2 px keypoint noise, 6 mm
world-landmark noise, ±10 % world scale, ±8 % true hand size), the initial placement's and the refined hands'
errors, penetration, limit violations and bone-length drift, and on the videos the tracking modes' errors and
jitter (warm start vs. a cold start every frame vs. no tracking).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace

import numpy as np

from hand_recon_ros.models import hand_kinematics as hk
from hand_recon_ros.models.open_hand_mesh import posed_mesh
from hand_recon_ros.pipeline import refinement as rf
from hand_recon_ros.pipeline import synthetic_scenes
from hand_recon_ros.pipeline.refine_lift import RefinementLifter
from hand_recon_ros.pipeline.types import CameraIntrinsics, HandDetection, RotatedRect

INTRINSICS = CameraIntrinsics(600.0, 600.0, 320.0, 240.0, 640, 480)
GAPS_M = {"apart": 0.14, "touching": 0.035}
# Accuracy-only scenes: world landmarks flattened to this fraction along the camera axis (edge-on failure).
FLATTENED_WORLD_DEPTH_SCALE = 0.5


def _detections(scene: synthetic_scenes.SyntheticScene) -> list[HandDetection]:
    """Pipeline-style detections carrying the scene's noisy observations."""
    return [HandDetection(side=o.side, score=0.9, side_score=0.9, keypoints_2d=o.keypoints_px.astype(np.float32),
                          keypoints_z=(np.zeros(21) if o.keypoints_z is None else o.keypoints_z).astype(np.float32),
                          world_landmarks=o.world.astype(np.float32),
                          roi=RotatedRect(320, 240, 200, 200, 0.0), track_id=i)
            for i, o in enumerate(scene.observations)]


def _time(fn: object, items: list) -> dict[str, float]:
    """Median/p95 wall and median CPU milliseconds of fn(item) over the items (after 5 warm-up calls)."""
    wall, cpu = [], []
    for item in items[:5]:
        fn(item)  # warm-up
    for item in items:
        w, c = time.perf_counter(), time.process_time()
        fn(item)
        wall.append((time.perf_counter() - w) * 1000.0)
        cpu.append((time.process_time() - c) * 1000.0)
    return {"median_ms": float(np.median(wall)), "p95_ms": float(np.percentile(wall, 95)),
            "cpu_median_ms": float(np.median(cpu))}


def accuracy(scenes: list[synthetic_scenes.SyntheticScene], relative_depth: bool = True) -> dict[str, float]:
    """Mean errors before/after refinement (mm, px), penetration (mm), limit violations, bone drift (mm).

    relative_depth False drops the observations' keypoints_z (the solver without the relative-depth prior).
    """
    rows: dict[str, list[float]] = {k: [] for k in ("mpjpe_init_mm", "mpjpe_refined_mm", "wrist_init_mm",
                                                    "wrist_refined_mm", "residual_init_px", "residual_refined_px",
                                                    "penetration_init_mm", "penetration_refined_mm")}
    violations, drift = 0, 0.0
    low, high = hk.JOINT_LIMITS_RAD[..., 0], hk.JOINT_LIMITS_RAD[..., 1]
    for scene in scenes:
        observations = scene.observations if relative_depth else [replace(o, keypoints_z=None)
                                                                   for o in scene.observations]
        fits = rf.refine(observations, INTRINSICS)
        for fit, truth, obs in zip(fits, scene.truth, scene.observations):
            for tag, joints in (("init", fit.initial_joints), ("refined", fit.joints)):
                rel = np.linalg.norm((joints - joints[0]) - (truth - truth[0]), axis=1).mean()
                rows[f"mpjpe_{tag}_mm"].append(rel * 1000.0)
                rows[f"wrist_{tag}_mm"].append(np.linalg.norm(joints[0] - truth[0]) * 1000.0)
            rows["residual_init_px"].append(float(fit.initial_residual_px.mean()))
            rows["residual_refined_px"].append(fit.mean_residual_px)
            violations += int(np.sum((fit.angles < low - 1e-9) | (fit.angles > high + 1e-9)))
            drift = max(drift, float(np.abs(hk.bone_lengths_of(fit.joints) - obs.bone_lengths).max()) * 1000.0)
        rows["penetration_init_mm"].append(rf.penetration_depths(fits[0].initial_joints,
                                                                 fits[1].initial_joints).max() * 1000.0)
        rows["penetration_refined_mm"].append(rf.penetration_depths(fits[0].joints, fits[1].joints).max() * 1000.0)
    out = {k: float(np.mean(v)) for k, v in rows.items()}
    out.update({"limit_violations": violations, "max_bone_drift_mm": drift})
    return out


def tracking_accuracy(sequences: list[list[synthetic_scenes.SyntheticScene]], config: dict) -> dict[str, float]:
    """Root-relative MPJPE, wrist error and jitter (joint second difference minus the truth's), mm, over videos."""
    errors, wrists, jitter = [], [], []
    for sequence in sequences:
        lifter = RefinementLifter(type("Cfg", (), config)())
        joints = []
        for k, scene in enumerate(sequence):
            results = lifter.lift(_detections(scene), INTRINSICS, k / 30.0)
            joints.append([r.joints_3d.astype(np.float64) for r in results])
            for j, truth in zip(joints[-1], scene.truth):
                errors.append(np.linalg.norm((j - j[0]) - (truth - truth[0]), axis=1).mean())
                wrists.append(np.linalg.norm(j[0] - truth[0]))
            if k >= 2:
                for h, truth in enumerate(scene.truth):
                    accel = joints[k][h] - 2 * joints[k - 1][h] + joints[k - 2][h]
                    true_accel = truth - 2 * sequence[k - 1].truth[h] + sequence[k - 2].truth[h]
                    jitter.append(np.linalg.norm(accel - true_accel, axis=1).mean())
    return {"mpjpe_mm": float(np.mean(errors)) * 1000.0, "wrist_mm": float(np.mean(wrists)) * 1000.0,
            "jitter_mm": float(np.mean(jitter)) * 1000.0}


TRACKING_CONFIGS = {
    "no tracking": {"mode": "image"},
    "video, cold start": {"mode": "video", "warm_start": False},
    "video, warm start": {"mode": "video", "warm_start": True},
}
SEQUENCE_FRAMES = 20


def main() -> None:
    """Run every stage on both scene kinds and print the table (or JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--accuracy", action="store_true", help="also report accuracy on the same scenes")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    report = {}
    for name, gap in GAPS_M.items():
        scenes = [synthetic_scenes.synthetic_scene(rng, INTRINSICS, gap_m=gap) for _ in range(args.frames)]
        sequences = [synthetic_scenes.synthetic_sequence(rng, INTRINSICS, SEQUENCE_FRAMES, gap_m=gap)
                     for _ in range(max(args.frames // SEQUENCE_FRAMES, 1))]

        def refine_and_mesh(scene: synthetic_scenes.SyntheticScene) -> None:
            for fit, obs in zip(rf.refine(scene.observations, INTRINSICS), scene.observations):
                posed_mesh(fit.rotation, fit.translation, fit.angles, obs.bone_lengths, obs.side, fit.palm_spread)

        detections = [_detections(s) for s in scenes]
        video = [_detections(s) for sequence in sequences for s in sequence]
        lifters = {mode: RefinementLifter(type("Cfg", (), {"mode": mode})()) for mode in ("image", "video")}
        # 30 fps timestamps with a 2 s gap after every video: its tracks expire and the next one starts cold.
        frame_s = iter((np.arange(20 * len(scenes)) + np.arange(20 * len(scenes)) // SEQUENCE_FRAMES * 60) / 30.0)

        def lift(dets: list, mode: str, mesh: bool = False, lifters: dict = lifters, clock: object = frame_s) -> None:
            lifters[mode].lift(dets, INTRINSICS, next(clock), mesh)

        report[name] = {
            "refine": _time(lambda s: rf.refine(s.observations, INTRINSICS), scenes),
            "refine+mesh": _time(refine_and_mesh, scenes),
            "lifter image": _time(lambda d: lift(d, "image"), detections),
            "lifter video": _time(lambda d: lift(d, "video"), video),
            "lifter+mesh": _time(lambda d: lift(d, "video", True), video),
        }
        if args.accuracy:
            report[name]["accuracy"] = accuracy(scenes)
            for label, config in TRACKING_CONFIGS.items():
                report[name][f"accuracy, videos, {label}"] = tracking_accuracy(sequences, config)
            report[name]["accuracy, no relative depth"] = accuracy(scenes, relative_depth=False)
    if args.accuracy:
        flat = [synthetic_scenes.synthetic_scene(rng, INTRINSICS, gap_m=GAPS_M["apart"],
                                                 world_depth_scale=FLATTENED_WORLD_DEPTH_SCALE)
                for _ in range(args.frames)]
        report["flattened world"] = {"accuracy": accuracy(flat),
                                     "accuracy, no relative depth": accuracy(flat, relative_depth=False)}
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"{'scene':<10}{'stage':<14}{'median ms':>11}{'p95 ms':>9}{'cpu ms':>9}   (two hands per frame)")
    for name, stages in report.items():
        for stage, row in stages.items():
            if stage.startswith("accuracy"):
                continue
            print(f"{name:<10}{stage:<14}{row['median_ms']:>11.2f}{row['p95_ms']:>9.2f}{row['cpu_median_ms']:>9.2f}")


    for name, stages in report.items():
        for stage, row in stages.items():
            if stage.startswith("accuracy"):
                print(f"{stage}, {name}: " + ", ".join(f"{k} {v:.2f}" for k, v in row.items()))


if __name__ == "__main__":
    main()
