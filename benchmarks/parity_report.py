#!/usr/bin/env python3
"""Parity and speed of the imported palm/landmark networks: torch vs LiteRT, ONNX Runtime vs torch and LiteRT.

Prints, per network and output, the max abs error on random inputs and on crops of the shared photos, then
per-call latency (median and p95 ms, batch 1; landmarks also batch 2 = both hands in one call) for LiteRT,
ONNX Runtime (the project's CPU backend, the export in the model cache) and eager torch.

    python benchmarks/parity_report.py [--variant full|lite|all] [--threads N] [--runs 200] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import torch

from hand_recon_ros.models.model_files import ensure_models
from hand_recon_ros.models.tflite_import import invoke_litert, load_tflite_module, make_litert_interpreter

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("HAND_RECON_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
RANDOM_BATCH = 8
WARMUP_RUNS = 20


def photo_inputs(size: int) -> np.ndarray | None:
    """Whole image and left/right halves of every shared photo, resized to size x size, RGB [0, 1]."""
    paths = [SHARED_DATA / "woman_hands.jpg", *sorted((SHARED_DATA / "interhand2.6m").glob("*.jpg"))]
    crops = []
    for path in paths:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            continue
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        w = image.shape[1]
        for crop in (image, image[:, : w // 2], image[:, w // 2 :]):
            crops.append(cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA))
    return np.stack(crops).astype(np.float32) / 255.0 if crops else None


def max_errors(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> dict[str, float]:
    """Max abs difference per output name."""
    return {name: float(np.abs(a[name] - b[name]).max()) for name in b}


def latency_ms(fns: dict[str, object], runs: int) -> dict[str, tuple[float, float]]:
    """(median, p95) wall-clock ms per call of each ``fn()``, calls interleaved so a shared CPU's load hits all."""
    for fn in fns.values():
        for _ in range(WARMUP_RUNS):
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(runs):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - start) * 1000.0)
    return {name: (float(np.median(t)), float(np.percentile(t, 95))) for name, t in times.items()}


def report_network(label: str, tflite_path: Path, onnx_path: Path, threads: int, runs: int) -> dict:
    """Parity and timing of one network; returns the numbers as a dict and prints them."""
    module = load_tflite_module(tflite_path)
    interpreter = make_litert_interpreter(tflite_path, num_threads=threads)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    names = module.output_names
    dynamic = not isinstance(session.get_inputs()[0].shape[0], int)

    def run_ort(x: np.ndarray) -> dict[str, np.ndarray]:
        if dynamic:
            return dict(zip(names, session.run(names, {"image": x})))
        outs = [session.run(names, {"image": item[None]}) for item in x]
        return {n: np.concatenate([o[i] for o in outs]) for i, n in enumerate(names)}

    size = module.input_shape[1]
    inputs = {"random": np.random.default_rng(0).random((RANDOM_BATCH, size, size, 3), dtype=np.float32)}
    photos = photo_inputs(size)
    if photos is not None:
        inputs["photos"] = photos
    result: dict = {"network": label, "parity": {}, "latency_ms": {}}
    print(f"\n== {label} ({tflite_path.name} / {onnx_path.name})")
    for kind, x in inputs.items():
        ref = invoke_litert(interpreter, x)
        ours = module.run_numpy(x)
        onnx_out = run_ort(x)
        rows = {
            "torch vs LiteRT": max_errors(ours, ref),
            "ORT vs torch": max_errors(onnx_out, ours),
            "ORT vs LiteRT": max_errors(onnx_out, ref),
        }
        scale = {n: float(np.abs(ref[n]).max()) for n in names}
        result["parity"][kind] = {"n": len(x), "max_abs_ref": scale, **rows}
        print(f"  parity, {kind} inputs (n={len(x)}), max abs error per output (max |LiteRT| in brackets):")
        for row, errs in rows.items():
            cells = "  ".join(f"{n} {errs[n]:.2e} [{scale[n]:.3g}]" for n in names)
            print(f"    {row:16s} {cells}")
    x1 = inputs["random"][:1]
    x2 = inputs["random"][:2]
    torch.set_num_threads(threads)
    xt = torch.from_numpy(x1)

    def run_torch() -> None:
        with torch.inference_mode():
            module(xt)

    fns = {
        "LiteRT b1": lambda: invoke_litert(interpreter, x1),
        "ORT b1": lambda: session.run(names, {"image": x1}),
        "torch b1": run_torch,
    }
    if dynamic:
        fns["LiteRT 2x b1"] = lambda: invoke_litert(interpreter, x2)
        fns["ORT b2"] = lambda: session.run(names, {"image": x2})
    timings = latency_ms(fns, runs)
    result["latency_ms"] = {k: {"median": v[0], "p95": v[1]} for k, v in timings.items()}
    print(f"  latency per call ({threads} thread(s), {runs} runs): median / p95 ms")
    for key, (median, p95) in timings.items():
        print(f"    {key:14s} {median:7.2f} / {p95:7.2f}")
    return result


def main(argv: list[str] | None = None) -> int:
    """Run the report for the chosen variants; exit status 0."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", choices=("full", "lite", "all"), default="full")
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads for LiteRT, ORT and torch")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers to this JSON file")
    args = parser.parse_args(argv)
    print(f"onnxruntime {ort.__version__}, torch {torch.__version__}, cpu count {os.cpu_count()}, photos {SHARED_DATA}")
    results = []
    for variant in ("full", "lite") if args.variant == "all" else (args.variant,):
        paths = ensure_models(variant)
        results.append(report_network(f"palm {variant}", paths.palm_tflite, paths.palm_onnx, args.threads, args.runs))
        results.append(
            report_network(f"landmark {variant}", paths.landmark_tflite, paths.landmark_onnx, args.threads, args.runs)
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
