"""`hand-recon eval --format interhand DIR`: accuracy of the pipeline on InterHand2.6M-format ground truth.

Runs the 2D stages once per image (image mode, the dataset's intrinsics), then lifts the same detections with
each requested lifter (``pnp``: solvePnP of the world landmarks; ``refine``: the decoupled refinement), so the
3D numbers differ only by the lifter. ``--rois ground-truth`` crops the landmark network on ROIs made from
the ground-truth keypoints (with the ground-truth side) to measure the 3D stage on every annotated hand.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from hand_recon_ros.commands.precision_args import add_precision_arguments, precision_problem
from hand_recon_ros.engines.base import BackendError
from hand_recon_ros.engines.registry import DEFAULT_BACKEND
from hand_recon_ros.evaluation import hand_scores as em
from hand_recon_ros.evaluation.interhand import InterHandFormatError, InterHandSample, load_interhand
from hand_recon_ros.evaluation.metrics import HandEval, TwoHandEvaluator, format_table
from hand_recon_ros.models.model_files import ModelFileError
from hand_recon_ros.pipeline.types import CameraIntrinsics, HandDetection

log = logging.getLogger("hand_recon_ros.eval")

FORMATS: tuple[str, ...] = ("interhand",)
LIFTERS: tuple[str, ...] = ("pnp", "refine")
CONVENTIONS = ("MPJPE: wrist-aligned, no scale correction; PA-MPJPE: similarity Procrustes; MRRPE: right-minus-"
               "left wrist vector; wrist error: absolute camera-frame wrist distance; mm; 2D error in pixels")

Detector = Callable[[np.ndarray, CameraIntrinsics, InterHandSample], list[HandDetection]]


def register(subparsers: Any) -> None:
    """Add the `eval` sub-command."""
    parser = subparsers.add_parser("eval", help="accuracy against InterHand2.6M-format ground truth",
                                   description=__doc__)
    parser.add_argument("dataset", metavar="DIR", help="folder with the images and *_data/_camera/_joint_3d.json")
    parser.add_argument("--format", choices=FORMATS, default="interhand", help="annotation format")
    parser.add_argument("--output", "-o", default=None, metavar="REPORT.json", help="write the full report here")
    parser.add_argument("--lifter", choices=(*LIFTERS, "both"), default="both", help="3D stage(s) to score")
    parser.add_argument("--rois", choices=("detector", "ground-truth"), default="detector",
                        help="where the landmark crops come from (default: the palm detector)")
    parser.add_argument("--backend", default=DEFAULT_BACKEND, help="inference backend (default %(default)s)")
    parser.add_argument("--variant", choices=("full", "lite"), default="full", help="model variant")
    parser.add_argument("--models-dir", default=None, help="model cache directory")
    parser.add_argument("--threads", type=int, default=0, help="inference threads (0 = runtime default)")
    add_precision_arguments(parser)
    parser.add_argument("--no-roi-proposals", dest="roi_proposals", action="store_false",
                        help="palm detector only (no ROI proposals for hands it misses)")
    from hand_recon_ros.commands.run import add_reconstructor_arguments

    add_reconstructor_arguments(parser)
    parser.set_defaults(func=eval_command)


def read_rgb(path: Path) -> np.ndarray:
    """The image at ``path`` as RGB uint8, or OSError naming the file."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise OSError(f"cannot read image {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def make_lifters(names: list[str]) -> dict[str, Any]:
    """Fresh lifters by name (image mode: no temporal state)."""
    from hand_recon_ros.pipeline.pnp_lift import PnPLifter
    from hand_recon_ros.pipeline.refine_lift import RefinementLifter

    config = type("EvalLiftConfig", (), {"mode": "image", "smoothing": 0.0, "mano_dir": None})()
    table = {"pnp": PnPLifter, "refine": lambda: RefinementLifter(config)}
    return {name: table[name]() for name in names}


def evaluate(samples: list[InterHandSample], detect: Detector, lifters: dict[str, Any]) -> dict:
    """Score every lifter on the same detections; returns the report dict (summary per lifter, per-hand rows)."""
    rows: dict[str, list[em.HandScore]] = {name: [] for name in lifters}
    mrrpe: dict[str, list[float]] = {name: [] for name in lifters}
    lift_ms: dict[str, list[float]] = {name: [] for name in lifters}
    published = {name: TwoHandEvaluator() for name in lifters}  # both published conventions
    n_truth = n_matched = 0
    per_image = []
    for sample in samples:
        image = read_rgb(sample.image_path)
        detections = detect(image, sample.intrinsics, sample)
        matches = em.match_hands([d.side for d in detections], [d.keypoints_2d for d in detections], sample.hands)
        n_truth += len(sample.hands)
        n_matched += len(matches)
        per_image.append({"image": sample.image_path.name, "hands_annotated": len(sample.hands),
                          "detections": len(detections), "matched": len(matches)})
        for name, lifter in lifters.items():
            lifter.reset()
            start = time.perf_counter()
            results = lifter.lift(detections, sample.intrinsics, None, False) if detections else []
            lift_ms[name].append((time.perf_counter() - start) * 1000.0)
            placed = {}
            for g, p in matches.items():
                if results[p].joints_3d is None:
                    continue
                truth = sample.hands[g]
                rows[name].append(em.hand_score(sample.image_path.name, name, results[p].joints_3d,
                                                detections[p].keypoints_2d, truth, results[p].fit_residual_px))
                placed[truth.side] = (results[p].joints_3d, truth.joints, truth.valid)
            if "right" in placed and "left" in placed:
                mrrpe[name].append(em.mrrpe_mm(placed["right"][0], placed["left"][0], placed["right"][1],
                                               placed["left"][1]))
            published[name].add(sample.image_path.name, {side: HandEval(v[0]) for side, v in placed.items()},
                                {side: HandEval(v[1], valid=v[2]) for side, v in placed.items()})
    return {
        "conventions": CONVENTIONS,
        "images": per_image,
        "lifters": {name: {**em.summarise(rows[name], mrrpe[name], n_truth, n_matched),
                           "lift_ms_per_image": float(np.median(lift_ms[name])) if lift_ms[name] else float("nan")}
                    for name in lifters},
        "hands": [row.as_dict() for name in lifters for row in rows[name]],
        "published_conventions": {name: published[name].summary() for name in lifters},
    }


def _pipeline_detector(args: argparse.Namespace) -> Detector:
    """Detections from the full 2D pipeline (palm detector → landmarks → sides), image mode."""
    from hand_recon_ros.pipeline.config import PipelineConfig
    from hand_recon_ros.pipeline.hand_pipeline import HandPipeline

    config = PipelineConfig(backend=args.backend, model_variant=args.variant, cache_dir=args.models_dir,
                            mode="image", refine_3d=False, intra_op_threads=args.threads,
                            roi_proposals=getattr(args, "roi_proposals", True),
                            precision=args.precision, calib_dir=args.calib_dir,
                            reconstructor=getattr(args, "reconstructor", "landmarks"),
                            learned_model=getattr(args, "learned_model", None))
    pipeline = HandPipeline(config)
    if args.rois == "detector":
        return lambda image, intrinsics, sample: [h.detection for h in pipeline.process(image, intrinsics).hands]

    from hand_recon_ros.pipeline.roi import landmarks_to_roi

    def detect(image: np.ndarray, intrinsics: CameraIntrinsics, sample: InterHandSample) -> list[HandDetection]:
        hands = [h for h in sample.hands if h.valid.all()]
        rois = [landmarks_to_roi(h.keypoints_2d) for h in hands]
        outputs = pipeline.landmarks.estimate(image, rois) if rois else []
        found = [HandDetection(side=h.side, score=float(o.presence), side_score=1.0, keypoints_2d=o.keypoints_2d,
                               keypoints_z=o.keypoints_z, world_landmarks=o.world_landmarks, roi=roi, track_id=i)
                 for i, (h, o, roi) in enumerate(zip(hands, outputs, rois))]
        if pipeline.learned is not None and found:  # the learned network on the crop around these hands
            found = pipeline.learned.reconstruct(image, found, config.min_presence_score)
        return found

    return detect


def format_summary(report: dict) -> str:
    """Fixed-width table: one row per lifter."""
    head = f"{'lifter':<8}{'det':>6}{'2D px':>8}{'MPJPE':>8}{'PA':>8}{'wrist med':>11}{'wrist mean':>12}{'MRRPE':>8}"
    lines = [report["conventions"], head]
    for name, s in report["lifters"].items():
        def pick(key: str, stat: str = "mean", s: dict = s) -> str:
            return f"{s[key][stat]:.1f}" if s[key].get("n") else "-"
        lines.append(f"{name:<8}{s['hands_matched']:>3}/{s['hands_annotated']:<2}{pick('error_2d_px'):>8}"
                     f"{pick('mpjpe_mm'):>8}{pick('pa_mpjpe_mm'):>8}{pick('wrist_error_mm', 'median'):>11}"
                     f"{pick('wrist_error_mm'):>12}{pick('mrrpe_mm'):>8}")
    for name, summary in report.get("published_conventions", {}).items():
        lines += [f"{name}: both published conventions", format_table(summary)]
    return "\n".join(lines)


def eval_command(args: argparse.Namespace) -> int:
    """Load the dataset, run, print the table, write the JSON report; exit 1 on unusable data, 2 on bad options."""
    problem = precision_problem(args)
    if problem:
        log.error("%s", problem)
        return 2
    try:
        samples = load_interhand(args.dataset)
    except InterHandFormatError as exc:
        log.error("%s", exc)
        return 1
    if not samples:
        log.error("no images listed in %s", args.dataset)
        return 1
    names = list(LIFTERS) if args.lifter == "both" else [args.lifter]
    from hand_recon_ros.commands.run import reconstructor_problem

    problem = reconstructor_problem(args)
    if problem:
        log.error("%s", problem)
        return 2
    try:
        detector = _pipeline_detector(args)
    except (BackendError, ModelFileError, ValueError) as exc:  # missing runtime, bad model file, bad option
        log.error("cannot build the pipeline: %s", exc)
        return 2
    try:
        report = evaluate(samples, detector, make_lifters(names))
    except OSError as exc:
        log.error("%s", exc)
        return 1
    report.update({"dataset": str(Path(args.dataset).resolve()), "rois": args.rois})
    print(format_summary(report), file=sys.stdout)
    if args.output:
        Path(args.output).write_text(json.dumps(report, indent=2), encoding="utf-8")
        log.info("report written to %s", args.output)
    return 0
