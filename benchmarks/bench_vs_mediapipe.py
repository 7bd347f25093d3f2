#!/usr/bin/env python3
"""Side-by-side speed: MediaPipe 0.10.14's own Hands solution vs our HandPipeline on the same frames.

MediaPipe runs in a SEPARATE venv (it pins old numpy/protobuf): create it once with
    python3 -m venv /tmp/mp-venv && /tmp/mp-venv/bin/pip install mediapipe==0.10.14
then, from the project venv (source env.sh):
    python benchmarks/bench_vs_mediapipe.py --image ../shared/data/woman_hands.jpg
Static = a detector on every frame (MediaPipe static_image_mode, our mode "image"); tracking = video mode on the
same frame repeated. Rounds alternate between the two systems so that load from other processes hits both.
Times are wall-clock per process() call (decode excluded: both get the decoded RGB frame).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np

DEFAULT_MP_PYTHON = "/tmp/mp-venv/bin/python"
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
DEFAULT_FRAMES = 60
DEFAULT_WARMUP = 10
DEFAULT_ROUNDS = 3
MODES = ("static", "tracking")

# Runs inside the MediaPipe venv; prints one JSON object: mode -> per-frame ms, hands found, labels.
MP_SCRIPT = r"""
import json, sys, time
import cv2
import mediapipe as mp
path, frames, warmup = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rgb = cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB)
out = {"version": mp.__version__}
for mode in ("static", "tracking"):
    with mp.solutions.hands.Hands(static_image_mode=(mode == "static"), max_num_hands=2, model_complexity=1,
                                  min_detection_confidence=0.5, min_tracking_confidence=0.5) as hands:
        for _ in range(warmup):
            res = hands.process(rgb)
        times = []
        for _ in range(frames):
            t = time.perf_counter()
            res = hands.process(rgb)
            times.append((time.perf_counter() - t) * 1000.0)
        labels = [h.classification[0].label for h in (res.multi_handedness or [])]
        out[mode] = {"ms": times, "hands": len(res.multi_hand_landmarks or []), "labels": labels}
print(json.dumps(out))
"""


def run_mediapipe(python: str, image: Path, frames: int, warmup: int) -> dict:
    """One MediaPipe round in its own venv; returns the parsed JSON (raises with its stderr on failure)."""
    proc = subprocess.run([python, "-c", MP_SCRIPT, str(image), str(frames), str(warmup)], capture_output=True,
                          text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"MediaPipe run failed ({python}):\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_ours(pipeline: object, rgb: np.ndarray, mode: str, frames: int, warmup: int) -> tuple[list[float], dict]:
    """Per-frame wall ms of HandPipeline.process in one mode, and the median per-stage timing_ms."""
    pipeline.update(mode="image" if mode == "static" else "video")
    pipeline.reset()
    for _ in range(warmup):
        pipeline.process(rgb)
    times, stages = [], []
    for _ in range(frames):
        t = time.perf_counter()
        result = pipeline.process(rgb)
        times.append((time.perf_counter() - t) * 1000.0)
        stages.append(result.timing_ms)
    median_stages = {k: float(np.median([s[k] for s in stages])) for k in stages[0]}
    return times, {"stages": median_stages, "hands": [h.side for h in result.hands]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", type=Path, default=SHARED_DATA / "woman_hands.jpg")
    parser.add_argument("--mp-python", default=DEFAULT_MP_PYTHON)
    parser.add_argument("--frames", type=int, default=DEFAULT_FRAMES)
    parser.add_argument("--warmup", type=int, default=DEFAULT_WARMUP)
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS)
    parser.add_argument("--threads", type=int, default=0, help="our inference threads (0 = ORT default)")
    parser.add_argument("--json", type=Path, default=None, help="also write all numbers here")
    args = parser.parse_args()
    if not args.image.is_file():
        parser.error(f"image not found: {args.image}")
    if not Path(args.mp_python).is_file():
        parser.error(f"MediaPipe venv python not found: {args.mp_python} (see this script's docstring)")

    from hand_recon_ros.pipeline.config import PipelineConfig
    from hand_recon_ros.pipeline.hand_pipeline import HandPipeline

    cv2.setNumThreads(1)
    rgb = cv2.cvtColor(cv2.imread(str(args.image)), cv2.COLOR_BGR2RGB)
    ours = {
        "ours_full": HandPipeline(PipelineConfig(intra_op_threads=args.threads)),
        "ours_2d_pnp": HandPipeline(PipelineConfig(intra_op_threads=args.threads, refine_3d=False)),
    }
    times: dict[str, dict[str, list[float]]] = {k: {m: [] for m in MODES} for k in ["mediapipe", *ours]}
    details: dict[str, dict] = {}
    for round_index in range(args.rounds):
        mp_result = run_mediapipe(args.mp_python, args.image, args.frames, args.warmup)
        details["mediapipe"] = {m: {k: v for k, v in mp_result[m].items() if k != "ms"} for m in MODES}
        details["mediapipe"]["version"] = mp_result["version"]
        for mode in MODES:
            times["mediapipe"][mode] += mp_result[mode]["ms"]
        for name, pipeline in ours.items():
            for mode in MODES:
                ms, info = run_ours(pipeline, rgb, mode, args.frames, args.warmup)
                times[name][mode] += ms
                details.setdefault(name, {})[mode] = info
        print(f"round {round_index + 1}/{args.rounds} done", file=sys.stderr)

    medians = {k: {m: float(np.median(v[m])) for m in MODES} for k, v in times.items()}
    p95 = {k: {m: float(np.percentile(v[m], 95)) for m in MODES} for k, v in times.items()}
    h, w = rgb.shape[:2]
    print(f"\n{args.image.name} ({w}x{h}), {args.rounds} rounds x {args.frames} frames, median ms/frame (p95)")
    print(f"our backends: {ours['ours_full'].backend_description}")
    print(f"{'mode':<10}{'MediaPipe ' + details['mediapipe']['version']:>22}{'ours (full)':>22}{'ours (2D+PnP)':>22}")
    for mode in MODES:
        mp_ms = medians["mediapipe"][mode]
        row = f"{mode:<10}{mp_ms:>12.2f} ({p95['mediapipe'][mode]:6.2f})"
        for name in ours:
            row += f"{medians[name][mode]:>10.2f} ({p95[name][mode]:6.2f}) x{medians[name][mode] / mp_ms:4.2f}"
        print(row)
    for mode in MODES:
        print(f"hands found [{mode}]: MediaPipe {details['mediapipe'][mode]['labels']} (mirrored-image labels), "
              f"ours {details['ours_full'][mode]['hands']}")
        print(f"  our stages [{mode}, full]: " +
              ", ".join(f"{k} {v:.2f}" for k, v in details["ours_full"][mode]["stages"].items()))
    if args.json:
        args.json.write_text(json.dumps({"medians_ms": medians, "p95_ms": p95, "details": details}, indent=2))
    for pipeline in ours.values():
        pipeline.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
