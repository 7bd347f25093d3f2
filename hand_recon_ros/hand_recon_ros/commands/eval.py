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
from pathlib import Path
from typing import Any

import numpy as np

from hand_recon_ros.commands.cache_args import add_engine_cache_dir_argument, add_models_dir_argument
from hand_recon_ros.commands.precision_args import add_precision_arguments, precision_problem
from hand_recon_ros.engines.base import BackendError
from hand_recon_ros.engines.registry import DEFAULT_BACKEND
from hand_recon_ros.evaluation.evaluate import LIFTERS, Detector, evaluate, format_summary, make_lifters
from hand_recon_ros.evaluation.interhand import InterHandFormatError, InterHandSample, load_interhand
from hand_recon_ros.models.model_files import ModelFileError
from hand_recon_ros.pipeline.config import PROPOSAL_SOURCES, PipelineConfig
from hand_recon_ros.pipeline.types import CameraIntrinsics, HandDetection

log = logging.getLogger("hand_recon_ros.eval")

FORMATS: tuple[str, ...] = ("interhand",)


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
    add_models_dir_argument(parser)
    add_engine_cache_dir_argument(parser)
    parser.add_argument("--threads", type=int, default=0, help="inference threads (0 = runtime default)")
    add_precision_arguments(parser)
    parser.add_argument("--no-roi-proposals", dest="roi_proposals", action="store_false",
                        help="palm detector only (no ROI proposals for hands it misses)")
    parser.add_argument("--proposal-source", choices=PROPOSAL_SOURCES, default=PipelineConfig.proposal_source,
                        help="ROI proposals from the palm detector's normalised second look (default) or the "
                             "generic grid (~4x slower)")
    from hand_recon_ros.commands.run import add_reconstructor_arguments

    add_reconstructor_arguments(parser)
    parser.set_defaults(func=eval_command)


def _pipeline_detector(args: argparse.Namespace) -> Detector:
    """Detections from the full 2D pipeline (palm detector → landmarks → sides), image mode."""
    from hand_recon_ros.pipeline.hand_pipeline import HandPipeline

    config = PipelineConfig(backend=args.backend, model_variant=args.variant, models_dir=args.models_dir,
                            engine_cache_dir=getattr(args, "engine_cache_dir", None),
                            mode="image", refine_3d=False, intra_op_threads=args.threads,
                            roi_proposals=getattr(args, "roi_proposals", True),
                            proposal_source=getattr(args, "proposal_source", PipelineConfig.proposal_source),
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
