"""hand_recon_node latency over real DDS: image -> HandArray p50/p95 and where the node overhead goes.

The node runs in its own process (``python -m hand_recon_ros.ros.node``, real pipeline and backend, or the
test double with --fake-ms); this process publishes rgb8 frames holding two hands (shared/data/woman_hands.jpg,
640x960 as it is with --frame full, a 640x480 crop with --frame crop) stamped with the wall clock just before
publish, and receives the HandArrays.

    python benchmarks/bench_node_latency.py [--frame full|crop] [--rates 10,30] [--seconds 10] [--rounds 2]
        [--baseline-tree DIR] [--sweep] [--fake-ms MS] [--json OUT.json] [-p NAME:=VALUE ...]

Latency = receipt of the HandArray in this process's Python callback - header.stamp (same host, same clock).
Node overhead = that latency's p50 minus the node's pipeline p50 (the pipeline's own timing_ms["total"]).
The breakdown joins three sets of time stamps per frame, all host wall clock: the header stamp, the node's
trace (HAND_RECON_LATENCY_TRACE, ros/latency_trace.py: the image's DDS source and reception stamps from rmw's
MessageInfo, then the callback, worker pick-up, pipeline start/end, HandArray publish), and the HandArray's
DDS source and reception stamps in this process. The segments of one frame add up to its latency exactly
(the "of which" rows split the row above them and are not added again); their means add up to the mean, their
medians only roughly to the median.

--baseline-tree DIR runs a second node from another checkout (its hand_recon_ros/ first on PYTHONPATH, e.g. a
``git worktree`` of an older commit) and alternates the two, phase by phase, --rounds times: A/B in the same
minutes. --sweep adds the old phases: the highest input rate the node keeps up with (>= 95 % processed) and a
burst at 10x that rate (latest frame wins, so latency must stay near one processing time).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

TEST_DIR = Path(__file__).resolve().parents[1] / "hand_recon_ros" / "test"
sys.path.insert(0, str(TEST_DIR))
from test_ros_peer import Peer, make_camera_info, make_image_msg, start_node, status_values, stop_node  # noqa: E402

from hand_recon_ros.commands.bench import cpu_description  # noqa: E402
from hand_recon_ros.engines.registry import DEFAULT_BACKEND  # noqa: E402
from hand_recon_ros.io.image_source import read_image  # noqa: E402
from hand_recon_ros.ros.latency_trace import TRACE_ENV  # noqa: E402

DEFAULT_IMAGE = Path(__file__).resolve().parents[2] / "shared" / "data" / "woman_hands.jpg"
# Rows of woman_hands.jpg (640x960) kept for a 640x480 frame that still shows both hands (--frame crop).
CROP_ROWS = (280, 760)
CROP_W, CROP_H = 640, 480
STARTUP_TIMEOUT_S = 120.0
DRAIN_S = 1.5
WARMUP_S = 2.0
BURST_FACTOR = 10.0
# Input rates tried for the maximum sustained rate (Hz), each for SWEEP_SECONDS.
SWEEP_RATES_HZ: tuple[float, ...] = (10.0, 15.0, 20.0, 25.0, 30.0, 35.0, 40.0, 50.0, 60.0, 80.0)
SWEEP_SECONDS = 4.0
KEEP_UP_FRACTION = 0.95
DOMAIN_ID = 100
FRAME_ID = "camera_optical_frame"
# Trace stamps are matched to header stamps at this resolution (s): finer than any frame interval sent here.
STAMP_KEY_S = 1e-5

# Breakdown segments: (label, start mark, end mark). Marks: "stamp" (header stamp, set just before publish),
# the node trace's marks, "hand_source"/"hand_received" (HandArray DDS stamps here) and "peer_callback".
SEGMENTS: tuple[tuple[str, str, str], ...] = (
    ("image publish: rclpy serialise + DDS write (this process)", "stamp", "dds_source"),
    ("image transport: DDS write -> node reception", "dds_source", "dds_received"),
    ("node wake-up + take (executor, or the worker itself)", "dds_received", "callback"),
    ("  of which: wake-up (rcl_wait returns, GIL regained)", "dds_received", "woken"),
    ("  of which: CameraInfo taken before the image", "woken", "take_start"),
    ("  of which: image take (rmw + rclpy copies)", "take_start", "callback"),
    ("node: CDR read of the Image fields", "callback", "enqueue"),
    ("hand-off to the worker thread (none: worker takes)", "enqueue", "pickup"),
    ("worker: conversion, intrinsics, depth pairing", "pickup", "pipeline_start"),
    ("pipeline call, outside its own timing", "pipeline_start", "pipeline_end"),  # minus pipeline_total_ms
    ("HandArray build + teleop before publish", "pipeline_end", "publish_start"),
    ("HandArray publish: serialise + DDS write", "publish_start", "hand_source"),
    ("HandArray transport: DDS write -> peer reception", "hand_source", "hand_received"),
    ("peer (this process) executor + deserialise", "hand_received", "peer_callback"),
)
PIPELINE_LABEL = "pipeline (its own timing_ms total)"


def _frame(path: Path, frame: str) -> np.ndarray:
    """The benchmark frame: the photo as it is (``full``) or the 640x480 crop of both hands (``crop``)."""
    rgb = read_image(path)
    if frame == "full":
        return np.ascontiguousarray(rgb)
    if rgb.shape[:2] == (960, 640):
        rgb = rgb[CROP_ROWS[0]:CROP_ROWS[1]]
    import cv2

    return np.ascontiguousarray(cv2.resize(rgb, (CROP_W, CROP_H)) if rgb.shape[:2] != (CROP_H, CROP_W) else rgb)


def _send(peer: Peer, rgb: np.ndarray, with_info: bool) -> None:
    """Publish one frame, stamped with the wall clock just before publish (message building is not counted)."""
    if with_info:
        peer.info_pub.publish(make_camera_info(rgb.shape[1], rgb.shape[0], FRAME_ID))
    msg = make_image_msg(rgb, 0.0, FRAME_ID)
    now_ns = time.time_ns()
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(now_ns, 1_000_000_000)
    peer.image_pub.publish(msg)


def _stamp_key(stamp_s: float) -> int:
    return int(round(stamp_s / STAMP_KEY_S))


def _read_trace(path: Path | None) -> dict[int, dict[str, float]]:
    """The node's trace rows by header-stamp key (empty when the node wrote none, e.g. an older checkout)."""
    if path is None or not path.is_file():
        return {}
    rows: dict[int, dict[str, float]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line being written
        rows[_stamp_key(row["stamp"])] = row
    return rows


def _frame_marks(peer: Peer, received: list[tuple[float, Any]], trace: dict[int, dict[str, float]]
                 ) -> list[dict[str, float]]:
    """Per frame: every mark of the breakdown that is known (node trace joined with this side's stamps)."""
    frames = []
    for t_callback, msg in received:
        stamp_ns = (msg.header.stamp.sec, msg.header.stamp.nanosec)
        stamp_s = stamp_ns[0] + stamp_ns[1] * 1e-9
        marks: dict[str, float] = {"stamp": stamp_s, "peer_callback": t_callback}
        marks.update(trace.get(_stamp_key(stamp_s), {}))
        source_ns, received_ns = peer.hand_dds_stamps.get(stamp_ns, (0, 0))
        if source_ns > 0 and received_ns > 0:
            marks["hand_source"], marks["hand_received"] = source_ns * 1e-9, received_ns * 1e-9
        frames.append(marks)
    return frames


def breakdown(frames: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """p50 and mean (ms) of each segment over the frames that have both its marks, plus the pipeline's own time."""
    table: dict[str, dict[str, float]] = {}
    for label, start, end in SEGMENTS:
        values = []
        for marks in frames:
            if start in marks and end in marks:
                value = (marks[end] - marks[start]) * 1e3
                if end == "pipeline_end":
                    value -= marks.get("pipeline_total_ms", float("nan"))
                values.append(value)
        if values:
            array = np.array(values)
            table[label] = {"p50_ms": float(np.median(array)), "mean_ms": float(array.mean()), "frames": len(array)}
    pipeline = np.array([m["pipeline_total_ms"] for m in frames if "pipeline_total_ms" in m])
    if len(pipeline):
        table[PIPELINE_LABEL] = {"p50_ms": float(np.median(pipeline)), "mean_ms": float(pipeline.mean()),
                                 "frames": len(pipeline)}
    return table


def _phase(peer: Peer, rgb: np.ndarray, rate_hz: float, seconds: float,
           trace_path: Path | None = None) -> dict[str, Any]:
    """Publish at ``rate_hz`` (0 = flat out) for ``seconds``; latency, output rate and breakdown of what came back."""
    with peer.lock:
        first_index = len(peer.hands)
    load_before = os.getloadavg()[0]
    start_wall = time.time()
    start = time.monotonic()
    sent = 0
    while time.monotonic() - start < seconds:
        if rate_hz > 0:
            delay = start + sent / rate_hz - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        _send(peer, rgb, with_info=(sent % 10 == 0))
        sent += 1
    elapsed = time.monotonic() - start
    time.sleep(DRAIN_S)
    with peer.lock:
        received = [(t, m) for t, m in peer.hands[first_index:]
                    if m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 >= start_wall]
    frames = _frame_marks(peer, received, _read_trace(trace_path))
    latencies_ms = np.array([(m["peer_callback"] - m["stamp"]) * 1e3 for m in frames])
    dds_latencies_ms = np.array([(m["hand_received"] - m["stamp"]) * 1e3 for m in frames if "hand_received" in m])
    hands = np.array([len(m.hands) for _, m in received]) if received else np.zeros(1)
    arrivals = np.array([t for t, _ in received])
    out_span = arrivals[-1] - arrivals[0] if len(arrivals) > 1 else float("nan")
    status = peer.latest_status()
    node = status_values(status) if status is not None else {}

    def pct(values: np.ndarray, q: float) -> float:
        return float(np.percentile(values, q)) if len(values) else float("nan")

    result: dict[str, Any] = {
        "rate_hz": rate_hz,
        "node_arrival_to_publish_p50_ms": float(node.get("latency p50 (ms)", "nan")),
        "node_pipeline_p50_ms": float(node.get("pipeline time p50 (ms)", "nan")),
        "sent": sent,
        "input_hz": sent / elapsed,
        "processed": len(received),
        "output_hz": (len(received) - 1) / out_span if len(received) > 1 else 0.0,
        "latency_p50_ms": pct(latencies_ms, 50),
        "latency_p95_ms": pct(latencies_ms, 95),
        "latency_max_ms": float(latencies_ms.max()) if len(latencies_ms) else float("nan"),
        "dds_reception_latency_p50_ms": pct(dds_latencies_ms, 50),
        "hands_per_frame": float(hands.mean()),
        "load_average": [load_before, os.getloadavg()[0]],
        "frames": frames,
    }
    pipeline = [m["pipeline_total_ms"] for m in frames if "pipeline_total_ms" in m]
    result["pipeline_p50_ms"] = float(np.median(pipeline)) if pipeline else result["node_pipeline_p50_ms"]
    result["overhead_ms"] = result["latency_p50_ms"] - result["pipeline_p50_ms"]
    return result


class _Variant:
    """One node process (this checkout, or another one's code) with its peer and trace file."""

    def __init__(self, name: str, domain: int, params: dict[str, Any], fake_ms: float | None,
                 tree: Path | None, trace_dir: Path) -> None:
        self.name = name
        self.trace_path = trace_dir / f"trace_{name}.jsonl"
        env = {TRACE_ENV: str(self.trace_path)}
        if fake_ms is not None:
            env["FAKE_PROCESS_MS"] = str(fake_ms)
        if tree is not None:
            env["PYTHONPATH"] = os.pathsep.join([str(tree / "hand_recon_ros"), os.environ.get("PYTHONPATH", "")])
        if tree is not None and fake_ms is not None:  # the test double's script puts its own tree first on sys.path
            args = [item for name, value in params.items() for item in ("-p", f"{name}:={value}")]
            command = [sys.executable, str(tree / "hand_recon_ros" / "test" / "test_ros_peer.py"), "fake-node",
                       "--ros-args", *args]
            self.process = subprocess.Popen(command, env=dict(os.environ, **env, ROS_DOMAIN_ID=str(domain),
                                                              PYTHONUNBUFFERED="1"),
                                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        else:
            self.process = start_node(domain, params, fake=fake_ms is not None, env=env)
        self.peer = Peer(domain, node_name=f"bench_peer_{name}")

    def wait_ready(self, rgb: np.ndarray) -> None:
        """Send frames until a HandArray comes back (models loaded, DDS matched), then warm up tracking."""
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline and not self.peer.hands:
            self.peer.send(rgb, time.time())
            self.peer.wait_for(lambda: bool(self.peer.hands), 0.5)
        if not self.peer.hands:
            raise RuntimeError(f"node {self.name} never answered")
        _phase(self.peer, rgb, 5.0, WARMUP_S)

    def close(self) -> int:
        self.peer.close()
        code, output = stop_node(self.process)
        if code != 0:
            print(f"node {self.name} exited with {code}:\n{output[-2000:]}", file=sys.stderr)
        return code


def _merge(phases: list[dict[str, Any]]) -> dict[str, Any]:
    """One summary over several phases of the same variant and rate: frames pooled, medians over them."""
    frames = [f for p in phases for f in p["frames"]]
    latencies = np.array([(m["peer_callback"] - m["stamp"]) * 1e3 for m in frames])
    dds = np.array([(m["hand_received"] - m["stamp"]) * 1e3 for m in frames if "hand_received" in m])
    pipeline = np.array([m["pipeline_total_ms"] for m in frames if "pipeline_total_ms" in m])
    pipeline_p50 = float(np.median(pipeline)) if len(pipeline) else float(
        np.median([p["node_pipeline_p50_ms"] for p in phases]))
    p50 = float(np.median(latencies)) if len(latencies) else float("nan")
    return {
        "sent": sum(p["sent"] for p in phases), "processed": len(frames),
        "latency_p50_ms": p50,
        "latency_p95_ms": float(np.percentile(latencies, 95)) if len(latencies) else float("nan"),
        "dds_reception_latency_p50_ms": float(np.median(dds)) if len(dds) else float("nan"),
        "pipeline_p50_ms": pipeline_p50, "overhead_ms": p50 - pipeline_p50,
        "dds_reception_overhead_ms": (float(np.median(dds)) if len(dds) else float("nan")) - pipeline_p50,
        "node_arrival_to_publish_p50_ms": float(np.median([p["node_arrival_to_publish_p50_ms"] for p in phases])),
        "load_average": [p["load_average"] for p in phases],
        "breakdown": breakdown(frames),
    }


def _print_breakdowns(summary: dict[str, dict[str, dict[str, Any]]]) -> None:
    names = list(summary)
    for rate in next(iter(summary.values())):
        print(f"\n--- {rate:g} Hz: p50 / mean per segment (ms); " + " | ".join(names))
        labels = [label for label, _, _ in SEGMENTS] + [PIPELINE_LABEL]
        for label in labels:
            cells = []
            for name in names:
                row = summary[name][rate]["breakdown"].get(label)
                cells.append(f"{row['p50_ms']:6.2f} / {row['mean_ms']:6.2f}" if row else f"{'-':>15}")
            print(f"  {label:<58} " + " | ".join(cells))
        for key, text in (("latency_p50_ms", "image -> HandArray p50 (Python callback)"),
                          ("latency_p95_ms", "image -> HandArray p95"),
                          ("dds_reception_latency_p50_ms", "image -> HandArray p50 (DDS reception here)"),
                          ("pipeline_p50_ms", "node pipeline p50"),
                          ("overhead_ms", "node overhead (callback p50 - pipeline p50)"),
                          ("dds_reception_overhead_ms", "node overhead (DDS reception p50 - pipeline p50)")):
            print(f"  {text:<58} " + " | ".join(f"{summary[n][rate][key]:15.2f}" for n in names))
        print(f"  {'frames processed / sent':<58} " + " | ".join(
            f"{summary[n][rate]['processed']:>7d} / {summary[n][rate]['sent']:<5d}" for n in names))


def _sweep(variant: _Variant, rgb: np.ndarray, seconds: float) -> dict[str, Any]:
    """Maximum sustained rate, then a burst at BURST_FACTOR times it."""
    sustained: dict[str, Any] | None = None
    trial: dict[str, Any] = {}
    for rate in SWEEP_RATES_HZ:
        trial = _phase(variant.peer, rgb, rate, SWEEP_SECONDS)
        print(f"  sweep {rate:5.1f} Hz: processed {trial['processed']}/{trial['sent']}, "
              f"p50 {trial['latency_p50_ms']:.1f} ms", file=sys.stderr)
        if trial["processed"] < KEEP_UP_FRACTION * trial["sent"]:
            break
        sustained = trial
    best = sustained or trial
    burst = _phase(variant.peer, rgb, BURST_FACTOR * max(best["input_hz"], 1.0), seconds)
    for r in (best, burst):
        r.pop("frames", None)
    return {"max": best, "burst": burst}


def main(argv: list[str] | None = None) -> int:  # noqa: C901, PLR0915 - one linear report
    """Run the phases against fresh node processes and print (and optionally save) the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", type=Path, default=DEFAULT_IMAGE, help="photo with two hands")
    parser.add_argument("--frame", choices=("full", "crop"), default="full",
                        help="full: the photo as it is (640x960 rgb8, 1.8 MB); crop: 640x480 of both hands")
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of each phase")
    parser.add_argument("--rates", default="10,30", help="steady-phase publication rates (Hz), comma-separated")
    parser.add_argument("--rate", type=float, default=None, help="one steady rate (overrides --rates)")
    parser.add_argument("--rounds", type=int, default=1, help="repeats of each (variant, rate) phase, interleaved")
    parser.add_argument("--baseline-tree", type=Path, default=None,
                        help="another checkout whose node runs as variant 'baseline', alternating with this one")
    parser.add_argument("--sweep", action="store_true", help="also the maximum sustained rate and a burst")
    parser.add_argument("--fake-ms", type=float, default=None,
                        help="use the test double pipeline taking this many ms (no models, the node's part only)")
    parser.add_argument("--backend", default=DEFAULT_BACKEND)
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument("-p", "--param", action="append", default=[], metavar="NAME:=VALUE",
                        help="extra node parameter (repeatable), e.g. -p intra_op_threads:=1")
    args = parser.parse_args(argv)
    if not args.image.is_file():
        print(f"image not found: {args.image}", file=sys.stderr)
        return 2
    if args.baseline_tree is not None and not (args.baseline_tree / "hand_recon_ros" / "hand_recon_ros").is_dir():
        print(f"--baseline-tree {args.baseline_tree} holds no hand_recon_ros/hand_recon_ros", file=sys.stderr)
        return 2
    rates = [args.rate] if args.rate is not None else [float(r) for r in args.rates.split(",") if r.strip()]
    rgb = _frame(args.image, args.frame)
    params: dict[str, Any] = {"backend": args.backend}
    for item in args.param:
        name, sep, value = item.partition(":=")
        if not sep:
            print(f"--param wants NAME:=VALUE, got {item!r}", file=sys.stderr)
            return 2
        params[name] = value
    results: dict[str, Any] = {
        "frame": f"{rgb.shape[1]}x{rgb.shape[0]} rgb8", "image": str(args.image), "cpu": cpu_description(),
        "cpus": os.cpu_count(), "parameters": params, "fake_ms": args.fake_ms, "rates_hz": rates,
        "fastdds_profile": os.environ.get("FASTDDS_DEFAULT_PROFILES_FILE", ""),
    }
    domain = DOMAIN_ID - os.getpid() % 5 * 2
    codes: list[int] = []
    with tempfile.TemporaryDirectory(prefix="bench_node_latency_") as trace_dir:
        variants: list[_Variant] = []
        try:
            if args.baseline_tree is not None:
                variants.append(_Variant("baseline", domain + 1, params, args.fake_ms, args.baseline_tree,
                                         Path(trace_dir)))
            variants.append(_Variant("current", domain, params, args.fake_ms, None, Path(trace_dir)))
            for variant in variants:
                variant.wait_ready(rgb)
            phases: dict[str, dict[float, list[dict[str, Any]]]] = {v.name: {r: [] for r in rates} for v in variants}
            for round_index in range(args.rounds):
                for rate in rates:
                    for variant in variants if round_index % 2 == 0 else variants[::-1]:
                        phase = _phase(variant.peer, rgb, rate, args.seconds, variant.trace_path)
                        phases[variant.name][rate].append(phase)
                        print(f"  round {round_index + 1} {variant.name:>8} {rate:4.0f} Hz: p50 "
                              f"{phase['latency_p50_ms']:.1f} ms, pipeline {phase['pipeline_p50_ms']:.1f}, "
                              f"overhead {phase['overhead_ms']:.1f} ms, load {phase['load_average'][0]:.1f}",
                              file=sys.stderr)
            summary = {name: {rate: _merge(p) for rate, p in by_rate.items()} for name, by_rate in phases.items()}
            results["steady"] = summary
            if args.sweep:
                results["sweep"] = {v.name: _sweep(v, rgb, args.seconds) for v in variants}
            for variant in variants:
                status = variant.peer.latest_status()
                results.setdefault("diagnostics", {})[variant.name] = (
                    status_values(status) if status is not None else {})
        finally:
            for variant in variants:
                codes.append(variant.close())
    pipeline = f"fake pipeline {args.fake_ms:g} ms" if args.fake_ms is not None else f"backend {args.backend}"
    print(f"cpu: {results['cpu']} ({results['cpus']} cores); frame {results['frame']}; {pipeline}; "
          f"Fast DDS profile: {results['fastdds_profile'] or '(none)'}")
    _print_breakdowns(results["steady"])
    for name, sweep in results.get("sweep", {}).items():
        for phase in ("max", "burst"):
            r = sweep[phase]
            print(f"{name} {phase:>6}: sent {r['sent']:5d} at {r['input_hz']:7.1f} Hz -> processed {r['processed']:5d} "
                  f"at {r['output_hz']:5.1f} Hz; latency p50 {r['latency_p50_ms']:6.1f} ms, p95 "
                  f"{r['latency_p95_ms']:6.1f} ms; in node: arrival->publish p50 "
                  f"{r['node_arrival_to_publish_p50_ms']:.1f} ms, pipeline p50 {r['node_pipeline_p50_ms']:.1f} ms")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=float), encoding="utf-8")
    return 0 if all(code == 0 for code in codes) else 1


if __name__ == "__main__":
    sys.exit(main())
