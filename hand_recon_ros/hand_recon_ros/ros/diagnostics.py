"""Node health for /diagnostics: rates, latency percentiles, drops, errors, and the WARN/ERROR rules.

``NodeStats`` is ROS-free and thread-safe (the worker thread and the executor both write to it);
``to_diagnostic_array`` turns a snapshot into a diagnostic_msgs/DiagnosticArray.
"""

from __future__ import annotations

import collections
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# Window over which rates and latency percentiles are computed (seconds).
RATE_WINDOW_S = 5.0
# An input or inference error keeps the status at ERROR this long after it happened (seconds).
ERROR_HOLD_S = 5.0
# Latency samples kept for the percentiles.
MAX_LATENCY_SAMPLES = 500
# Most input time stamps one record_input adds for the rate (frames a reader replaced, counted at once).
MAX_INPUTS_PER_RECORD = 1000

OK, WARN, ERROR = 0, 1, 2  # diagnostic_msgs/DiagnosticStatus levels (bytes there)


@dataclass
class DiagnosticsSnapshot:
    """One status: level (OK/WARN/ERROR), a one-line message and key/value pairs."""

    level: int
    message: str
    values: dict[str, str] = field(default_factory=dict)


class NodeStats:
    """Counters and sliding windows describing the node's recent behaviour."""

    def __init__(self, no_image_timeout_s: float = 5.0, clock: Any = time.monotonic) -> None:
        self.no_image_timeout_s = float(no_image_timeout_s)
        self._clock = clock
        self._lock = threading.Lock()
        self._start_s = clock()
        self._inputs: collections.deque[float] = collections.deque()
        self._outputs: collections.deque[float] = collections.deque()
        self._latencies_s: collections.deque[tuple[float, float]] = collections.deque(maxlen=MAX_LATENCY_SAMPLES)
        self._pipeline_s: collections.deque[tuple[float, float]] = collections.deque(maxlen=MAX_LATENCY_SAMPLES)
        self._hands: collections.deque[tuple[float, int]] = collections.deque()
        self.frames_in = 0
        self.frames_out = 0
        self.dropped = 0
        self.visuals_skipped = 0
        self.errors: collections.Counter[str] = collections.Counter()
        self._last_error: tuple[float, str, str] | None = None
        self._last_input_s: float | None = None
        self._last_camera_info_s: float | None = None
        self.intrinsics_assumed = False
        self.backend = "not loaded"
        self.fatal: str | None = None
        self._standing_warnings: dict[str, str] = {}  # kind -> WARN text, shown while the condition holds
        self.depth_mode = "off"  # use_depth: off, auto or on
        self.depth_used = 0
        self.depth_fallbacks = 0
        self.hands_by_depth = 0
        self._depth_ages_s: collections.deque[tuple[float, float]] = collections.deque(maxlen=MAX_LATENCY_SAMPLES)
        self._last_depth_problem: tuple[float, str] | None = None
        self._last_depth_used_s: float | None = None
        # a callable returning extra key/value pairs (the teleop outputs: retargeting, filter), or None
        self.extra_values: Any = None

    def _trim(self, now: float) -> None:
        horizon = now - RATE_WINDOW_S
        for window in (self._inputs, self._outputs):
            while window and window[0] < horizon:
                window.popleft()
        while self._hands and self._hands[0][0] < horizon:
            self._hands.popleft()

    def record_input(self, count: int = 1) -> None:
        """``count`` image messages arrived (taken, or replaced in the reader before they were taken)."""
        now = self._clock()
        with self._lock:
            self.frames_in += count
            self._inputs.extend([now] * min(count, MAX_INPUTS_PER_RECORD))  # a wild sequence jump stays cheap
            self._last_input_s = now
            self._trim(now)

    def record_drop(self, count: int = 1) -> None:
        """A frame was replaced in the slot before the worker took it."""
        with self._lock:
            self.dropped += count

    def record_visual_skip(self) -> None:
        """Markers/TF/overlay of a frame were skipped because the visuals thread was still busy."""
        with self._lock:
            self.visuals_skipped += 1

    def record_camera_info(self) -> None:
        """A usable CameraInfo arrived."""
        with self._lock:
            self._last_camera_info_s = self._clock()

    def record_output(self, latency_s: float, hands: int, intrinsics_known: bool, pipeline_s: float = math.nan) -> None:
        """A frame was processed and published; latency from message arrival to HandArray publication.

        ``pipeline_s`` is the pipeline's own share of it (so node/transport overhead can be told apart).
        """
        now = self._clock()
        with self._lock:
            self.frames_out += 1
            self._outputs.append(now)
            self._latencies_s.append((now, latency_s))
            if math.isfinite(pipeline_s):
                self._pipeline_s.append((now, pipeline_s))
            self._hands.append((now, hands))
            self.intrinsics_assumed = not intrinsics_known
            self._trim(now)

    def set_warning(self, kind: str, message: str | None) -> None:
        """Show ``message`` as a WARN (and a value) until cleared with None (e.g. an unsupported CameraInfo model)."""
        with self._lock:
            if message is None:
                self._standing_warnings.pop(kind, None)
            else:
                self._standing_warnings[kind] = message
    def record_depth(self, problem: str, age_s: float = math.nan, hands_by_depth: int = 0) -> None:
        """One frame's depth: used (``problem`` "") with its age (colour minus depth stamp), or why it fell back."""
        now = self._clock()
        with self._lock:
            if problem:
                self.depth_fallbacks += 1
                self._last_depth_problem = (now, problem)
            else:
                self.depth_used += 1
                self._last_depth_used_s = now
                if math.isfinite(age_s):
                    self._depth_ages_s.append((now, age_s))
            self.hands_by_depth += hands_by_depth

    def record_error(self, kind: str, message: str) -> None:
        """A bad input message or a failed inference (``kind`` e.g. 'input', 'camera_info', 'inference')."""
        with self._lock:
            self.errors[kind] += 1
            self._last_error = (self._clock(), kind, message)

    def latency_percentiles_ms(self, pipeline_only: bool = False) -> tuple[float, float]:
        """p50 and p95 of the recent arrival->publish latencies in ms (or the pipeline's part); NaN when none."""
        now = self._clock()
        with self._lock:
            samples = self._pipeline_s if pipeline_only else self._latencies_s
            recent = [lat for t, lat in samples if t >= now - RATE_WINDOW_S]
        if not recent:
            return float("nan"), float("nan")
        p50, p95 = np.percentile(np.asarray(recent) * 1e3, [50, 95])
        return float(p50), float(p95)

    def snapshot(self) -> DiagnosticsSnapshot:
        """The current level, message and values (rules: ERROR > WARN > OK; several WARNs are joined)."""
        p50, p95 = self.latency_percentiles_ms()
        pipeline_p50, _ = self.latency_percentiles_ms(pipeline_only=True)
        now = self._clock()
        with self._lock:
            self._trim(now)
            span = min(RATE_WINDOW_S, max(now - self._start_s, 1e-3))
            input_hz = len(self._inputs) / span
            output_hz = len(self._outputs) / span
            hands = [n for _, n in self._hands]
            values = {
                "backend": self.backend,
                "input rate (Hz)": f"{input_hz:.2f}",
                "output rate (Hz)": f"{output_hz:.2f}",
                "latency p50 (ms)": f"{p50:.2f}",
                "latency p95 (ms)": f"{p95:.2f}",
                "pipeline time p50 (ms)": f"{pipeline_p50:.2f}",
                "frames received": str(self.frames_in),
                "frames processed": str(self.frames_out),
                "dropped frames": str(self.dropped),
                "markers skipped": str(self.visuals_skipped),
                "hands per frame": f"{(sum(hands) / len(hands)) if hands else 0.0:.2f}",
                "intrinsics": "assumed" if self.intrinsics_assumed else "CameraInfo",
            }
            if self.depth_mode != "off":
                ages = [a for t, a in self._depth_ages_s if t >= now - RATE_WINDOW_S]
                values["depth"] = self.depth_mode
                values["depth frames used"] = str(self.depth_used)
                values["depth fallbacks"] = str(self.depth_fallbacks)
                values["depth age p50 (ms)"] = f"{float(np.median(ages)) * 1e3:.1f}" if ages else "nan"
                values["hands placed by depth"] = str(self.hands_by_depth)
                if self._last_depth_problem is not None:
                    values["last depth fallback"] = self._last_depth_problem[1]
            if self.extra_values is not None:
                values.update(self.extra_values())
            for kind, count in sorted(self.errors.items()):
                values[f"errors ({kind})"] = str(count)
            if self._last_error is not None:
                values["last error"] = f"{self._last_error[1]}: {self._last_error[2]}"
            for kind, message in sorted(self._standing_warnings.items()):
                values[f"warning ({kind})"] = message

            errors: list[str] = []
            warnings: list[str] = []
            if self.fatal:
                errors.append(self.fatal)
            if self._last_error is not None and now - self._last_error[0] <= ERROR_HOLD_S:
                errors.append(f"{self._last_error[1]} error: {self._last_error[2]}")
            since_input = now - (self._last_input_s if self._last_input_s is not None else self._start_s)
            if since_input > self.no_image_timeout_s:
                warnings.append(f"no image for {since_input:.1f} s")
            if self._last_input_s is not None and (
                self._last_camera_info_s is None or self.intrinsics_assumed
            ):
                warnings.append("no CameraInfo: assumed intrinsics")
            warnings += [message for _, message in sorted(self._standing_warnings.items())]
            problem = self._last_depth_problem
            if (self.depth_mode == "on" and problem is not None and now - problem[0] <= ERROR_HOLD_S
                    and (self._last_depth_used_s is None or self._last_depth_used_s < problem[0])):
                warnings.append(f"depth not used: {problem[1]}")
        if errors:
            return DiagnosticsSnapshot(ERROR, "; ".join(errors + warnings), values)
        if warnings:
            return DiagnosticsSnapshot(WARN, "; ".join(warnings), values)
        return DiagnosticsSnapshot(OK, f"running, {output_hz:.1f} Hz", values)


def to_diagnostic_array(snapshot: DiagnosticsSnapshot, name: str, hardware_id: str, stamp: Any) -> Any:
    """A diagnostic_msgs/DiagnosticArray holding one DiagnosticStatus for ``snapshot``."""
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

    status = DiagnosticStatus()
    status.level = bytes([snapshot.level])
    status.name = name
    status.hardware_id = hardware_id
    status.message = snapshot.message
    status.values = [KeyValue(key=k, value=v) for k, v in snapshot.values.items()]
    array = DiagnosticArray()
    array.header.stamp = stamp
    array.status = [status]
    return array
