"""The node's teleoperation outputs: One-Euro filtering, grasp signals, wrist PoseStamped and robot JointState.

Thin ROS glue over the ROS-free pieces (pipeline/teleop_signals.py: the One-Euro filter and grasp signals, the
same code `hand-recon run` uses; retargeting/). Topics (relative, stamped with the image's header):
``hands/<side>/wrist_pose`` (geometry_msgs/PoseStamped, image frame, Hand.msg's wrist axes) for each hand
present, and, when the ``retargeting`` parameter names configs, ``hands/<side>/joint_states``
(sensor_msgs/JointState with the robot's joint names) for each side a config serves. A hand whose
retargeting fails this frame publishes no JointState (never NaN or out-of-limit values).
"""

from __future__ import annotations

import collections
import threading
from typing import Any

import numpy as np

from hand_recon_ros.pipeline.one_euro_filter import OneEuroSettings
from hand_recon_ros.pipeline.teleop_signals import TeleopSignals
from hand_recon_ros.pipeline.types import FrameResult
from hand_recon_ros.retargeting.robot_retargeter import RetargetingError

SIDES: tuple[str, ...] = ("left", "right")
# Depth of the wrist pose and joint state topics (reliable keep-last; a controller wants the newest).
TELEOP_QOS_DEPTH = 10
# Minimum time between two log lines about a hand that could not be retargeted (seconds).
RETARGET_LOG_THROTTLE_S = 5.0
# Retargeting times kept for the /diagnostics median.
RETARGET_TIME_SAMPLES = 100


def one_euro_settings(params: dict[str, Any]) -> OneEuroSettings:
    """The One-Euro settings named by the node's one_euro_* parameters."""
    return OneEuroSettings(params["one_euro_min_cutoff_hz"], params["one_euro_beta"], params["one_euro_d_cutoff_hz"])


def parse_config_list(text: str) -> list[str]:
    """The comma-separated retargeting configs of the ``retargeting`` parameter ('' = none)."""
    return [item.strip() for item in text.split(",") if item.strip()]


class TeleopOutputs:
    """Filter + grasp signals before HandArray; wrist poses and joint states after it (worker thread)."""

    def __init__(self, node: Any, params: dict[str, Any]) -> None:
        """Create the publishers and load the retargeting configs (RetargetingError naming the file)."""
        from geometry_msgs.msg import PoseStamped
        from sensor_msgs.msg import JointState

        self._node = node
        self._signals = TeleopSignals(one_euro_settings(params))
        self.retargeting = None
        configs = parse_config_list(params["retargeting"])
        if configs:
            if not params["urdf_dir"]:
                raise RetargetingError(f"retargeting is set ({params['retargeting']!r}) but urdf_dir is empty")
            from hand_recon_ros.retargeting.robot_retargeter import RobotRetargeting

            self.retargeting = RobotRetargeting(configs, params["urdf_dir"])
        self._pose_pubs = {s: node.create_publisher(PoseStamped, f"hands/{s}/wrist_pose", TELEOP_QOS_DEPTH)
                           for s in SIDES}
        self._joint_pubs = {s: node.create_publisher(JointState, f"hands/{s}/joint_states", TELEOP_QOS_DEPTH)
                            for s in (self.retargeting.by_side if self.retargeting else ())}
        self._tracks: dict[str, int] = {}
        self._lock = threading.Lock()  # the counters below: written by the worker, read by /diagnostics
        self._retargeted = 0
        self._times_ms: collections.deque[float] = collections.deque(maxlen=RETARGET_TIME_SAMPLES)
        self._last_failure = ""
        if self.retargeting is not None:
            node.get_logger().info("retargeting: " + "; ".join(
                f"{side}: {r.config_path.name} -> {self._joint_pubs[side].topic_name} ({len(r.joint_names)} joints)"
                for side, r in self.retargeting.by_side.items()))

    def update_filter(self, settings: OneEuroSettings) -> None:
        """Queue new One-Euro settings (executor thread); the worker takes them with the next frame."""
        self._signals.update_filter(settings)

    def reset(self) -> None:
        """Time went back: forget filter histories, grasp states and retargeting warm starts."""
        self._signals.reset()
        self._tracks.clear()
        if self.retargeting is not None:
            self.retargeting.reset()

    def before_publish(self, result: FrameResult, stamp_s: float) -> None:
        """Filter joints and wrist poses (when on) and compute the grasp signals, in place."""
        self._signals.apply(result, stamp_s)

    def publish(self, result: FrameResult, header: Any, mirrored: bool) -> None:
        """Wrist PoseStamped per hand that HandArray carries (placeable); JointState per retargeted hand (first hand
        per side)."""
        from geometry_msgs.msg import PoseStamped

        from hand_recon_ros.ros.message_conversion import placeable, wrist_pose_msg

        done: set[str] = set()
        for hand in (h for h in result.hands if placeable(h)):
            if hand.side in done:
                continue
            done.add(hand.side)
            self._pose_pubs[hand.side].publish(PoseStamped(header=header, pose=wrist_pose_msg(hand)))
            if hand.side in self._joint_pubs:
                self._publish_joints(hand, header, mirrored)

    def _publish_joints(self, hand: Any, header: Any, mirrored: bool) -> None:
        from sensor_msgs.msg import JointState

        track = int(hand.detection.track_id)
        if self._tracks.get(hand.side) != track:  # a new hand: no warm start from the previous one
            self.retargeting.reset(hand.side)
            self._tracks[hand.side] = track
        with self._lock:  # the failure counters are read by /diagnostics on the executor thread
            before = self.retargeting.failures()
            out = self.retargeting.retarget(hand.side, hand.joints_3d, mirrored)
            if out is None:
                after = self.retargeting.failures()
                self._last_failure = next((k for k, n in after.items() if n > before.get(k, 0)), hand.side)
        if out is None:
            self._node.get_logger().warning(
                f"retargeting: {hand.side} hand not published this frame ({self.retargeting.failures()})",
                throttle_duration_sec=RETARGET_LOG_THROTTLE_S)
            return
        with self._lock:
            self._retargeted += 1
            self._times_ms.append(out.time_ms)
        msg = JointState(header=header, name=list(out.joint_names), position=[float(v) for v in out.positions])
        self._joint_pubs[hand.side].publish(msg)

    def diagnostic_values(self) -> dict[str, str]:
        """Key/value pairs for /diagnostics: the One-Euro setting and, when on, the retargeting counters."""
        s = self._signals.settings
        values = {"one-euro filter": (f"min_cutoff {s.min_cutoff_hz:g} Hz, beta {s.beta:g}, d_cutoff "
                                      f"{s.d_cutoff_hz:g} Hz") if s.enabled else "off"}
        if self.retargeting is None:
            return values
        with self._lock:
            times = list(self._times_ms)
            values["retargeting"] = "; ".join(f"{side}: {r.config_path.name}"
                                              for side, r in self.retargeting.by_side.items())
            values["hands retargeted"] = str(self._retargeted)
            values["retargeting failures"] = str(sum(self.retargeting.failures().values()))
            values["retargeting p50 (ms)"] = f"{float(np.median(times)):.2f}" if times else "nan"
            if self._last_failure:
                values["last retargeting failure"] = self._last_failure
        return values
