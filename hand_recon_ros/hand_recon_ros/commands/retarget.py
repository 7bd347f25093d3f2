"""`hand-recon retarget IN.jsonl --config NAME --urdf-dir DIR -o OUT.jsonl`: hands -> robot joint positions.

IN is what `hand-recon run` writes. OUT has one JSON object per input frame:
``{"source", "frame", "hands": [{"side", "track_id", "joint_names", "positions"}]}`` (positions in the
robot's joint order, radians or metres, every value finite and within the URDF's limits); a hand without a
config for its side, without 3D joints, or whose optimisation failed is left out of that frame.
`--config` repeats; the side rule and the operator-frame mapping are in docs/teleop.md. A summary (hands,
failures, time per hand, the largest frame-to-frame joint step) goes to the log and, with --stats, to JSON.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np

log = logging.getLogger("hand_recon_ros.retarget")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def register(subparsers: Any) -> None:
    """Add the `retarget` sub-command."""
    parser = subparsers.add_parser("retarget", help="hands from `hand-recon run` JSONL -> robot joint positions",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", metavar="IN.jsonl", help="JSON lines from `hand-recon run` ('-' = stdin)")
    parser.add_argument("--config", action="append", required=True, metavar="NAME|FILE.yml",
                        help="dex-retargeting config: a shipped name (allegro_hand_right, leap_hand_left, ...) or "
                             "a YAML path; repeat it; names ending in _left/_right apply to that side only")
    parser.add_argument("--urdf-dir", required=True, metavar="DIR", help="folder holding the robot URDFs")
    parser.add_argument("-o", "--output", default="-", metavar="OUT.jsonl", help="output ('-' = stdout)")
    parser.add_argument("--mirrored", action="store_true",
                        help="the input images were mirrored (selfie view): restore the hands' chirality")
    parser.add_argument("--stats", default=None, metavar="FILE.json", help="also write the summary as JSON")
    parser.set_defaults(func=retarget_command)


@dataclass
class SideStats:
    """Per-side counters for the summary."""

    hands: int = 0
    retargeted: int = 0
    times_ms: list[float] = field(default_factory=list)
    max_step: float = 0.0
    max_step_joint: str = ""
    max_step_frame: int = -1

    def summary(self) -> dict[str, Any]:
        """JSON-ready numbers."""
        times = np.asarray(self.times_ms)
        stat = (lambda f: float(f(times))) if times.size else (lambda f: None)  # None (JSON null): no hand
        return {
            "hands": self.hands, "retargeted": self.retargeted,
            "time_ms_median": stat(np.median), "time_ms_p95": stat(lambda t: np.percentile(t, 95)),
            "time_ms_max": stat(np.max),
            "max_step": self.max_step, "max_step_joint": self.max_step_joint, "max_step_frame": self.max_step_frame,
        }


class _Retargeter:
    """Runs RobotRetargeting over records, resetting a side on a new source or track, and keeps the stats."""

    def __init__(self, retargeting: Any, mirrored: bool) -> None:
        self.retargeting = retargeting
        self.mirrored = mirrored
        self.stats = {side: SideStats() for side in retargeting.by_side}
        self._source: str | None = None
        self._last: dict[str, tuple[int, int, np.ndarray]] = {}  # side -> (frame, track id, positions)

    def record(self, record: dict[str, Any]) -> dict[str, Any]:
        source, frame = str(record.get("source", "")), int(record.get("frame", -1))
        if source != self._source:
            self.retargeting.reset()
            self._last.clear()
            self._source = source
        hands_out = []
        for hand in record.get("hands") or []:
            side = hand.get("side")
            if side not in self.stats:
                continue
            stats = self.stats[side]
            stats.hands += 1
            track = int(hand.get("track_id", -1))
            last = self._last.get(side)
            if last is not None and last[1] != track:
                self.retargeting.reset(side)
            joints = hand.get("joints_3d")
            out = self.retargeting.retarget(side, None if joints is None else np.asarray(joints, dtype=np.float64),
                                            self.mirrored)
            if out is None:
                continue
            stats.retargeted += 1
            stats.times_ms.append(out.time_ms)
            if last is not None and last[1] == track and last[0] == frame - 1:
                steps = np.abs(out.positions - last[2])
                k = int(np.argmax(steps))
                if steps[k] > stats.max_step:
                    stats.max_step, stats.max_step_joint = float(steps[k]), out.joint_names[k]
                    stats.max_step_frame = frame
            self._last[side] = (frame, track, out.positions)
            hands_out.append({"side": side, "track_id": track, "joint_names": list(out.joint_names),
                              "positions": [float(v) for v in out.positions]})
        return {"source": source, "frame": frame, "hands": hands_out}


def _open_input(path: str) -> TextIO:
    return sys.stdin if path == "-" else open(path, encoding="utf-8")  # noqa: SIM115 (closed by the caller)


def retarget_command(args: argparse.Namespace) -> int:
    """Run the sub-command; exit 2 for unusable options (config, URDF, input path), 1 when no frame was read."""
    from hand_recon_ros.retargeting.robot_retargeter import RetargetingError, RobotRetargeting

    if args.input != "-" and not Path(args.input).is_file():
        log.error("input %s does not exist", args.input)
        return EXIT_USAGE
    try:
        retargeting = RobotRetargeting(args.config, args.urdf_dir)
    except RetargetingError as exc:
        log.error("%s", exc)
        return EXIT_USAGE
    runner = _Retargeter(retargeting, args.mirrored)
    frames = bad = 0
    out: TextIO = sys.stdout if args.output == "-" else open(args.output, "w", encoding="utf-8")  # noqa: SIM115
    source = _open_input(args.input)
    try:
        for number, line in enumerate(source, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                if not isinstance(record, dict):
                    raise ValueError(f"expected a JSON object, got {type(record).__name__}")
                result = runner.record(record)
            except (ValueError, TypeError) as exc:
                bad += 1
                log.error("%s line %d: %s", args.input, number, exc)
                continue
            out.write(json.dumps(result) + "\n")
            frames += 1
    finally:
        if source is not sys.stdin:
            source.close()
        if out is not sys.stdout:
            out.close()
    summary = {"frames": frames, "bad_lines": bad, "failures": retargeting.failures(),
               "sides": {side: s.summary() for side, s in runner.stats.items()}}
    for side, s in summary["sides"].items():
        if not s["retargeted"]:
            log.info("%s: 0 of %d hands retargeted", side, s["hands"])
            continue
        log.info("%s: %d of %d hands retargeted; %.2f ms median / %.2f ms p95 per hand; largest frame-to-frame "
                 "step %.3f (%s, frame %d)", side, s["retargeted"], s["hands"], s["time_ms_median"],
                 s["time_ms_p95"], s["max_step"], s["max_step_joint"], s["max_step_frame"])
    if summary["failures"]:
        log.info("not retargeted: %s", summary["failures"])
    if args.stats:
        Path(args.stats).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return EXIT_OK if frames > 0 else EXIT_FAILED
