"""`hand-recon bench`: per-stage median / p95 latency and FPS of the full pipeline on given frames."""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
from pathlib import Path
from typing import Any

import numpy as np

from hand_recon_ros.commands.precision_args import precision_problem
from hand_recon_ros.commands.run import add_pipeline_arguments, build_pipeline
from hand_recon_ros.engines.base import BackendError
from hand_recon_ros.io.image_source import iter_frames
from hand_recon_ros.models.model_files import ModelFileError

log = logging.getLogger("hand_recon_ros.bench")

DEFAULT_REPEAT = 50
DEFAULT_WARMUP = 5
MAX_FRAMES_LOADED = 500  # frames kept in memory from videos
CPUINFO = Path("/proc/cpuinfo")
# x86 vector extensions that change ONNX Runtime's CPU speed most (reported so numbers carry their machine).
VECTOR_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_tile")


def cpu_description(cpuinfo: Path = CPUINFO) -> str:
    """CPU model, usable cores and vector extensions in one line, e.g. 'AMD EPYC, 2 cores, avx2'."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                model = value.strip()
            elif key.strip() in ("flags", "Features"):
                flags = set(value.split())
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    vector = [f for f in VECTOR_FLAGS if f in flags]
    return f"{model}, {cores} cores" + (f", {' '.join(vector)}" if vector else "")


def register(subparsers: Any) -> None:
    """Add the `bench` sub-command."""
    parser = subparsers.add_parser("bench", help="time the pipeline per stage (median, p95, FPS)",
                                   description=__doc__)
    add_pipeline_arguments(parser)
    parser.add_argument("--repeat", type=int, default=DEFAULT_REPEAT, help="timed passes over the frames")
    parser.add_argument("--warmup", type=int, default=DEFAULT_WARMUP, help="untimed frames first")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.set_defaults(func=bench_command)


def summarise(timings: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """Median and p95 (ms) of every stage over the timed frames, plus FPS from the median total."""
    stages = list(dict.fromkeys(k for t in timings for k in t))
    summary: dict[str, dict[str, float]] = {}
    for stage in stages:
        values = np.array([t[stage] for t in timings if stage in t], dtype=np.float64)
        summary[stage] = {"median_ms": float(np.median(values)), "p95_ms": float(np.percentile(values, 95)),
                          "mean_ms": float(values.mean())}
    if "total" in summary and summary["total"]["median_ms"] > 0:
        summary["total"]["fps"] = 1000.0 / summary["total"]["median_ms"]
    return summary


def format_table(summary: dict[str, dict[str, float]], title: str) -> str:
    """A fixed-width table of the summary."""
    lines = [title, f"{'stage':<12}{'median ms':>12}{'p95 ms':>12}{'mean ms':>12}"]
    for stage, row in summary.items():
        lines.append(f"{stage:<12}{row['median_ms']:>12.2f}{row['p95_ms']:>12.2f}{row['mean_ms']:>12.2f}")
    if "fps" in summary.get("total", {}):
        lines.append(f"FPS (from median total): {summary['total']['fps']:.1f}")
    return "\n".join(lines)


def bench_command(args: argparse.Namespace) -> int:
    """Load the frames, warm up, time ``repeat`` passes; print a table or JSON. Exit 1 when no frame loads."""
    if args.repeat < 1 or args.warmup < 0:
        log.error("--repeat must be >= 1 and --warmup >= 0, got %d and %d", args.repeat, args.warmup)
        return 2
    if precision_problem(args):
        log.error("%s", precision_problem(args))
        return 2
    frames = []
    for frame in iter_frames(args.inputs, args.topic):
        if frame.image is None:
            log.error("%s", frame.error)
            continue
        frames.append(frame.image)
        if len(frames) >= MAX_FRAMES_LOADED:
            break
    if not frames:
        log.error("no frame could be loaded from %s", args.inputs)
        return 1
    mode = args.mode or "image"
    try:
        pipeline = build_pipeline(args)
    except (BackendError, ModelFileError, ValueError) as exc:  # missing runtime, bad model file, bad option
        log.error("cannot build the pipeline: %s", exc)
        return 2
    pipeline.update(mode=mode)
    try:
        for i in range(args.warmup):
            pipeline.process(frames[i % len(frames)])
        timings: list[dict[str, float]] = []
        hands: list[int] = []
        for _ in range(args.repeat):
            for image in frames:
                result = pipeline.process(image)
                timings.append(result.timing_ms)
                hands.append(len(result.hands))
        description = pipeline.backend_description
    finally:
        pipeline.close()
    summary = summarise(timings)
    info = {"mode": mode, "frames": len(frames), "timed_frames": len(timings), "backend": description,
            "cpu": cpu_description(), "mean_hands": float(np.mean(hands)), "stages": summary}
    if args.json:
        json.dump(info, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        title = (f"mode={mode} frames={len(frames)} timed={len(timings)} hands/frame={info['mean_hands']:.2f}\n"
                 f"{description}\ncpu: {info['cpu']}")
        print(format_table(summary, title))
    return 0
