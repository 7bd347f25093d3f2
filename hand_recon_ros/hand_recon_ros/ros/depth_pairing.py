"""Pairs each colour frame with the depth frame of the nearest stamp (ROS-free, thread-safe).

The depth callback ``put``s every depth message with its stamp; the worker asks ``pair(stamp)`` for the colour
frame it is about to process. A registered RGB-D camera stamps both images alike, but the aligned depth often
arrives a little after the colour: ``pair`` waits up to ``wait_s`` for a depth frame at or after the colour stamp
(not when the depth stream has stalled), then takes the nearest one and refuses it (with the reason) when it is
further than ``max_age_s`` away in time, older (stale) or newer (from the future).
"""

from __future__ import annotations

import collections
import threading
from dataclasses import dataclass
from typing import Any

# Depth frames kept for pairing (a second at 30 Hz is plenty for any colour latency).
DEPTH_BUFFER_FRAMES = 30
# The newest depth frame older than this many times max(max_age_s, wait_s): the depth stream has stalled.
STALLED_FACTOR = 3.0


@dataclass
class DepthPair:
    """The pairing of one colour frame: the depth message (or None), its age (colour minus depth stamp, seconds;
    negative when the depth is newer) and why none was usable ("" when paired)."""

    msg: Any
    age_s: float
    problem: str = ""


class DepthPairer:
    """Recent depth frames by stamp, matched to colour stamps within ``max_age_s``."""

    def __init__(self, max_age_s: float, wait_s: float = 0.0) -> None:
        self.max_age_s = float(max_age_s)
        self.wait_s = float(wait_s)
        self._frames: collections.deque[tuple[float, Any]] = collections.deque(maxlen=DEPTH_BUFFER_FRAMES)
        self._cond = threading.Condition()
        self.received = 0

    def put(self, stamp_s: float, msg: Any) -> None:
        """Keep one depth frame (executor thread)."""
        with self._cond:
            self._frames.append((stamp_s, msg))
            self.received += 1
            self._cond.notify_all()

    def clear(self) -> None:
        """Forget every depth frame (time went backwards)."""
        with self._cond:
            self._frames.clear()

    def pair(self, stamp_s: float) -> DepthPair:
        """The depth frame nearest ``stamp_s`` in time, waiting up to wait_s for one at or after it."""
        with self._cond:
            alive = bool(self._frames) and stamp_s - self._frames[-1][0] <= STALLED_FACTOR * max(self.max_age_s,
                                                                                                 self.wait_s)
            if alive and self.wait_s > 0:  # a stalled depth stream costs no wait
                self._cond.wait_for(lambda: any(s >= stamp_s for s, _ in self._frames), self.wait_s)
            if not self._frames:
                return DepthPair(None, float("nan"), "no depth frame received" if not self.received
                                 else "no recent depth frame")
            depth_stamp, msg = min(self._frames, key=lambda item: abs(item[0] - stamp_s))
        age = stamp_s - depth_stamp
        if age > self.max_age_s:
            return DepthPair(None, age, f"depth frame too old: {age * 1e3:.0f} ms before the colour frame "
                                        f"(depth_max_age_s {self.max_age_s:g})")
        if -age > self.max_age_s:
            return DepthPair(None, age, f"depth frame from the future: {-age * 1e3:.0f} ms after the colour frame "
                                        f"(depth_max_age_s {self.max_age_s:g})")
        return DepthPair(msg, age)
