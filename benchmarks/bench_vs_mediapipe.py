#!/usr/bin/env python3
"""CPU speed in one run on the same frames: bare networks per backend, our stages, MediaPipe, node overhead.

MediaPipe runs in a SEPARATE venv (it pins old numpy/protobuf): create it once with
    python3 -m venv /tmp/mp-venv && /tmp/mp-venv/bin/pip install mediapipe==0.10.14
then, from the project venv (source env.sh):
    python benchmarks/bench_vs_mediapipe.py --image ../shared/data/woman_hands.jpg
Printed, all measured in this one run (rounds alternate between the systems so load from other processes hits
all of them):
  1. the bare network time per CPU backend (palm on the frame's letterboxed input, landmarks on its two crops);
  2. our pipeline per backend (the CPU default's A/B; litert:fp16 = the opt-in precision fp16) in image and video
     mode, each stage, and the 3D lift with the compiled solver and with the numpy reference solver;
  3. our total against MediaPipe 0.10.14 (static_image_mode = our image mode; tracking = video mode) as ratios;
  4. our total against our bare network time (image: palm + landmarks; video: landmarks), as a ratio;
  5. ROI proposals on the InterHand2.6M photos (frames where the palm detector leaves a hand missing), the default
     proposal_source "palm" and the "grid" source, alternating each round (benchmarks/bench_proposals.py has
     hands found and false hands on dim, noisy and hand-free frames);
  6. the node overhead: image → HandArray p50 over real DDS at --node-rate Hz minus the node's own pipeline p50,
     with the frames published as messages (the stamp then includes rclpy's serialisation of the 1.8 MB Image in
     this Python publisher) and pre-serialized (only the stamp patched in: the node's and the transport's part).
Times are wall-clock per process() call (decode excluded: every system gets the decoded RGB frame).
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

DEFAULT_MP_PYTHON = "/tmp/mp-venv/bin/python"
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
DEFAULT_FRAMES = 60
DEFAULT_WARMUP = 10
DEFAULT_ROUNDS = 3
DEFAULT_BACKENDS = ("litert", "onnxruntime-cpu", "litert:fp16")  # litert:fp16 = opt-in precision fp16
MODES = ("static", "tracking")
NODE_DOMAIN_ID = 131  # this project's benchmark/test range for this work: 130-139
NODE_STARTUP_TIMEOUT_S = 180.0
NODE_WARMUP_S = 3.0
LIFTER_REPEAT = 300  # back-to-back lifter calls per mode and solver
NODE_FRAME_ID = "camera_optical_frame"
CDR_HEADER_BYTES = 4  # CDR encapsulation header before the first field (header.stamp.sec)

# Runs inside the MediaPipe venv; prints one JSON object: mode -> per-frame ms, hands found, labels.
MP_SCRIPT = r"""
import json, sys, time
import cv2
import mediapipe as mp
path, frames, warmup = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rgb = cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB)
out = {"version": mp.__version__}
for mode in ("static", "tracking"):
    with mp.solutions.hands.Hands(static_image_mode=(mode == "static"), max_num_hands=2, model_complexity=1,
                                  min_detection_confidence=0.5, min_tracking_confidence=0.5) as hands:
        for _ in range(warmup):
            res = hands.process(rgb)
        times = []
        for _ in range(frames):
            t = time.perf_counter()
            res = hands.process(rgb)
            times.append((time.perf_counter() - t) * 1000.0)
        labels = [h.classification[0].label for h in (res.multi_handedness or [])]
        out[mode] = {"ms": times, "hands": len(res.multi_hand_landmarks or []), "labels": labels}
print(json.dumps(out))
"""


def run_mediapipe(python: str, image: Path, frames: int, warmup: int) -> dict:
    """One MediaPipe round in its own venv; returns the parsed JSON (raises with its stderr on failure)."""
    proc = subprocess.run([python, "-c", MP_SCRIPT, str(image), str(frames), str(warmup)], capture_output=True,
                          text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"MediaPipe run failed ({python}):\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def lifter_alone_ms(pipeline: Any, rgb: np.ndarray, mode: str, repeat: int) -> dict[str, float]:
    """Median ms of the pipeline's 3D lifter alone, called back to back on this frame's detections (hot caches,
    no network in between), with the compiled and with the numpy solver."""
    from hand_recon_ros.pipeline import solver_kernels

    pipeline.update(mode="image" if mode == "static" else "video")
    pipeline.reset()
    captured: list[tuple[tuple, dict]] = []
    lift = pipeline.lifter.lift
    pipeline.lifter.lift = lambda *a, **k: (captured.append((a, k)), lift(*a, **k))[1]
    try:
        for _ in range(3):
            pipeline.process(rgb)
    finally:
        pipeline.lifter.lift = lift
    args, kwargs = captured[-1]
    out = {}
    for name, on in (("compiled", True), ("numpy", False)):
        previous = solver_kernels.set_enabled(on)
        try:
            times = []
            for _ in range(repeat):
                t = time.perf_counter()
                lift(*args, **kwargs)
                times.append((time.perf_counter() - t) * 1000.0)
        finally:
            solver_kernels.set_enabled(previous)
        out[name] = float(np.median(times))
    return out


def run_ours(pipeline: Any, rgb: np.ndarray, mode: str, frames: int, warmup: int,
             bare_inputs: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[list[float], dict]:
    """Per-frame wall ms of HandPipeline.process in one mode, the per-frame stage timings and, with bare_inputs
    (palm input, landmark crops), the bare network times of the pipeline's own backends right after each frame
    (interleaved, so load from other processes hits both alike)."""
    pipeline.update(mode="image" if mode == "static" else "video")
    pipeline.reset()
    for _ in range(warmup):
        pipeline.process(rgb)
    times, stages = [], []
    bare: dict[str, list[float]] = {"palm": [], "landmarks": []}
    feeds = None if bare_inputs is None else (
        (pipeline.palm.backend, {pipeline.palm.input_name: bare_inputs[0]}),
        (pipeline.landmarks.backend, {pipeline.landmarks.input_name: bare_inputs[1]}))
    for _ in range(frames):
        t = time.perf_counter()
        result = pipeline.process(rgb)
        times.append((time.perf_counter() - t) * 1000.0)
        stages.append(result.timing_ms)
        if feeds is not None:
            for key, (backend, feed) in zip(("palm", "landmarks"), feeds):
                t = time.perf_counter()
                backend.run(feed)
                bare[key].append((time.perf_counter() - t) * 1000.0)
    return times, {"stages": stages, "hands": sorted(h.side for h in result.hands), "bare": bare}


def proposals_times(pipeline: Any, photos: list[Path], repeat: int) -> dict[str, Any]:
    """Median 'proposals' stage (ms) over the photos' frames that ran ROI proposals (image mode), and its count."""
    pipeline.update(mode="image")
    times, frames = [], 0
    for _ in range(repeat):
        for path in photos:
            result = pipeline.process(cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB))
            frames += 1
            if "proposals" in result.timing_ms:
                times.append(result.timing_ms["proposals"])
    return {"ms": times, "frames": frames}


def _serialized_sender(rgb: np.ndarray) -> Callable[[Any, np.ndarray, bool], None]:
    """A bench_node_latency._send that publishes the frame pre-serialized, only its stamp patched in.

    The stamp is taken just before publish, so rclpy's Python-side serialisation of a 1.8 MB Image (a Python
    camera driver's cost, 1-2 ms here) would otherwise count as node overhead.
    """
    from rclpy.serialization import serialize_message
    from test_ros_peer import make_camera_info, make_image_msg

    buffer = bytearray(serialize_message(make_image_msg(rgb, 0.0, NODE_FRAME_ID)))

    def send(peer: Any, frame: np.ndarray, with_info: bool) -> None:
        if with_info:
            peer.info_pub.publish(make_camera_info(frame.shape[1], frame.shape[0], NODE_FRAME_ID))
        sec, nanosec = divmod(time.time_ns(), 1_000_000_000)
        struct.pack_into("<iI", buffer, CDR_HEADER_BYTES, sec, nanosec)  # header.stamp, right after encapsulation
        peer.image_pub.publish(bytes(buffer))

    return send


def node_overhead(rgb: np.ndarray, backend: str, rate_hz: float, seconds: float) -> dict[str, Any]:
    """Image → HandArray p50 over real DDS at rate_hz, the node's own pipeline p50, and their difference (ms),
    with the frames published as messages (rclpy serialises them) and pre-serialized (the node's part only)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "hand_recon_ros" / "test"))
    import bench_node_latency
    from bench_node_latency import _phase
    from test_ros_peer import Peer, start_node, stop_node

    domain = NODE_DOMAIN_ID + os.getpid() % 8
    process = start_node(domain, {"backend": backend}, fake=False)
    peer = Peer(domain, node_name="bench_vs_mediapipe_peer")
    try:
        deadline = time.monotonic() + NODE_STARTUP_TIMEOUT_S
        while time.monotonic() < deadline and not peer.hands:
            peer.send(rgb, time.time())
            peer.wait_for(lambda: bool(peer.hands), 0.5)
        if not peer.hands:
            raise RuntimeError("the node never answered")
        _phase(peer, rgb, rate_hz, NODE_WARMUP_S)
        results = {"message": _phase(peer, rgb, rate_hz, seconds)}
        message_send = bench_node_latency._send
        bench_node_latency._send = _serialized_sender(rgb)
        try:
            results["serialized"] = _phase(peer, rgb, rate_hz, seconds)
        finally:
            bench_node_latency._send = message_send
    finally:
        peer.close()
        stop_node(process)
    for steady in results.values():
        steady.pop("frames", None)  # per-frame marks: bench_node_latency.py prints their breakdown
        steady["overhead_ms"] = steady["latency_p50_ms"] - steady["node_pipeline_p50_ms"]
        # the same, with the HandArray's arrival taken at its DDS reception here (rmw MessageInfo), not after
        # this Python process's executor and deserialisation
        steady["dds_overhead_ms"] = steady["dds_reception_latency_p50_ms"] - steady["node_pipeline_p50_ms"]
        steady["inside_node_ms"] = steady["node_arrival_to_publish_p50_ms"] - steady["node_pipeline_p50_ms"]
    return results


def _stage_medians(runs: list[dict[str, float]]) -> dict[str, float]:
    keys = list(dict.fromkeys(k for r in runs for k in r))
    return {k: float(np.median([r[k] for r in runs if k in r])) for k in keys}


def main() -> int:  # noqa: C901, PLR0915 - one linear report
    """Measure everything listed in the module docstring and print it (optionally also as JSON)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", type=Path, default=SHARED_DATA / "woman_hands.jpg")
    parser.add_argument("--mp-python", default=DEFAULT_MP_PYTHON)
    parser.add_argument("--frames", type=int, default=DEFAULT_FRAMES)
    parser.add_argument("--warmup", type=int, default=DEFAULT_WARMUP)
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS)
    parser.add_argument("--threads", type=int, default=0, help="our inference threads (0 = backend default)")
    parser.add_argument("--backends", nargs="+", default=list(DEFAULT_BACKENDS),
                        help="CPU backends compared, each NAME or NAME:PRECISION (e.g. litert:fp16)")
    parser.add_argument("--node-seconds", type=float, default=10.0, help="node phase length (0 = skip the node)")
    parser.add_argument("--node-rate", type=float, default=10.0, help="node phase input rate (Hz)")
    parser.add_argument("--proposal-photos", type=Path, default=SHARED_DATA / "interhand2.6m",
                        help="folder of photos where the palm detector misses hands (ROI proposals)")
    parser.add_argument("--json", type=Path, default=None, help="also write all numbers here")
    args = parser.parse_args()
    if not args.image.is_file():
        parser.error(f"image not found: {args.image}")
    if not Path(args.mp_python).is_file():
        parser.error(f"MediaPipe venv python not found: {args.mp_python} (see this script's docstring)")

    from hand_recon_ros.commands.bench import cpu_description
    from hand_recon_ros.engines.registry import DEFAULT_BACKEND
    from hand_recon_ros.pipeline import solver_kernels
    from hand_recon_ros.pipeline.config import PipelineConfig
    from hand_recon_ros.pipeline.hand_pipeline import HandPipeline
    from hand_recon_ros.pipeline.roi import palm_to_roi

    started = time.monotonic()
    rgb = cv2.cvtColor(cv2.imread(str(args.image)), cv2.COLOR_BGR2RGB)
    pipelines = {name: HandPipeline(PipelineConfig(backend=name.split(":")[0], intra_op_threads=args.threads,
                                                   precision=(name.split(":") + ["auto"])[1]))
                 for name in args.backends}
    default = DEFAULT_BACKEND if DEFAULT_BACKEND in pipelines else args.backends[0]
    # The bare networks' inputs: this frame's letterboxed palm input and its landmark crops (as the pipeline makes).
    reference = pipelines[default]
    palm_input = reference.palm.preprocess(rgb)[0].copy()
    rois = [palm_to_roi(p) for p in reference.palm.detect(rgb, reference.config.min_detection_score)][:2]
    crops = reference.landmarks.crops(rgb, rois)
    photos = sorted(args.proposal_photos.glob("*.jpg")) if args.proposal_photos.is_dir() else []

    systems = ["mediapipe", *pipelines, "numpy-solver"]
    times: dict[str, dict[str, list[float]]] = {k: {m: [] for m in MODES} for k in systems}
    stages: dict[str, dict[str, list[dict[str, float]]]] = {k: {m: [] for m in MODES} for k in systems}
    # bare[backend][mode][network]: measured right after the frames of that mode (same load as those frames)
    bare: dict[str, dict[str, dict[str, list[float]]]] = {
        n: {m: {"palm": [], "landmarks": []} for m in MODES} for n in pipelines}
    proposals: dict[str, list[float]] = {"ms": [], "grid_ms": []}
    details: dict[str, Any] = {}
    for round_index in range(args.rounds):
        mp_result = run_mediapipe(args.mp_python, args.image, args.frames, args.warmup)
        details["mediapipe"] = {m: {k: v for k, v in mp_result[m].items() if k != "ms"} for m in MODES}
        details["mediapipe"]["version"] = mp_result["version"]
        for mode in MODES:
            times["mediapipe"][mode] += mp_result[mode]["ms"]
        for name, pipeline in pipelines.items():
            for mode in MODES:
                ms, info = run_ours(pipeline, rgb, mode, args.frames, args.warmup, (palm_input, crops))
                times[name][mode] += ms
                for network, values in info["bare"].items():
                    bare[name][mode][network] += values
                stages[name][mode] += info["stages"]
                details.setdefault(name, {})[mode] = {"hands": info["hands"]}
        previous = solver_kernels.set_enabled(False)  # the numpy reference solver, same pipeline and frames
        try:
            for mode in MODES:
                ms, info = run_ours(pipelines[default], rgb, mode, args.frames, args.warmup)
                times["numpy-solver"][mode] += ms
                stages["numpy-solver"][mode] += info["stages"]
        finally:
            solver_kernels.set_enabled(previous)
        if photos:
            proposals["ms"] += proposals_times(pipelines[default], photos, 1)["ms"]
            pipelines[default].update(proposal_source="grid")  # the other source, same round
            proposals["grid_ms"] += proposals_times(pipelines[default], photos, 1)["ms"]
            pipelines[default].update(proposal_source=PipelineConfig.proposal_source)
        print(f"round {round_index + 1}/{args.rounds} done", file=sys.stderr)
    lifter_alone = {mode: lifter_alone_ms(pipelines[default], rgb, mode, LIFTER_REPEAT) for mode in MODES}
    for pipeline in pipelines.values():
        pipeline.close()
    node = None
    if args.node_seconds > 0:
        print("node phase (real DDS) ...", file=sys.stderr)
        node = node_overhead(rgb, default, args.node_rate, args.node_seconds)

    medians = {k: {m: float(np.median(v[m])) for m in MODES} for k, v in times.items()}
    p95 = {k: {m: float(np.percentile(v[m], 95)) for m in MODES} for k, v in times.items()}
    stage_medians = {k: {m: _stage_medians(v[m]) for m in MODES if v[m]} for k, v in stages.items()}
    bare_by_mode = {n: {m: {k: float(np.median(v)) for k, v in b[m].items()} for m in MODES} for n, b in bare.items()}
    bare_medians = {n: {k: float(np.median(b["static"][k] + b["tracking"][k])) for k in ("palm", "landmarks")}
                    for n, b in bare.items()}
    mp_ms = medians["mediapipe"]
    h, w = rgb.shape[:2]
    print(f"\n{args.image.name} ({w}x{h}), {args.rounds} rounds x {args.frames} frames, hands in the crops: "
          f"{len(rois)}; cpu: {cpu_description()}")
    print("median ms (p95); ratios are against numbers measured in this same run\n")
    print("1. bare networks (the pipeline's own backends and inputs, one call each right after every frame)")
    for name, b in bare_medians.items():
        print(f"   {name:<18} palm {b['palm']:6.2f}  landmarks x{len(rois)} {b['landmarks']:6.2f}  "
              f"sum {b['palm'] + b['landmarks']:6.2f}")
    print("\n2./3./4. whole frame: ours vs MediaPipe " + details["mediapipe"]["version"] + " and vs our bare networks")
    print(f"   {'system':<22}{'image mode':>22}{'video mode':>22}{'vs MP img':>11}{'vs MP vid':>11}"
          f"{'vs bare img':>13}{'vs bare vid':>13}")
    print(f"   {'mediapipe':<22}{mp_ms['static']:>12.2f} ({p95['mediapipe']['static']:6.2f}) "
          f"{mp_ms['tracking']:>12.2f} ({p95['mediapipe']['tracking']:6.2f})")
    ratios: dict[str, dict[str, float]] = {}
    for name in [*pipelines, "numpy-solver"]:
        backend = default if name == "numpy-solver" else name
        bi, bv = bare_by_mode[backend]["static"], bare_by_mode[backend]["tracking"]
        r = {"vs_mp_image": medians[name]["static"] / mp_ms["static"],
             "vs_mp_video": medians[name]["tracking"] / mp_ms["tracking"],
             "vs_bare_image": medians[name]["static"] / (bi["palm"] + bi["landmarks"]),
             "vs_bare_video": medians[name]["tracking"] / bv["landmarks"]}
        ratios[name] = r
        label = f"ours {name}" if name != "numpy-solver" else f"ours {default}, numpy solver"
        print(f"   {label:<22}{medians[name]['static']:>12.2f} ({p95[name]['static']:6.2f}) "
              f"{medians[name]['tracking']:>12.2f} ({p95[name]['tracking']:6.2f})"
              f"{r['vs_mp_image']:>10.2f}x{r['vs_mp_video']:>10.2f}x{r['vs_bare_image']:>12.2f}x"
              f"{r['vs_bare_video']:>12.2f}x")
    print("\n   stages (median ms) and each network stage minus its bare network")
    for name in [*pipelines, "numpy-solver"]:
        backend = default if name == "numpy-solver" else name
        for mode in MODES:
            s = stage_medians[name][mode]
            extra = ""
            own = bare_by_mode[backend][mode]
            if mode == "static" and "palm" in s:
                extra += f"; palm - bare {s['palm'] - own['palm']:+.2f}"
            if "landmarks" in s:
                extra += f"; landmarks - bare {s['landmarks'] - own['landmarks']:+.2f}"
            print(f"   {name:<16}{mode:<9}" + ", ".join(f"{k} {v:.2f}" for k, v in s.items()) + extra)
    lift_c = [stage_medians[default][m].get("lift", float("nan")) for m in MODES]
    lift_n = [stage_medians["numpy-solver"][m].get("lift", float("nan")) for m in MODES]
    print(f"\n   3D lift, two hands: compiled {lift_c[0]:.2f} (image) / {lift_c[1]:.2f} (video) ms, numpy "
          f"{lift_n[0]:.2f} / {lift_n[1]:.2f} ms, ratio {lift_c[0] / lift_n[0]:.2f} / {lift_c[1] / lift_n[1]:.2f}")
    print(f"   the lifter alone, back to back on this frame's detections: compiled "
          f"{lifter_alone['static']['compiled']:.2f} / {lifter_alone['tracking']['compiled']:.2f} ms, numpy "
          f"{lifter_alone['static']['numpy']:.2f} / {lifter_alone['tracking']['numpy']:.2f} ms (image / video)")
    if proposals["ms"]:
        bare_frame = bare_medians[default]["palm"] + bare_medians[default]["landmarks"]
        print(f"\n5. ROI proposals ({default}, proposal_source {PipelineConfig.proposal_source}): median "
              f"{np.median(proposals['ms']):.1f} ms, p95 {np.percentile(proposals['ms'], 95):.1f} ms over "
              f"{len(proposals['ms'])} frames of {args.proposal_photos.name} that ran them; vs the frame's bare "
              f"networks (palm + landmarks x{len(rois)}, {bare_frame:.2f} ms): "
              f"{np.median(proposals['ms']) / bare_frame:.2f}x")
        grid_ms = proposals["grid_ms"]
        print(f"   proposal_source grid: median {np.median(grid_ms):.1f} ms, p95 {np.percentile(grid_ms, 95):.1f} ms "
              f"over {len(grid_ms)} frames ({np.median(grid_ms) / bare_frame:.2f}x the bare networks); ratio "
              f"{PipelineConfig.proposal_source} / grid {np.median(proposals['ms']) / np.median(grid_ms):.2f}")
    if node is not None:
        print(f"\n6. node ({default}, {args.node_rate:.0f} Hz, real DDS, {w}x{h} rgb8)")
        for kind, r in node.items():
            how = "published as a message" if kind == "message" else "published pre-serialized"
            print(f"   {how:<26}: image -> HandArray p50 {r['latency_p50_ms']:.1f} ms (p95 "
                  f"{r['latency_p95_ms']:.1f}), node pipeline p50 {r['node_pipeline_p50_ms']:.1f} ms, overhead "
                  f"{r['overhead_ms']:.1f} ms ({r['dds_overhead_ms']:.1f} to the HandArray's DDS reception; "
                  f"{r['inside_node_ms']:.1f} inside the node); processed "
                  f"{r['processed']}/{r['sent']}, hands/frame {r['hands_per_frame']:.2f}")
    for mode in MODES:
        print(f"hands found [{mode}]: MediaPipe {details['mediapipe'][mode]['labels']} (mirrored-image labels), "
              + ", ".join(f"{name} {details[name][mode]['hands']}" for name in pipelines))
    print(f"benchmark wall time: {time.monotonic() - started:.0f} s")
    if args.json:
        args.json.write_text(json.dumps({
            "cpu": cpu_description(), "medians_ms": medians, "p95_ms": p95, "stages_ms": stage_medians,
            "bare_ms": bare_medians, "bare_ms_by_mode": bare_by_mode, "ratios": ratios,
            "proposals_ms": proposals["ms"], "proposals_grid_ms": proposals["grid_ms"], "node": node,
            "lifter_alone_ms": lifter_alone,
            "details": details}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
