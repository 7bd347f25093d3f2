"""Retargeting on a real video: the real pipeline's hands -> Allegro / LEAP joint positions (dex-retargeting).

Usage: python benchmarks/bench_retargeting.py [--video PATH] [--urdf-dir DIR] [--frames N] [--json]

For each config: hands retargeted / failed, whether every output is finite and inside the URDF's limits, the
largest frame-to-frame joint step (radians, which joint, which frame), and the time per hand (median, p95) next
to the pipeline's own time per frame measured in the same run (as a ratio), with the CPU model. CPU time
(process time) is reported beside wall time: on a shared machine it is the steadier of the two.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from hand_recon_ros.commands.bench import cpu_description

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_VIDEO = ROOT / "shared" / "data" / "video" / "right_hand_motion.mp4"
DEFAULT_URDF_DIR = ROOT / "shared" / "robots"
CONFIGS: tuple[str, ...] = ("allegro_hand_right", "leap_hand_right", "allegro_hand_right_dexpilot")
FPS = 30.0


def pipeline_hands(video: Path, frames: int) -> tuple[list[tuple[int, np.ndarray | None]], float, float]:
    """(track id, right-hand joints or None) per frame from the real pipeline; its median wall and CPU ms."""
    from hand_recon_ros.io.image_source import iter_frames
    from hand_recon_ros.pipeline.config import PipelineConfig
    from hand_recon_ros.pipeline.hand_pipeline import HandPipeline

    pipeline = HandPipeline(PipelineConfig(mode="video"))
    hands, times, cpu = [], [], []
    for frame in iter_frames([str(video)]):
        if frame.image is None or len(hands) >= frames:
            break
        started, started_cpu = time.perf_counter(), time.process_time()
        result = pipeline.process(frame.image, None, frame.index / FPS)
        times.append((time.perf_counter() - started) * 1e3)
        cpu.append((time.process_time() - started_cpu) * 1e3)
        right = [h for h in result.hands if h.side == "right" and h.joints_3d is not None]
        hands.append((right[0].detection.track_id, right[0].joints_3d) if right else (-1, None))
    pipeline.close()
    return hands, float(np.median(times)), float(np.median(cpu))


def retarget_all(config: str, urdf_dir: Path, hands: list[tuple[int, np.ndarray | None]]) -> dict:
    """Retarget every frame's right hand with ``config``; the numbers for one table row."""
    from hand_recon_ros.retargeting.robot_retargeter import HandRetargeter

    retargeter = HandRetargeter(config, urdf_dir, "right")
    low, high = retargeter.joint_limits.T
    times, cpu, previous, previous_track = [], [], None, None
    outside = non_finite = retargeted = 0
    max_step, max_joint, max_frame = 0.0, "", -1
    for frame, (track, joints) in enumerate(hands):
        if joints is None:
            previous = None
            continue
        if track != previous_track:
            retargeter.reset()
            previous, previous_track = None, track
        started_cpu = time.process_time()
        out = retargeter.retarget(joints)
        cpu.append((time.process_time() - started_cpu) * 1e3)
        if out is None:
            previous = None
            continue
        retargeted += 1
        times.append(out.time_ms)
        q = out.positions
        non_finite += int(not np.all(np.isfinite(q)))
        outside += int(np.any(q < low) or np.any(q > high))
        if previous is not None:
            steps = np.abs(q - previous)
            k = int(np.argmax(steps))
            if steps[k] > max_step:
                max_step, max_joint, max_frame = float(steps[k]), out.joint_names[k], frame
        previous = q
    return {"config": config, "hands": sum(j is not None for _, j in hands), "retargeted": retargeted,
            "failures": retargeter.failures, "non_finite": non_finite, "outside_limits": outside,
            "max_step_rad": max_step, "max_step_joint": max_joint, "max_step_frame": max_frame,
            "time_ms_median": float(np.median(times)), "time_ms_p95": float(np.percentile(times, 95)),
            "cpu_ms_median": float(np.median(cpu))}


def main() -> int:
    """Print (or --json) the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", type=Path, default=DEFAULT_VIDEO)
    parser.add_argument("--urdf-dir", type=Path, default=DEFAULT_URDF_DIR)
    parser.add_argument("--frames", type=int, default=100000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    hands, pipeline_ms, pipeline_cpu_ms = pipeline_hands(args.video, args.frames)
    rows = [retarget_all(config, args.urdf_dir, hands) for config in CONFIGS]
    report = {"cpu": cpu_description(), "video": str(args.video), "frames": len(hands),
              "pipeline_ms_median": pipeline_ms, "pipeline_cpu_ms_median": pipeline_cpu_ms, "rows": rows}
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"CPU: {report['cpu']}")
    print(f"{args.video.name}: {len(hands)} frames, right hand in {rows[0]['hands']}; pipeline {pipeline_ms:.1f} ms "
          f"wall, {pipeline_cpu_ms:.1f} ms CPU per frame (medians, same run)")
    print("| config | retargeted / hands | non-finite | outside limits | largest step (rad, joint, frame) | "
          "wall ms per hand median / p95 | wall median / pipeline | CPU ms per hand | CPU / pipeline CPU |")
    for r in rows:
        print(f"| {r['config']} | {r['retargeted']} / {r['hands']} | {r['non_finite']} | {r['outside_limits']} | "
              f"{r['max_step_rad']:.3f} ({r['max_step_joint']}, {r['max_step_frame']}) | "
              f"{r['time_ms_median']:.2f} / {r['time_ms_p95']:.2f} | {r['time_ms_median'] / pipeline_ms:.2f} | "
              f"{r['cpu_ms_median']:.2f} | {r['cpu_ms_median'] / pipeline_cpu_ms:.2f} |")
        if r["failures"]:
            print(f"  not retargeted: {r['failures']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
