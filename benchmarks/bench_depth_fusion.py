"""Depth fusion on synthetic RGB-D: wrist error with depth vs monocular, hand-size convergence, and lift time.

Depth is rendered from the project's own posed hand mesh (pipeline/synthetic_depth.py) in front of a wall,
with sensor-like noise (sigma = 0.5 mm + 2 mm/m² · z², holes at silhouette edges, 3 % dropouts, 1 mm
quantisation); hands have random poses and sizes 0.92-1.08 x the adult prior, 2D keypoints 2 px noise.

    python benchmarks/bench_depth_fusion.py [--scenes 20] [--seed 0] [--json OUT.json]

Table 1 (image mode: every frame alone): per distance, median / p90 wrist error monocular and with depth, and
the median relative depth error of the wrist. Table 1b: moving two-hand videos, monocular tracking vs tracking
with depth. Table 2 (video mode, hands of
0.16-0.21 m at 0.4-1.0 m, still or in a new pose every frame): measured hand length error after 1, 15, 30, 60
frames and the frames until it stays within 2 %. Table 3: lift time
per frame (2 hands) without depth, with depth in image mode and in video mode, as ratios to the monocular lift
measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np

from hand_recon_ros.commands.bench import cpu_description
from hand_recon_ros.models import hand_kinematics as hk
from hand_recon_ros.pipeline import refinement
from hand_recon_ros.pipeline.depth_fusion import depth_to_metres
from hand_recon_ros.pipeline.refine_lift import SIZE_CONVERGE_FRAMES, RefinementLifter, hand_length_of
from hand_recon_ros.pipeline.synthetic_depth import synthetic_rgbd_scene, synthetic_rgbd_sequence
from hand_recon_ros.pipeline.types import CameraIntrinsics, HandDetection, RotatedRect

INTRINSICS = CameraIntrinsics(600.0, 600.0, 319.5, 239.5, 640, 480)  # a RealSense-like 640x480 colour camera
DISTANCES_M = (0.3, 0.45, 0.6, 0.8, 1.0)
SIZE_LENGTHS_M = (0.16, 0.175, 0.19, 0.205, 0.21)  # true hand lengths (wrist to middle fingertip)
SIZE_DISTANCES_M = (0.4, 0.7, 1.0)
SIZE_FRAMES = 60
SIZE_GOAL_PCT = 2.0
TIMING_REPEATS = 30
VIDEO_FRAMES = 30


class _Config:
    def __init__(self, mode: str) -> None:
        self.mode = mode


def _detections(observations: list[refinement.HandObservation], tracked: bool) -> list[HandDetection]:
    return [HandDetection(o.side, 1.0, 1.0, o.keypoints_px, o.keypoints_z, o.world, RotatedRect(0, 0, 200, 200, 0),
                          track_id=i if tracked else -1) for i, o in enumerate(observations)]


def placement_table(rng: np.random.Generator, scenes: int) -> list[dict[str, Any]]:
    """Wrist error per distance, monocular vs depth (image mode)."""
    lifter = RefinementLifter(_Config("image"))
    rows = []
    for distance in DISTANCES_M:
        mono, fused, rel = [], [], []
        for _ in range(scenes):
            rgbd = synthetic_rgbd_scene(rng, INTRINSICS, depth_m=distance)
            detections = _detections(rgbd.scene.observations, tracked=False)
            depth = depth_to_metres(rgbd.depth_mm)
            for m, f, truth in zip(lifter.lift(detections, INTRINSICS),
                                   lifter.lift(detections, INTRINSICS, depth_m=depth), rgbd.scene.truth):
                mono.append(np.linalg.norm(m.joints_3d[0] - truth[0]))
                fused.append(np.linalg.norm(f.joints_3d[0] - truth[0]))
                rel.append(abs(f.joints_3d[0, 2] / truth[0, 2] - 1.0))
        rows.append({"distance_m": distance, "hands": len(mono),
                     "mono_median_mm": 1e3 * float(np.median(mono)),
                     "mono_p90_mm": 1e3 * float(np.percentile(mono, 90)),
                     "depth_median_mm": 1e3 * float(np.median(fused)),
                     "depth_p90_mm": 1e3 * float(np.percentile(fused, 90)),
                     "depth_rel_median_pct": 100 * float(np.median(rel))})
    return rows


def video_table(rng: np.random.Generator, videos: int) -> dict[str, float]:
    """Wrist error (median mm) on moving two-hand RGB-D videos: monocular tracking vs tracking with depth."""
    errors: dict[str, list[float]] = {"monocular video": [], "depth video": [], "depth image": []}
    for _ in range(videos):
        lifters = {name: RefinementLifter(_Config(name.split()[1])) for name in errors}
        for k, rgbd in enumerate(synthetic_rgbd_sequence(rng, INTRINSICS, VIDEO_FRAMES, depth_m=0.6)):
            detections = _detections(rgbd.scene.observations, tracked=True)
            depth = depth_to_metres(rgbd.depth_mm)
            for name, lifter in lifters.items():
                kwargs = {"depth_m": depth} if name.startswith("depth") else {}
                for result, truth in zip(lifter.lift(detections, INTRINSICS, k / 30.0, **kwargs), rgbd.scene.truth):
                    errors[name].append(float(np.linalg.norm(result.joints_3d[0] - truth[0])))
    return {name: 1e3 * float(np.median(e)) for name, e in errors.items()}


def size_table(rng: np.random.Generator, runs: int) -> list[dict[str, Any]]:
    """Measured hand length per frame (video mode, depth every frame) for hands of known length at 0.4/0.7/1.0 m:
    still hands (one pose, fresh noise every frame) and moving hands (a new pose every frame). Per motion and
    length, over distances, runs and both hands: the error after 1, 15, 30 and 60 frames (mean and largest), and
    the frames until it stays within SIZE_GOAL_PCT."""
    rows = []
    prior = hand_length_of(hk.BONE_LENGTH_PRIOR_M)
    for motion in ("still", "moving"):
        for length in SIZE_LENGTHS_M:
            errors, converged = [], []
            for distance in SIZE_DISTANCES_M:
                for _ in range(runs):
                    rgbd = synthetic_rgbd_scene(rng, INTRINSICS, depth_m=distance, size_scale=length / prior)
                    lifter = RefinementLifter(_Config("video"))
                    track = []
                    for frame in range(SIZE_FRAMES):
                        if motion == "still":
                            observations, raw = rgbd.observe_again(rng, INTRINSICS)
                        else:
                            rgbd = synthetic_rgbd_scene(rng, INTRINSICS, depth_m=distance, size_scale=length / prior)
                            observations, raw = rgbd.scene.observations, rgbd.depth_mm
                        results = lifter.lift(_detections(observations, tracked=True), INTRINSICS, frame / 30.0,
                                              depth_m=depth_to_metres(raw))
                        track.append([100 * (r.hand_length_m / length - 1.0) for r in results])
                    track_array = np.asarray(track)  # (frames, 2 hands)
                    errors.append(track_array)
                    for hand in track_array.T:
                        outside = np.flatnonzero(np.abs(hand) > SIZE_GOAL_PCT)
                        converged.append(0 if len(outside) == 0 else int(outside[-1]) + 1)
            stacked = np.concatenate(errors, axis=1)  # (frames, hands)
            row: dict[str, Any] = {"motion": motion, "true_length_m": length, "hands": stacked.shape[1]}
            for n in (1, 15, 30, 60):
                row[f"mean_pct_after_{n}"] = float(np.mean(stacked[n - 1]))
                row[f"max_abs_pct_after_{n}"] = float(np.max(np.abs(stacked[n - 1])))
            row["within_goal_after_60"] = int(np.sum(np.abs(stacked[-1]) <= SIZE_GOAL_PCT))
            row["frames_to_goal_median"] = float(np.median(converged))
            row["frames_to_goal_max"] = int(np.max(converged))
            rows.append(row)
    return rows


def timing_table(rng: np.random.Generator) -> dict[str, float]:
    """Lift time per frame (ms, two hands): monocular, depth in image mode, depth in video mode."""
    rgbd = synthetic_rgbd_scene(rng, INTRINSICS, depth_m=0.6)
    depth = depth_to_metres(rgbd.depth_mm)
    out = {}
    cases = (("monocular image", "image", False, 1), ("depth image", "image", True, 1),
             ("monocular video", "video", False, 1), ("depth video, measuring size", "video", True, 1),
             ("depth video, size converged", "video", True, SIZE_CONVERGE_FRAMES))
    for name, mode, use_depth, warm_frames in cases:
        lifter = RefinementLifter(_Config(mode))
        detections = _detections(rgbd.scene.observations, tracked=mode == "video")
        kwargs = {"depth_m": depth} if use_depth else {}
        for k in range(warm_frames):
            lifter.lift(detections, INTRINSICS, k / 30.0, **kwargs)
        start = time.perf_counter()
        for k in range(TIMING_REPEATS):
            lifter.lift(detections, INTRINSICS, (warm_frames + k) / 30.0, **kwargs)
        out[name] = 1e3 * (time.perf_counter() - start) / TIMING_REPEATS
    return out


def main() -> int:
    """Print the three tables (and write them as JSON with --json)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenes", type=int, default=20, help="two-hand scenes per distance")
    parser.add_argument("--videos", type=int, default=4, help="moving two-hand RGB-D videos (30 frames each)")
    parser.add_argument("--size-runs", type=int, default=2, help="hand-size runs per length and distance")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    print(f"CPU: {cpu_description()}")
    placement = placement_table(rng, args.scenes)
    print("\nWrist error, image mode (each frame alone), 640x480 f=600 px, 2 px keypoint noise")
    print("| distance (m) | hands | monocular median / p90 (mm) | depth median / p90 (mm) | depth relative (median) |")
    print("|---|---|---|---|---|")
    for r in placement:
        print(f"| {r['distance_m']:.2f} | {r['hands']} | {r['mono_median_mm']:.1f} / {r['mono_p90_mm']:.1f} | "
              f"{r['depth_median_mm']:.1f} / {r['depth_p90_mm']:.1f} | {r['depth_rel_median_pct']:.2f} % |")
    video = video_table(rng, args.videos)
    print(f"\nWrist error on moving two-hand videos at 0.6 m (0.3 m/s, 1 rad/s; {args.videos} x {VIDEO_FRAMES} "
          "frames), median mm")
    print("| lift | wrist median (mm) |")
    print("|---|---|")
    for name, value in video.items():
        print(f"| {name} | {value:.1f} |")
    sizes = size_table(rng, args.size_runs)
    print(f"\nMeasured hand length error (%), video mode, depth every frame; {len(SIZE_DISTANCES_M)} distances "
          f"({', '.join(f'{d:g}' for d in SIZE_DISTANCES_M)} m) x {args.size_runs} run(s) x 2 hands per row")
    print("| hands | true length (m) | mean / largest after 1 | after 15 | after 30 | after 60 frames | "
          f"within {SIZE_GOAL_PCT:g} % after 60 | frames until it stays within {SIZE_GOAL_PCT:g} % (median / max) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in sizes:
        cells = " | ".join(f"{r[f'mean_pct_after_{n}']:+.2f} / {r[f'max_abs_pct_after_{n}']:.2f}"
                           for n in (1, 15, 30, 60))
        print(f"| {r['motion']} | {r['true_length_m']:.3f} | {cells} | {r['within_goal_after_60']}/{r['hands']} | "
              f"{r['frames_to_goal_median']:g} / {r['frames_to_goal_max']} "
              f"({r['frames_to_goal_median'] / 30:.2f} / {r['frames_to_goal_max'] / 30:.2f} s at 30 fps) |")
    timing = timing_table(rng)
    print("\nLift time per frame, two hands (ms; ratio to the monocular lift of the same mode, same run)")
    print("| lift | ms | ratio |")
    print("|---|---|---|")
    for name, ms in timing.items():
        reference = timing["monocular image" if "image" in name else "monocular video"]
        print(f"| {name} | {ms:.2f} | {ms / reference:.2f} |")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as stream:
            json.dump({"cpu": cpu_description(), "placement": placement, "video": video, "size": sizes,
                       "timing_ms": timing},
                      stream, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
