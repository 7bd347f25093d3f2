"""Per-frame time stamps through the node, for benchmarks/bench_node_latency.py's overhead breakdown.

Off unless the environment variable ``HAND_RECON_LATENCY_TRACE`` names a file: then every published frame
appends one JSON line with the image's header stamp, the DDS source and reception time stamps of the image
(rmw MessageInfo) and wall-clock (``time.time()``) marks at the worker's wake-up, the start of the image take,
the callback (take done), worker pick-up, pipeline start and end, HandArray publish start and end, and the end of
the frame's work. Wall clock, because the DDS stamps
and the peer's clock are the same host's CLOCK_REALTIME.
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any, TextIO

TRACE_ENV = "HAND_RECON_LATENCY_TRACE"


class LatencyTrace:
    """Appends one JSON object per traced frame to a file (line-buffered, so a killed node keeps its rows)."""

    def __init__(self, path: str) -> None:
        self._file: TextIO | None = open(path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 - kept open
        self._lock = threading.Lock()

    @classmethod
    def from_env(cls) -> LatencyTrace | None:
        """A trace writing to ``$HAND_RECON_LATENCY_TRACE``, or None when it is unset or empty."""
        path = os.environ.get(TRACE_ENV, "")
        return cls(path) if path else None

    def write(self, row: dict[str, Any]) -> None:
        """Append ``row`` as one JSON line (ignored after ``close``)."""
        with self._lock:
            if self._file is not None:
                self._file.write(json.dumps(row) + "\n")

    def close(self) -> None:
        """Close the file. Idempotent."""
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
