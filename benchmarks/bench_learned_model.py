"""Size and CPU speed of the learned two-hand network per backbone: parameters, ONNX Runtime time at 256², batch 1.

    python benchmarks/bench_learned_model.py [--backbones resnet18,resnet34,resnet50,mediapipe] [--runs 30]
        [--threads 0] [--json OUT.json]

Each backbone's network (random init: speed does not depend on the weights) is exported with the real exporter
(parity-checked), then timed in ONNX Runtime on the CPU: median and p95 of ``--runs`` calls after 5 warm-ups on
one fixed random 256x256 image. The MediaPipe hand-landmark network (224², batch 1, the default pipeline's
per-hand network) is timed the same way right after each backbone, and each time is given as a ratio to that
reference, so numbers from machines of different speed (or load) compare.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from hand_recon_ros.commands.bench import cpu_description
from hand_recon_ros.models.model_files import ensure_models
from hand_recon_ros.network import NetworkConfig, build_model
from hand_recon_ros.network.export import export_onnx

WARMUP_RUNS = 5
BACKBONES = ("resnet18", "resnet34", "resnet50", "mediapipe")


def time_session(path: Path, feeds: dict[str, np.ndarray], runs: int, threads: int) -> tuple[float, float]:
    """Median and p95 milliseconds of ``runs`` ONNX Runtime CPU calls after WARMUP_RUNS."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    for _ in range(WARMUP_RUNS):
        session.run(None, feeds)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(None, feeds)
        times.append((time.perf_counter() - start) * 1000.0)
    return float(np.median(times)), float(np.percentile(times, 95))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbones", default=",".join(BACKBONES))
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--threads", type=int, default=0, help="ORT intra-op threads (0 = default)")
    parser.add_argument("--json", default=None, metavar="OUT.json")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    image = rng.uniform(0, 1, (1, 3, 256, 256)).astype(np.float32)
    landmark = ensure_models("full").landmark_onnx
    ref_feeds = {"image": rng.uniform(0, 1, (1, 224, 224, 3)).astype(np.float32)}
    ref_ms, ref_p95 = time_session(landmark, ref_feeds, args.runs, args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.backbones.split(","):
            torch.manual_seed(0)
            model = build_model(NetworkConfig.from_dict({"backbone": name}))
            params = sum(p.numel() for p in model.parameters())
            backbone_params = sum(p.numel() for p in model.backbone.parameters())
            path = Path(tmp) / f"{name}.onnx"
            parity = max(export_onnx(model, path).values())
            median, p95 = time_session(path, {"images": image}, args.runs, args.threads)
            # The reference again right after, so each ratio compares runs under the same machine load.
            row_ref, _ = time_session(landmark, ref_feeds, args.runs, args.threads)
            rows.append({"backbone": name, "params_m": params / 1e6, "backbone_params_m": backbone_params / 1e6,
                         "onnx_mb": path.stat().st_size / 1e6, "parity_max_abs": parity, "ort_median_ms": median,
                         "ort_p95_ms": p95, "reference_median_ms": row_ref, "ratio_to_landmark": median / row_ref})
    info = {"cpu": cpu_description(), "onnxruntime": ort.__version__, "threads": args.threads, "runs": args.runs,
            "reference": {"network": "hand_landmark_full 224x224 batch 1", "median_ms": ref_ms, "p95_ms": ref_p95},
            "rows": rows}
    print(f"cpu: {info['cpu']}; onnxruntime {ort.__version__}; threads {args.threads or 'default'}; "
          f"{args.runs} runs after {WARMUP_RUNS} warm-ups")
    print(f"reference: MediaPipe hand_landmark_full 224² batch 1: median {ref_ms:.1f} ms, p95 {ref_p95:.1f} ms")
    print(f"{'backbone':<10}{'params M':>10}{'of which backbone':>19}{'ONNX MB':>9}{'parity':>10}"
          f"{'median ms':>11}{'p95 ms':>9}{'ref ms':>8}{'x landmark':>12}")
    for r in rows:
        print(f"{r['backbone']:<10}{r['params_m']:>10.2f}{r['backbone_params_m']:>19.2f}{r['onnx_mb']:>9.1f}"
              f"{r['parity_max_abs']:>10.1e}{r['ort_median_ms']:>11.1f}{r['ort_p95_ms']:>9.1f}"
              f"{r['reference_median_ms']:>8.1f}"
              f"{r['ratio_to_landmark']:>12.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps(info, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
