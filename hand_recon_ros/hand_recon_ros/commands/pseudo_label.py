"""`hand-recon pseudo-label INPUT... -o labels.json`: label your own footage with the default pipeline.

Runs the landmark pipeline over images, folders, videos or rosbag2 recordings and writes, per frame, each
hand's 2D keypoints with per-joint confidence, side, box and camera-frame 3D (training/pseudo_labels.py has the
format). Video and bag frames are saved as JPEG beside the labels (``--frames-dir``) so training can read
them. Hands below ``--min-score`` are left out. Exit 2 for bad options, 1 when no frame could be labelled.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

import cv2

log = logging.getLogger("hand_recon_ros.pseudo_label")

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def register(subparsers: Any) -> None:
    """Add the `pseudo-label` sub-command."""
    from hand_recon_ros.commands.run import add_pipeline_arguments

    parser = subparsers.add_parser("pseudo-label", help="label footage with the default pipeline (for training)",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_pipeline_arguments(parser)
    parser.add_argument("--output", "-o", required=True, metavar="labels.json", help="labels file to write")
    parser.add_argument("--min-score", type=float, default=0.5, help="drop hands scored below this (0..1)")
    parser.add_argument("--every", type=int, default=1, metavar="N", help="label every N-th frame of videos/bags")
    parser.add_argument("--max-frames", type=int, default=None, metavar="N",
                        help="stop after N frames of each video/bag (default: all)")
    parser.add_argument("--frames-dir", default=None,
                        help="where video/bag frames are saved (default: <labels stem>_frames beside the labels)")
    parser.add_argument("--intrinsics", default=None, metavar="FX,FY,CX,CY",
                        help="pixels, for every input (default: assumed from the field of view)")
    parser.set_defaults(func=pseudo_label_command)


def pseudo_label_command(args: argparse.Namespace) -> int:
    """Label every frame; write the file once at the end (atomically)."""
    from hand_recon_ros.commands.run import build_pipeline, default_mode
    from hand_recon_ros.io.image_source import is_bag_path, is_video_path, iter_frames
    from hand_recon_ros.io.intrinsics_input import intrinsics_for, parse_intrinsics_arg
    from hand_recon_ros.pipeline.types import CameraIntrinsics, IntrinsicsError
    from hand_recon_ros.training.pseudo_labels import hand_entry, write_labels

    if not 0.0 <= args.min_score <= 1.0:
        print(f"hand-recon pseudo-label: --min-score must be in [0, 1], got {args.min_score}", file=sys.stderr)
        return EXIT_USAGE
    if args.max_frames is not None and args.max_frames < 1:
        print(f"hand-recon pseudo-label: --max-frames must be >= 1, got {args.max_frames}", file=sys.stderr)
        return EXIT_USAGE
    if args.every < 1:
        print(f"hand-recon pseudo-label: --every must be >= 1, got {args.every}", file=sys.stderr)
        return EXIT_USAGE
    try:
        numbers = parse_intrinsics_arg(args.intrinsics) if args.intrinsics else None
    except (IntrinsicsError, ValueError) as exc:
        print(f"hand-recon pseudo-label: --intrinsics: {exc}", file=sys.stderr)
        return EXIT_USAGE
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    frames_dir = Path(args.frames_dir) if args.frames_dir else output.with_name(f"{output.stem}_frames")
    try:
        pipeline = build_pipeline(args)
    except Exception as exc:  # noqa: BLE001 - model/backend failures of any kind end the run with one message
        print(f"hand-recon pseudo-label: cannot load the models: {exc}", file=sys.stderr)
        return EXIT_USAGE if isinstance(exc, ValueError) else EXIT_FAILED
    entries: list[dict[str, Any]] = []
    failed = hands_kept = hands_dropped = 0
    current = None
    try:
        for frame in iter_frames(args.inputs, args.topic):
            if frame.source != current:
                current = frame.source
                pipeline.update(mode=args.mode or default_mode(frame.source))
                pipeline.reset()
            if frame.image is None:
                failed += 1
                print(f"hand-recon pseudo-label: {frame.error}", file=sys.stderr)
                continue
            streamed = is_video_path(Path(frame.source)) or is_bag_path(Path(frame.source))
            if streamed and args.max_frames is not None and frame.index >= args.max_frames:
                continue
            height, width = frame.image.shape[:2]
            intrinsics = intrinsics_for(numbers, width, height) if numbers else None
            result = pipeline.process(frame.image, intrinsics, frame.timestamp_s)
            if streamed and frame.index % args.every:
                continue
            used = intrinsics or CameraIntrinsics.assumed(width, height)
            hands = []
            for hand in result.hands:
                if hand.detection.score < args.min_score:
                    hands_dropped += 1
                    continue
                hands.append(hand_entry(hand.side, hand.detection.score, hand.detection.keypoints_2d,
                                        hand.joint_confidence, hand.joints_3d))
            hands_kept += len(hands)
            if streamed:
                frames_dir.mkdir(parents=True, exist_ok=True)
                image_path = frames_dir / f"{Path(frame.source).stem}_{frame.index:06d}.jpg"
                cv2.imwrite(str(image_path), cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR))
            else:
                image_path = Path(frame.source).resolve()
            entries.append({"image": os.path.relpath(image_path.resolve(), output.parent.resolve()),
                            "source": frame.source, "frame": frame.index, "width": width, "height": height,
                            "intrinsics": [used.fx, used.fy, used.cx, used.cy],
                            "intrinsics_known": intrinsics is not None, "hands": hands})
    finally:
        pipeline.close()
    if not entries:
        print("hand-recon pseudo-label: no frame could be labelled", file=sys.stderr)
        return EXIT_FAILED
    write_labels(output, entries, args.min_score)
    print(f"{output}: {len(entries)} frame(s), {hands_kept} hand(s) kept, {hands_dropped} below --min-score, "
          f"{failed} input(s) unreadable")
    return EXIT_OK
