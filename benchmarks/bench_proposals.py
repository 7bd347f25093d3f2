#!/usr/bin/env python3
"""ROI proposals where the palm detector misses hands: hands found, false hands, 2D error, time and crops per source.

The InterHand2.6M photos are only 4 (6 hands), so this benchmark adds frames built at run time from ../shared/data
(nothing is stored): the shared video (every --every-th frame) and woman_hands.jpg, darkened (x0.15) or with
Gaussian noise (sigma 40), kept where the pipeline finds the hand on the clean frame (presence >= 0.9) and the
palm detector finds no palm on the degraded one. Their truth is the clean frame's landmarks (pseudo ground truth).
Frames with no hand (both photos with the hands painted over, the video frames with the hand painted over, noise,
a gradient) count false hands: every hand a proposal accepts there is one.

    python benchmarks/bench_proposals.py [--sources grid palm] [--rounds 3] [--every 20] [--json OUT]

Every source runs the same frames through HandPipeline.process in image mode (max_hands 2), rounds alternating
between sources. Printed per source and set: truth hands found, false hands, mean 2D error of the found ones
(pixels, against truth), the ``proposals`` stage ms (median, p95) and network work per proposal frame (palm
calls, landmark crops). A hand counts as found when its mean keypoint distance to a truth hand is below
MATCH_FRACTION of that hand's keypoint bounding-box diagonal.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment

from hand_recon_ros.commands.bench import cpu_description
from hand_recon_ros.evaluation.interhand import load_interhand
from hand_recon_ros.pipeline.config import PipelineConfig
from hand_recon_ros.pipeline.hand_pipeline import HandPipeline

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
MATCH_FRACTION = 0.25
CLEAN_MIN_PRESENCE = 0.9
DARK_GAIN = 0.15
NOISE_SIGMA = 40.0
PAINT_DILATE_PX = 25


@dataclass
class Frame:
    """One test frame: the RGB image and its truth hands (keypoints (21, 2) each; none for a hand-free frame)."""

    set_name: str
    name: str
    image: np.ndarray
    truth: list[np.ndarray] = field(default_factory=list)


def read_rgb(path: Path) -> np.ndarray:
    """An image file as RGB uint8."""
    image = cv2.imread(str(path))
    if image is None:
        raise SystemExit(f"cannot read {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def video_frames(path: Path, every: int) -> list[np.ndarray]:
    """Every ``every``-th frame of a video as RGB."""
    capture, frames, index = cv2.VideoCapture(str(path)), [], 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        if index % every == 0:
            frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
        index += 1
    return frames


def darken(image: np.ndarray) -> np.ndarray:
    """The image at DARK_GAIN of its brightness (a dim room)."""
    return (image.astype(np.float32) * DARK_GAIN).astype(np.uint8)


def add_noise(image: np.ndarray, seed: int) -> np.ndarray:
    """The image with Gaussian noise of NOISE_SIGMA grey levels (a high-gain sensor)."""
    noise = np.random.default_rng(seed).normal(0.0, NOISE_SIGMA, image.shape)
    return np.clip(image.astype(np.float32) + noise, 0, 255).astype(np.uint8)


def paint_over(image: np.ndarray, hands: list[np.ndarray]) -> np.ndarray:
    """The image with every hand (dilated hull of its keypoints) painted over from its surroundings."""
    mask = np.zeros(image.shape[:2], np.uint8)
    for keypoints in hands:
        cv2.fillConvexPoly(mask, cv2.convexHull(keypoints.astype(np.int32)), 255)
    mask = cv2.dilate(mask, np.ones((2 * PAINT_DILATE_PX + 1,) * 2, np.uint8))
    return cv2.inpaint(image, mask, 9, cv2.INPAINT_TELEA)


def build_frames(every: int) -> list[Frame]:
    """The benchmark frames (see the module docstring); clean frames are judged by a proposal-free pipeline."""
    judge = HandPipeline(PipelineConfig(mode="image", roi_proposals=False))
    frames: list[Frame] = []
    interhand = SHARED_DATA / "interhand2.6m"
    for sample in load_interhand(interhand):
        frames.append(Frame("interhand", sample.image_path.name, read_rgb(sample.image_path),
                            [h.keypoints_2d.astype(np.float32) for h in sample.hands if h.valid.all()]))
    sources = [("woman", "woman_hands.jpg", read_rgb(SHARED_DATA / "woman_hands.jpg"))]
    video = video_frames(SHARED_DATA / "video" / "right_hand_motion.mp4", every)
    sources += [("video", f"frame{i * every:04d}", f) for i, f in enumerate(video)]
    # 4:3 (640x480-like) frames: the 16:9 video's centre, every other sampled frame
    sources += [("video43", f"frame{i * every:04d}", np.ascontiguousarray(f[:, (f.shape[1] - f.shape[0] * 4 // 3) // 2:
                                                                            (f.shape[1] + f.shape[0] * 4 // 3) // 2]))
                for i, f in enumerate(video) if i % 2 == 0]
    for seed, (origin, name, clean) in enumerate(sources):
        hands = [h.detection.keypoints_2d for h in judge.process(clean).hands
                 if h.detection.score >= CLEAN_MIN_PRESENCE]
        if not hands:
            continue
        for kind, degraded in (("dark", darken(clean)), ("noise", add_noise(clean, seed))):
            if not judge.palm.detect(degraded, judge.config.min_detection_score):
                frames.append(Frame(f"{origin}-{kind}", name, degraded, hands))
        if origin == "woman" or seed % 4 == 1:  # a few painted-over video frames, both photos
            frames.append(Frame("no-hand", f"{name}-painted", paint_over(clean, hands)))
    height, width = 480, 640
    frames.append(Frame("no-hand", "noise", np.random.default_rng(7).integers(0, 256, (height, width, 3), np.uint8)))
    ramp = np.linspace(0, 255, width, dtype=np.float32)[None, :, None] * np.ones((height, 1, 3), np.float32)
    frames.append(Frame("no-hand", "gradient", ramp.astype(np.uint8)))
    judge.close()
    return frames


class WorkCounter:
    """Counts network work (calls and batch items) through a backend's run and run_filled."""

    def __init__(self, backend: Any) -> None:
        self.items = self.calls = 0
        run, run_filled = backend.run, backend.run_filled

        def counted_run(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            self.calls += 1
            self.items += int(next(iter(feeds.values())).shape[0])
            return run(feeds)

        def counted_run_filled(batch: int, fill: Callable[[np.ndarray], None]) -> dict[str, np.ndarray]:
            self.calls += 1
            self.items += int(batch)
            return run_filled(batch, fill)

        backend.run, backend.run_filled = counted_run, counted_run_filled

    def reset(self) -> tuple[int, int]:
        """(calls, items) since the last reset."""
        counts = (self.calls, self.items)
        self.calls = self.items = 0
        return counts


def match(found: list[np.ndarray], truth: list[np.ndarray]) -> tuple[list[float], int]:
    """Mean 2D errors (px) of the truth hands found, and the count of found hands that match no truth hand."""
    if not found or not truth:
        return [], len(found)
    cost = np.array([[float(np.linalg.norm(k - hand, axis=1).mean()) for k in found] for hand in truth])
    rows, cols = linear_sum_assignment(cost)  # one found hand per truth hand, least total distance
    errors = [float(cost[r, c]) for r, c in zip(rows, cols)
              if cost[r, c] < MATCH_FRACTION * float(np.linalg.norm(truth[r].max(axis=0) - truth[r].min(axis=0)))]
    return errors, len(found) - len(errors)


def count_proposal_work(pipeline: HandPipeline) -> list[tuple[int, int]]:
    """Wrap the pipeline's proposal step so that each call appends its (palm calls, landmark crops) to the list."""
    palm, landmarks = WorkCounter(pipeline.palm.backend), WorkCounter(pipeline.landmarks.backend)
    work: list[tuple[int, int]] = []
    propose = pipeline._propose

    def counted(*args: Any, **kwargs: Any) -> Any:
        palm.reset()
        landmarks.reset()
        try:
            return propose(*args, **kwargs)
        finally:
            work.append((palm.reset()[0], landmarks.reset()[1]))

    pipeline._propose = counted  # type: ignore[method-assign]
    return work


def run_source(pipeline: HandPipeline, work: list[tuple[int, int]], frames: list[Frame],
               stats: dict[str, dict[str, list]]) -> None:
    """One pass over the frames; appends per-set results (found errors, false hands, ms, work) to ``stats``."""
    for frame in frames:
        work.clear()
        result = pipeline.process(frame.image)
        errors, false_hands = match([h.detection.keypoints_2d for h in result.hands], frame.truth)
        entry = stats.setdefault(frame.set_name, {"errors": [], "false": [], "truth": [], "ms": [],
                                                   "palm_calls": [], "crops": []})
        entry["errors"] += errors
        entry["false"].append(false_hands)
        entry["truth"].append(len(frame.truth))
        if "proposals" in result.timing_ms:
            entry["ms"].append(result.timing_ms["proposals"])
            entry["palm_calls"].append(sum(w[0] for w in work))
            entry["crops"].append(sum(w[1] for w in work))


def main() -> int:
    """Build the frames, run every source --rounds times alternating, print one table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sources", nargs="+", default=["grid", "palm"], choices=["grid", "palm"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--every", type=int, default=20, help="video frame stride")
    parser.add_argument("--json", type=Path, help="write every figure here")
    args = parser.parse_args()
    if not SHARED_DATA.is_dir():
        print(f"no shared data at {SHARED_DATA}", file=sys.stderr)
        return 1
    start = time.perf_counter()
    frames = build_frames(args.every)
    pipelines = {source: HandPipeline(PipelineConfig(mode="image", proposal_source=source))
                 for source in args.sources}
    work = {source: count_proposal_work(p) for source, p in pipelines.items()}
    stats: dict[str, dict[str, dict[str, list]]] = {source: {} for source in args.sources}
    for _ in range(args.rounds):
        for source, pipeline in pipelines.items():
            run_source(pipeline, work[source], frames, stats[source])
    sets = sorted({f.set_name for f in frames}, key=[f.set_name for f in frames].index)
    print(f"{len(frames)} frames ({', '.join(f'{s} {sum(f.set_name == s for f in frames)}' for s in sets)}), "
          f"{args.rounds} rounds; cpu: {cpu_description()}; load {os.getloadavg()[0]:.2f}")
    print(f"{'source':<6} {'set':<12} {'found':>9} {'false':>6} {'2D px':>7} {'ms p50':>8} {'ms p95':>8} "
          f"{'palm calls':>11} {'crops':>6}")
    for source in args.sources:
        for name in sets:
            entry = stats[source][name]
            rounds = args.rounds
            truth = sum(entry["truth"]) // rounds
            found = len(entry["errors"]) // rounds
            false_hands = sum(entry["false"]) // rounds
            error = f"{np.mean(entry['errors']):7.1f}" if entry["errors"] else f"{'-':>7}"
            ms = entry["ms"] or [np.nan]
            print(f"{source:<6} {name:<12} {found:>4}/{truth:<4} {false_hands:>6} {error} {np.median(ms):8.1f} "
                  f"{np.percentile(ms, 95):8.1f} {np.mean(entry['palm_calls'] or [0]):11.1f} "
                  f"{np.mean(entry['crops'] or [0]):6.1f}")
    print(f"benchmark wall time: {time.perf_counter() - start:.0f} s")
    if args.json:
        args.json.write_text(json.dumps({"cpu": cpu_description(), "stats": stats}, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
