"""Teleoperation signals on a FrameResult: the One-Euro filter (when on), then grasp signals. ROS-free.

One object per stream, shared by the node (ros/teleop_outputs.py, before HandArray is built) and `hand-recon run`
(before each JSONL line): the filter smooths each track's 3D joints and wrist pose by the image stamps
(pipeline/hand_filter.py), then pinch distance, grasp strength and the open/pinch/fist state with hysteresis are
computed from the filtered joints (pipeline/grasp_signals.py).
"""

from __future__ import annotations

from hand_recon_ros.pipeline.grasp_signals import GraspTracker
from hand_recon_ros.pipeline.hand_filter import HandOutputFilter
from hand_recon_ros.pipeline.one_euro_filter import OneEuroSettings
from hand_recon_ros.pipeline.types import FrameResult


class TeleopSignals:
    """One-Euro filter + grasp signals per track; new filter settings may be queued from another thread."""

    def __init__(self, settings: OneEuroSettings) -> None:
        self._filter = HandOutputFilter(settings)
        self._grasp = GraspTracker()
        self._pending: OneEuroSettings | None = None

    @property
    def settings(self) -> OneEuroSettings:
        """The One-Euro settings in use."""
        return self._filter.settings

    def update_filter(self, settings: OneEuroSettings) -> None:
        """Queue new One-Euro settings; the next ``apply`` takes them (histories restart)."""
        self._pending = settings

    def reset(self) -> None:
        """A new stream or time going back: forget filter histories and grasp states."""
        self._filter.reset()
        self._grasp.reset()

    def apply(self, result: FrameResult, stamp_s: float | None) -> FrameResult:
        """Filter joints and wrist poses (when on) at image time ``stamp_s`` (None: a frame without a time base,
        not filtered), then set every hand's grasp signals, in place (returned for chaining)."""
        pending, self._pending = self._pending, None
        if pending is not None:
            self._filter.update(pending)
        if stamp_s is not None:
            self._filter.apply(result, stamp_s)
        return self._grasp.apply(result)
