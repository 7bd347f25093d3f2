"""Lag and jitter of the output filters, so a user can pick settings: One-Euro (per setting) and `smoothing`.

Usage: python benchmarks/bench_one_euro.py [--video PATH] [--frames N] [--cache FILE.npz] [--json]

- Lag, synthetic, 30 fps, no noise: a 5 cm step (ms until the output covers 50 % and 90 % of it) and a
  0.2 m/s ramp (steady-state delay, ms). One-Euro settings run on the pure signal; the refinement's `smoothing`
  (a temporal prior inside the 3D fit) runs through the real RefinementLifter on a project-generated hand whose
  2D keypoints step / slide sideways by the same amount (its reference: the same video-mode lifter with
  smoothing 0, so what is measured is the prior's own lag).
- Jitter, real: the right hand of ../shared/data/video/right_hand_motion.mp4 through the real pipeline (video mode,
  assumed intrinsics) with smoothing 0 and 0.5, then each One-Euro setting on those joints: RMS of the second
  difference of every joint's position (mm per frame^2; high-frequency shake, little affected by lag), and as a
  ratio to the unfiltered output; plus the mean distance to the unfiltered joints (mm; what the filter shifts).
- Cost: the filter and the grasp signals per hand against the pipeline's own time per frame, as a ratio.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from hand_recon_ros.commands.bench import cpu_description
from hand_recon_ros.pipeline import refinement as rf
from hand_recon_ros.pipeline import synthetic_scenes
from hand_recon_ros.pipeline.grasp_signals import GraspTracker
from hand_recon_ros.pipeline.one_euro_filter import OneEuroFilter, OneEuroSettings
from hand_recon_ros.pipeline.types import CameraIntrinsics, FrameResult, HandDetection, RotatedRect

FPS = 30.0
STEP_M = 0.05
RAMP_M_S = 0.2
LAG_FRAMES = 45  # 1.5 s: the ramp moves the hand 0.3 m, still inside the synthetic camera's view
DEFAULT_VIDEO = Path(__file__).resolve().parents[2] / "shared" / "data" / "video" / "right_hand_motion.mp4"
INTRINSICS = CameraIntrinsics(600.0, 600.0, 320.0, 240.0, 640, 480)
# (min_cutoff_hz, beta, d_cutoff_hz); min_cutoff 0 = off.
SETTINGS: tuple[tuple[float, float, float], ...] = (
    (0.0, 0.0, 1.0), (0.5, 0.0, 1.0), (1.0, 0.0, 1.0), (1.0, 5.0, 1.0), (1.0, 20.0, 1.0), (1.0, 50.0, 1.0),
    (0.5, 20.0, 1.0), (2.0, 20.0, 1.0), (0.5, 100.0, 1.0),
)
SMOOTHINGS: tuple[float, ...] = (0.0, 0.5, 1.0)


def step_metrics(times_s: np.ndarray, output: np.ndarray, start_frame: int, size: float) -> tuple[float, float]:
    """Milliseconds after the step until ``output`` covers 50 % and 90 % of ``size`` (NaN if never)."""
    result = []
    for fraction in (0.5, 0.9):
        reached = np.nonzero(output[start_frame:] >= fraction * size)[0]
        result.append(float((times_s[start_frame + reached[0]] - times_s[start_frame]) * 1e3) if reached.size
                      else float("nan"))
    return result[0], result[1]


def filter_lag(settings: OneEuroSettings) -> dict[str, float]:
    """Step and ramp lag of the One-Euro filter on a pure 1D signal at FPS."""
    t = np.arange(LAG_FRAMES) / FPS
    start = 5
    step = np.where(np.arange(LAG_FRAMES) >= start, STEP_M, 0.0)
    f = OneEuroFilter(settings)
    out = np.array([f.filter(np.array([x]), ti)[0] for x, ti in zip(step, t)])
    t50, t90 = step_metrics(t, out, start, STEP_M)
    ramp = RAMP_M_S * t
    f = OneEuroFilter(settings)
    out = np.array([f.filter(np.array([x]), ti)[0] for x, ti in zip(ramp, t)])
    return {"step_t50_ms": t50, "step_t90_ms": t90, "ramp_delay_ms": float((ramp[-1] - out[-1]) / RAMP_M_S * 1e3)}


def _detection(obs: rf.HandObservation, shift_px: float) -> HandDetection:
    keypoints = obs.keypoints_px + np.array([shift_px, 0.0])
    z = np.zeros(21) if obs.keypoints_z is None else obs.keypoints_z
    return HandDetection(obs.side, 0.9, 0.9, keypoints.astype(np.float32), z.astype(np.float32),
                         obs.world.astype(np.float32), RotatedRect(320, 240, 200, 200, 0.0), track_id=0)


def smoothing_lag(smoothing: float) -> dict[str, float]:
    """Step and ramp lag of the refinement's `smoothing` prior (wrist x), through the real lifter."""
    from hand_recon_ros.pipeline.config import PipelineConfig
    from hand_recon_ros.pipeline.refine_lift import RefinementLifter

    scene = synthetic_scenes.synthetic_scene(np.random.default_rng(7), INTRINSICS, noise_px=0.0, world_noise_m=0.0,
                                             world_scale_error=0.0, relative_depth_noise_px=0.0, depth_m=0.6)
    obs = next(o for o in scene.observations if o.side == "right")
    depth = float(scene.truth[[o.side for o in scene.observations].index("right")][0, 2])
    px_per_m = INTRINSICS.fx / depth
    t = np.arange(LAG_FRAMES) / FPS
    start = 5
    results = {}
    # towards the image centre and beyond (the right hand starts right of it), so it stays in view
    for name, shifts in (("step", np.where(np.arange(LAG_FRAMES) >= start, -STEP_M * px_per_m, 0.0)),
                         ("ramp", -RAMP_M_S * t * px_per_m)):
        # the same video-mode lifter without the prior: what is left is the prior's own lag
        reference = RefinementLifter(PipelineConfig(mode="video", smoothing=0.0))
        lifter = RefinementLifter(PipelineConfig(mode="video", smoothing=smoothing))
        ref, out = [], []
        for shift, ti in zip(shifts, t):
            det = _detection(obs, float(shift))
            ref.append(reference.lift([det], INTRINSICS, ti)[0].joints_3d[0, 0])
            out.append(lifter.lift([det], INTRINSICS, ti)[0].joints_3d[0, 0])
        ref, out = -(np.array(ref) - ref[0]), -(np.array(out) - out[0])  # the motion as a positive signal
        if name == "step":
            results["step_t50_ms"], results["step_t90_ms"] = step_metrics(t, out, start, ref[-1])
        else:
            speed = (ref[-1] - ref[-11]) / (t[-1] - t[-11])
            results["ramp_delay_ms"] = float((ref[-1] - out[-1]) / speed * 1e3)
    return results


def video_joints(video: Path, frames: int, smoothing: float) -> tuple[np.ndarray, np.ndarray, float]:
    """Right-hand joints (N, 21, 3) and stamps (N,) from the real pipeline, and its median ms per frame."""
    from hand_recon_ros.io.image_source import iter_frames
    from hand_recon_ros.pipeline.config import PipelineConfig
    from hand_recon_ros.pipeline.hand_pipeline import HandPipeline

    pipeline = HandPipeline(PipelineConfig(mode="video", smoothing=smoothing))
    joints, stamps, times = [], [], []
    for frame in iter_frames([str(video)]):
        if frame.image is None or len(stamps) >= frames:
            break
        started = time.perf_counter()
        result = pipeline.process(frame.image, None, frame.index / FPS)
        times.append((time.perf_counter() - started) * 1e3)
        right = [h for h in result.hands if h.side == "right" and h.joints_3d is not None]
        joints.append(right[0].joints_3d if right else np.full((21, 3), np.nan))
        stamps.append(frame.index / FPS)
    pipeline.close()
    return np.array(joints, dtype=np.float64), np.array(stamps), float(np.median(times))


def jitter_mm(joints: np.ndarray) -> float:
    """RMS over joints and frames of |x[t+1] - 2 x[t] + x[t-1]| in mm (frames with NaN neighbours skipped)."""
    second = joints[2:] - 2.0 * joints[1:-1] + joints[:-2]
    norms = np.linalg.norm(second, axis=-1)
    return float(np.sqrt(np.nanmean(norms ** 2)) * 1e3)


def apply_filter(joints: np.ndarray, stamps: np.ndarray, settings: OneEuroSettings) -> tuple[np.ndarray, float]:
    """The filtered sequence and the filter's median time per hand (microseconds)."""
    f = OneEuroFilter(settings)
    out, times = np.empty_like(joints), []
    for k, (x, t) in enumerate(zip(joints, stamps)):
        started = time.perf_counter()
        out[k] = f.filter(x, t)
        times.append((time.perf_counter() - started) * 1e6)
    return out, float(np.median(times))


def grasp_cost_us(joints: np.ndarray) -> float:
    """Median microseconds of the grasp signals for one hand."""
    tracker = GraspTracker()
    detection = HandDetection("right", 0.9, 0.9, np.zeros((21, 2), np.float32), np.zeros(21, np.float32),
                              np.zeros((21, 3), np.float32), RotatedRect(0, 0, 1, 1, 0), 0)
    from hand_recon_ros.pipeline.types import HandResult

    times = []
    for x in joints[np.all(np.isfinite(joints), axis=(1, 2))][:300]:
        frame = FrameResult(1, 1, True, [HandResult(detection, x.astype(np.float32), np.ones(21, np.float32))])
        started = time.perf_counter()
        tracker.apply(frame)
        times.append((time.perf_counter() - started) * 1e6)
    return float(np.median(times))


def main() -> int:
    """Print (or --json) the lag, jitter and cost tables."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", type=Path, default=DEFAULT_VIDEO)
    parser.add_argument("--frames", type=int, default=621)
    parser.add_argument("--cache", type=Path, default=None, help="keep the pipeline's joints here (reruns skip it)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    report: dict = {"cpu": cpu_description(), "filter_lag": [], "smoothing_lag": [], "jitter": {}}
    for min_cutoff, beta, d_cutoff in SETTINGS:
        report["filter_lag"].append({"min_cutoff_hz": min_cutoff, "beta": beta, "d_cutoff_hz": d_cutoff,
                                     **filter_lag(OneEuroSettings(min_cutoff, beta, d_cutoff))})
    for smoothing in SMOOTHINGS:
        report["smoothing_lag"].append({"smoothing": smoothing, **smoothing_lag(smoothing)})
    cache = dict(np.load(args.cache)) if args.cache and args.cache.is_file() else {}
    for smoothing in (0.0, 0.5):
        key = f"s{smoothing}"
        if f"{key}_joints" not in cache:
            joints, stamps, ms = video_joints(args.video, args.frames, smoothing)
            cache.update({f"{key}_joints": joints, f"{key}_stamps": stamps, f"{key}_ms": np.array(ms)})
        joints, stamps, pipeline_ms = cache[f"{key}_joints"], cache[f"{key}_stamps"], float(cache[f"{key}_ms"])
        raw = jitter_mm(joints)
        rows = []
        for min_cutoff, beta, d_cutoff in SETTINGS:
            out, cost_us = apply_filter(joints, stamps, OneEuroSettings(min_cutoff, beta, d_cutoff))
            shift = float(np.nanmean(np.linalg.norm(out - joints, axis=-1)) * 1e3)
            rows.append({"min_cutoff_hz": min_cutoff, "beta": beta, "d_cutoff_hz": d_cutoff,
                         "jitter_mm": jitter_mm(out), "jitter_ratio": jitter_mm(out) / raw, "shift_mm": shift,
                         "cost_us": cost_us, "cost_ratio_to_pipeline": cost_us / 1e3 / pipeline_ms})
        report["jitter"][key] = {"frames": int(len(joints)),
                                 "frames_with_right_hand": int(np.all(np.isfinite(joints), axis=(1, 2)).sum()),
                                 "pipeline_ms_median": pipeline_ms, "unfiltered_jitter_mm": raw, "rows": rows}
        if key == "s0.5":
            grasp = grasp_cost_us(joints)
            report["grasp_cost_us"], report["grasp_cost_ratio_to_pipeline"] = grasp, grasp / 1e3 / pipeline_ms
    if args.cache:
        np.savez(args.cache, **cache)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"CPU: {report['cpu']}")
    print("\nLag on synthetic signals, 30 fps (One-Euro on the pure signal):")
    print("| min_cutoff_hz | beta | d_cutoff_hz | 5 cm step: 50 % / 90 % (ms) | 0.2 m/s ramp delay (ms) |")
    for r in report["filter_lag"]:
        print(f"| {r['min_cutoff_hz']} | {r['beta']} | {r['d_cutoff_hz']} | {r['step_t50_ms']:.0f} / "
              f"{r['step_t90_ms']:.0f} | {r['ramp_delay_ms']:.0f} |")
    print("\nLag of the refinement's `smoothing` (real RefinementLifter, project hand, 2D step/slide):")
    for r in report["smoothing_lag"]:
        print(f"| smoothing {r['smoothing']} | {r['step_t50_ms']:.0f} / {r['step_t90_ms']:.0f} | "
              f"{r['ramp_delay_ms']:.0f} |")
    for key, block in report["jitter"].items():
        print(f"\nJitter on {args.video.name}, pipeline smoothing {key[1:]}: {block['frames_with_right_hand']} of "
              f"{block['frames']} frames with the right hand; pipeline {block['pipeline_ms_median']:.1f} ms/frame; "
              f"unfiltered jitter {block['unfiltered_jitter_mm']:.2f} mm")
        print("| min_cutoff_hz | beta | jitter (mm) | ratio | mean shift (mm) | cost (us) | cost / pipeline |")
        for r in block["rows"]:
            print(f"| {r['min_cutoff_hz']} | {r['beta']} | {r['jitter_mm']:.2f} | {r['jitter_ratio']:.2f} | "
                  f"{r['shift_mm']:.1f} | {r['cost_us']:.0f} | {r['cost_ratio_to_pipeline']:.4f} |")
    print(f"\nGrasp signals: {report['grasp_cost_us']:.0f} us per hand = "
          f"{report['grasp_cost_ratio_to_pipeline']:.4f} of the pipeline's time per frame")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
