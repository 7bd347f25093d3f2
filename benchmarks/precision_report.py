#!/usr/bin/env python3
"""FP16 and INT8 precision graphs vs FP32 on the CPU (ONNX Runtime): same hands found? landmark difference? speed?

    source env.sh && python benchmarks/precision_report.py            # ../shared/data photos + the shared video

Every frame (the photos, and every VIDEO_STEP-th video frame that is not a calibration frame) runs through one
HandPipeline per precision in image mode (detector on every frame, so one frame's difference never carries into
the next). Hands are paired by side; the figure is the 2D landmark distance in input-image pixels over all 21
joints of every paired hand. INT8 is calibrated on every CALIB_STEP-th video frame (written to a temporary
folder, never into the repository) and shown in both Q/DQ flavours: "cpu" (uint8 activations, what
onnxruntime-cpu runs) and "tensorrt" (symmetric int8, what TensorRT and ORT's GPU providers run); the INT8 recipe
runs the palm detector FP32 and the landmark network mixed (precision_graphs.INT8_FP32_MODELS /
INT8_FP32_SENSITIVE_FRACTION). Network times (palm + landmarks stages) and landmark-stage times are medians from
the same run, as ratios to FP32.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CALIB_STEP = 20  # every 20th video frame (offset CALIB_OFFSET) calibrates INT8
CALIB_OFFSET = 10
VIDEO_STEP = 5  # every 5th of the other frames is evaluated
FP16_P95_LIMIT_PX = 0.5
INT8_P95_LIMIT_PX = 2.0
VARIANTS: tuple[tuple[str, str, str], ...] = (  # label, precision, int8 flavour
    ("fp32", "fp32", ""), ("fp16", "fp16", ""), ("int8-cpu", "int8", "cpu"), ("int8-tensorrt", "int8", "tensorrt"),
)


def cpu_model() -> str:
    """The CPU model line of /proc/cpuinfo."""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def load_frames(data: Path, video: Path, calib_dir: Path) -> list[tuple[str, np.ndarray]]:
    """(name, RGB) evaluation frames; writes the calibration frames into ``calib_dir``."""
    frames = []
    for path in sorted(data.glob("*.jpg")) + sorted((data / "interhand2.6m").glob("*.jpg")):
        frames.append((path.name, cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)))
    cap = cv2.VideoCapture(str(video))
    index = 0
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        if index % CALIB_STEP == CALIB_OFFSET:
            cv2.imwrite(str(calib_dir / f"frame{index:04d}.jpg"), bgr)
        elif index % VIDEO_STEP == 0:
            frames.append((f"video#{index}", cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)))
        index += 1
    return frames


def make_pipeline(precision: str, flavour: str, calib_dir: Path, threads: int):  # noqa: ANN201 - HandPipeline
    """A HandPipeline (image mode, no 3D) whose two onnxruntime-cpu backends run ``precision``."""
    from hand_recon_ros.engines.registry import create_backend
    from hand_recon_ros.models.model_files import ensure_models
    from hand_recon_ros.pipeline.config import PipelineConfig
    from hand_recon_ros.pipeline.hand_pipeline import HandPipeline

    paths = ensure_models("full")
    options = {"precision": precision, "intra_op_threads": threads}
    if precision == "int8":
        options["calib_dir"] = str(calib_dir)
    backends = []
    for path in (paths.palm_onnx, paths.landmark_onnx):
        backend = create_backend("onnxruntime-cpu", path, **options)
        if flavour:
            backend.int8_flavour = flavour
        backends.append(backend)
    config = PipelineConfig(mode="image", refine_3d=False, intra_op_threads=threads, precision=precision,
                            calib_dir=str(calib_dir) if precision == "int8" else None)
    return HandPipeline(config, palm_backend=backends[0], landmark_backend=backends[1])


def run_variant(pipeline, frames: list[tuple[str, np.ndarray]]) -> tuple[list[dict], list[float], list[float]]:  # noqa: ANN001
    """Per frame: side → (21, 2) landmarks; palm+landmarks network ms; landmark-stage ms."""
    hands, network_ms, landmark_ms = [], [], []
    for _, rgb in frames:
        result = pipeline.process(rgb)
        hands.append({h.detection.side: h.detection.keypoints_2d.copy() for h in result.hands})
        network_ms.append(result.timing_ms["palm"] + result.timing_ms["landmarks"])
        landmark_ms.append(result.timing_ms["landmarks"])
    return hands, network_ms, landmark_ms


def landmarks_on_fp32_crops(pipelines: dict, frames: list[tuple[str, np.ndarray]]) -> dict[str, dict[str, float]]:
    """The landmark network alone: every variant fed the same crops (FP32 detector ROIs); distance percentiles."""
    from hand_recon_ros.pipeline.roi import palm_to_roi

    detector = pipelines["fp32"].palm
    rois = [[palm_to_roi(p) for p in detector.detect(rgb, 0.5)] for _, rgb in frames]
    outputs = {label: [p.landmarks.estimate(rgb, r) for (_, rgb), r in zip(frames, rois)]
               for label, p in pipelines.items()}
    table = {}
    for label, per_frame in outputs.items():
        dists = [np.linalg.norm(a.keypoints_2d - b.keypoints_2d, axis=1)
                 for frame_a, frame_b in zip(per_frame, outputs["fp32"]) for a, b in zip(frame_a, frame_b)]
        flat = np.concatenate(dists) if dists else np.zeros(1)
        table[label] = {"crops": len(dists), "p50_px": float(np.percentile(flat, 50)),
                        "p95_px": float(np.percentile(flat, 95)), "max_px": float(flat.max())}
    return table


def compare(reference: list[dict], other: list[dict], names: list[str]) -> dict[str, float]:
    """Same hands (sides) per frame, and the landmark distance percentiles over paired hands."""
    same = sum(set(r) == set(o) for r, o in zip(reference, other))
    differing = [f"{n}: {sorted(r)} vs {sorted(o)}" for n, r, o in zip(names, reference, other) if set(r) != set(o)]
    dists = [np.linalg.norm(r[s] - o[s], axis=1) for r, o in zip(reference, other) for s in r if s in o]
    flat = np.concatenate(dists) if dists else np.zeros(1)
    return {"frames_same_hands": same, "frames": len(reference), "hands_paired": len(dists),
            "hands_reference": sum(len(r) for r in reference), "p50_px": float(np.percentile(flat, 50)),
            "p95_px": float(np.percentile(flat, 95)), "max_px": float(flat.max()), "differing_frames": differing}


def main() -> int:
    """Run every precision on the same frames and print one table (and JSON with --json)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=SHARED_DATA)
    parser.add_argument("--video", type=Path, default=SHARED_DATA / "video" / "right_hand_motion.mp4")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=2, help="timed passes per variant, alternating (noise)")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args()
    if not args.video.is_file() or not args.data.is_dir():
        print(f"precision_report: needs {args.data} and {args.video}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="hand_recon_calib_") as tmp:
        calib_dir = Path(tmp)
        frames = load_frames(args.data, args.video, calib_dir)
        n_calib = len(list(calib_dir.glob("*.jpg")))
        pipelines = {label: make_pipeline(p, f, calib_dir, args.threads) for label, p, f in VARIANTS}
        hands: dict[str, list[dict]] = {}
        times: dict[str, list[float]] = {label: [] for label in pipelines}
        lm_times: dict[str, list[float]] = {label: [] for label in pipelines}
        start = time.monotonic()
        for _ in range(args.rounds):  # alternate variants so machine load hits all of them alike
            for label, pipeline in pipelines.items():
                found, ms, lm_ms = run_variant(pipeline, frames)
                hands[label] = found
                times[label] += ms
                lm_times[label] += lm_ms
        elapsed = time.monotonic() - start
        alone = landmarks_on_fp32_crops(pipelines, frames)
    fp32_ms = float(np.median(times["fp32"]))
    fp32_lm_ms = float(np.median(lm_times["fp32"]))
    print(f"cpu: {cpu_model()}; {len(frames)} frames ({len(frames) - sum(n.startswith('video') for n, _ in frames)} "
          f"photos + video), INT8 calibrated on {n_calib} other video frames; {elapsed:.0f} s")
    print(f"{'variant':<15}{'same hands':>12}{'paired':>9}{'p50 px':>9}{'p95 px':>9}{'max px':>9}"
          f"{'net ms':>9}{'vs fp32':>9}{'lm ms':>8}{'vs fp32':>9}")
    report = {"cpu": cpu_model(), "frames": len(frames), "calibration_frames": n_calib, "variants": {}}
    for label in pipelines:
        c = compare(hands["fp32"], hands[label], [n for n, _ in frames])
        med = float(np.median(times[label]))
        lm_med = float(np.median(lm_times[label]))
        c.update(network_ms_median=med, time_ratio_vs_fp32=med / fp32_ms, landmark_ms_median=lm_med,
                 landmark_time_ratio_vs_fp32=lm_med / fp32_lm_ms)
        report["variants"][label] = c
        print(f"{label:<15}{c['frames_same_hands']:>7}/{c['frames']:<4}{c['hands_paired']:>9}{c['p50_px']:>9.2f}"
              f"{c['p95_px']:>9.2f}{c['max_px']:>9.2f}{med:>9.1f}{med / fp32_ms:>8.2f}x{lm_med:>8.1f}"
              f"{lm_med / fp32_lm_ms:>8.2f}x")
    report["landmarks_on_fp32_crops"] = alone
    print("landmark network alone, same FP32 detector crops:")
    for label, c in alone.items():
        print(f"  {label:<15}{c['crops']:>5} crops  p50 {c['p50_px']:.2f}  p95 {c['p95_px']:.2f}  "
              f"max {c['max_px']:.2f} px")
    for label, c in report["variants"].items():
        for line in c["differing_frames"]:
            print(f"  {label}: other hands on {line}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    ok = (report["variants"]["fp16"]["p95_px"] <= FP16_P95_LIMIT_PX
          and all(report["variants"][k]["p95_px"] <= INT8_P95_LIMIT_PX for k in ("int8-cpu", "int8-tensorrt")))
    print(f"limits (FP16 p95 <= {FP16_P95_LIMIT_PX} px, INT8 p95 <= {INT8_P95_LIMIT_PX} px): "
          f"{'met' if ok else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
