"""`hand-recon publish SOURCE`: webcam, video or images -> sensor_msgs/Image + CameraInfo topics at a given rate."""

from __future__ import annotations

import argparse
import logging
import time
from typing import Any

LOG = logging.getLogger("hand_recon_ros.publish")
# How long --summary waits after the last frame for the node's answers (seconds).
SUMMARY_DRAIN_S = 1.0


def register(subparsers: Any) -> None:
    """Add the `publish` sub-command."""
    parser = subparsers.add_parser(
        "publish",
        help="publish a webcam, video file or images as ROS 2 Image + CameraInfo topics",
        description="Publish frames as sensor_msgs/Image (rgb8) and sensor_msgs/CameraInfo, stamped at "
        "publication, for running hand_recon_node without a camera driver. Without intrinsics the "
        "CameraInfo carries K = 0 (uncalibrated). Extra ROS arguments go after --ros-args.",
    )
    parser.add_argument("source", metavar="SOURCE", help="webcam index (0) or /dev/videoN, a video, image or folder")
    parser.add_argument("--rate", type=float, default=10.0, metavar="HZ", help="frames per second (0 = max)")
    parser.add_argument("--topic", default="image", help="image topic; CameraInfo goes beside it (camera_info)")
    parser.add_argument("--frame-id", default="camera_optical_frame", help="header frame_id (camera optical frame)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--intrinsics", default=None, metavar="FX,FY,CX,CY", help="pixels, published in CameraInfo")
    group.add_argument("--camera-info", default=None, metavar="FILE.yaml", help="ROS CameraInfo / calibration YAML")
    parser.add_argument("--loop", action="store_true", help="start again at the end of a video or folder")
    parser.add_argument("--count", type=int, default=None, metavar="N", help="stop after N frames")
    parser.add_argument("--summary", action="store_true",
                        help="also listen to `hands` and print each HandArray and a latency summary (needs a node; "
                             "exit status 1 when no HandArray comes back)")
    parser.add_argument("--wait-for-subscriber", type=float, default=None, metavar="S",
                        help="wait up to S seconds for a subscriber before publishing (default 10 with --summary)")
    parser.add_argument("--hands-topic", default="hands", help="HandArray topic for --summary")
    parser.add_argument("--ros-args", dest="ros_args", nargs=argparse.REMAINDER, default=[],
                        help="ROS arguments (e.g. -r __node:=cam)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Publish until the source ends, --count frames, or Ctrl-C; exit status 2 on a bad source or option."""
    import rclpy
    from rclpy.executors import ExternalShutdownException

    from hand_recon_ros.io.intrinsics_input import intrinsics_for, load_camera_info_yaml, parse_intrinsics_arg
    from hand_recon_ros.pipeline.types import IntrinsicsError
    from hand_recon_ros.ros.camera_publisher import (
        CameraPublisher,
        HandsListener,
        SourceError,
        iter_source_frames,
        wait_for_subscriber,
    )

    if args.rate < 0:
        LOG.error("--rate must be >= 0, got %s", args.rate)
        return 2
    if args.count is not None and args.count < 1:
        LOG.error("--count must be >= 1, got %s", args.count)
        return 2
    frames = iter_source_frames(args.source, loop=args.loop)
    try:
        first = next(frames)
    except SourceError as exc:
        LOG.error("%s", exc)
        return 2
    try:
        intrinsics = None
        if args.intrinsics:
            intrinsics = intrinsics_for(parse_intrinsics_arg(args.intrinsics), first.shape[1], first.shape[0])
        elif args.camera_info:
            intrinsics = load_camera_info_yaml(args.camera_info)
    except IntrinsicsError as exc:
        LOG.error("%s", exc)
        return 2

    def all_frames():  # noqa: ANN202 - generator of the frames, the first one included
        yield first
        yield from frames

    rclpy.init(args=["hand-recon-publish", "--ros-args", *args.ros_args] if args.ros_args else None)
    publisher = CameraPublisher(args.topic, args.frame_id, intrinsics)
    LOG.info("publishing %s (%dx%d) on %s at %s Hz%s", args.source, first.shape[1], first.shape[0],
             publisher.image_pub.topic_name, args.rate, "" if intrinsics else " (CameraInfo uncalibrated: K = 0)")
    listener = HandsListener(publisher.node, args.hands_topic) if args.summary else None
    wait_s = args.wait_for_subscriber if args.wait_for_subscriber is not None else (10.0 if args.summary else 0.0)
    status = 0
    try:
        if wait_s > 0 and not wait_for_subscriber(publisher.image_pub, wait_s):
            LOG.warning("no subscriber on %s after %.0f s; publishing anyway", publisher.image_pub.topic_name, wait_s)
        stats = publisher.run(all_frames(), args.rate, args.count, should_stop=lambda: not rclpy.ok())
        LOG.info("published %d frames in %.1f s (%.1f Hz)", stats.frames, stats.elapsed_s, stats.rate_hz)
        if listener is not None:
            time.sleep(SUMMARY_DRAIN_S)  # let the last answers arrive
            print(listener.summary(stats.frames))
            if stats.frames > 0 and not listener.latencies_ms:
                LOG.error("--summary: no HandArray came back on %s (is hand_recon_node running on this "
                          "ROS_DOMAIN_ID and listening on %s?)", args.hands_topic, publisher.image_pub.topic_name)
                status = 1
    except (KeyboardInterrupt, ExternalShutdownException):
        LOG.info("stopped")
    except SourceError as exc:
        LOG.error("%s", exc)
        status = 2
    finally:
        if listener is not None:
            listener.close()
        publisher.close()
        rclpy.try_shutdown()
    return status
