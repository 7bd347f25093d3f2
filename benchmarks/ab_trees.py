#!/usr/bin/env python3
"""Before/after A/B of two source trees of hand_recon_ros in one run: per-stage medians, and the time outside the
networks ("glue" = total minus LiteRT's invoke calls), on the same decoded frame.

Each tree runs in its own worker process (PYTHONPATH points at it; both use this venv, models and numba cache);
rounds alternate between the workers, so load from other processes hits both alike. Typical use, with the
baseline exported from git:

    git archive <base-commit> hand_recon_ros | tar -x -C /tmp/base
    python benchmarks/ab_trees.py /tmp/base/hand_recon_ros hand_recon_ros --rounds 8 --frames 30

Ratios are against the first tree. "invoke" sums LiteRT's Interpreter.invoke per frame (both networks), so "glue" is
what the pipeline adds around them (pre/post-processing, tracking, lift, Python); "palm glue" and "landmarks glue"
are each network stage minus its own invoke calls.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
MODES = ("image", "video")

WORKER = r"""
import json, sys, time
import cv2
import numpy as np
from ai_edge_litert import interpreter as _litert
cv2.setNumThreads(1)
_invoke_ms = {"palm": 0.0, "landmarks": 0.0}
_network = {}  # id(interpreter) -> which network (by its input size: the palm network's is 192)
_invoke = _litert.Interpreter.invoke
def _timed(self, *args, **kwargs):
    network = _network.get(id(self))
    if network is None:
        network = _network[id(self)] = "palm" if self.get_input_details()[0]["shape"][1] == 192 else "landmarks"
    t = time.perf_counter()
    try:
        return _invoke(self, *args, **kwargs)
    finally:
        _invoke_ms[network] += (time.perf_counter() - t) * 1000.0
_litert.Interpreter.invoke = _timed
from hand_recon_ros.pipeline.config import PipelineConfig
from hand_recon_ros.pipeline.hand_pipeline import HandPipeline
rgb = cv2.cvtColor(cv2.imread(sys.argv[1]), cv2.COLOR_BGR2RGB)
pipe = HandPipeline(PipelineConfig(backend="litert"))
print(json.dumps({"ready": True}), flush=True)
for line in sys.stdin:
    mode, frames = line.split()
    pipe.update(mode=mode)
    pipe.reset()
    for _ in range(5):
        pipe.process(rgb)
    stages = []
    for _ in range(int(frames)):
        _invoke_ms["palm"] = _invoke_ms["landmarks"] = 0.0
        result = pipe.process(rgb)
        timing = dict(result.timing_ms)
        invoke = _invoke_ms["palm"] + _invoke_ms["landmarks"]
        if timing.get("palm", 0.0) > 0.0:
            timing["palm glue"] = timing["palm"] - _invoke_ms["palm"]
        timing["landmarks glue"] = timing["landmarks"] - _invoke_ms["landmarks"]
        timing["invoke"] = invoke
        timing["glue"] = timing["total"] - invoke
        stages.append(timing)
    print(json.dumps({"stages": stages, "hands": len(result.hands)}), flush=True)
"""


def main() -> int:
    """Run the A/B and print per-stage medians with ratios to the first tree."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("trees", nargs=2, type=Path, help="two hand_recon_ros package folders (before, after)")
    parser.add_argument("--image", type=Path, default=SHARED_DATA / "woman_hands.jpg")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--frames", type=int, default=30)
    args = parser.parse_args()
    for tree in args.trees:
        if not (tree / "hand_recon_ros" / "__init__.py").is_file():
            parser.error(f"not a hand_recon_ros package folder (no hand_recon_ros/__init__.py): {tree}")
    if not args.image.is_file():
        parser.error(f"image not found: {args.image}")
    workers = []
    for tree in args.trees:
        env = dict(os.environ, PYTHONPATH=f"{tree.resolve()}:{os.environ.get('PYTHONPATH', '')}")
        proc = subprocess.Popen([sys.executable, "-c", WORKER, str(args.image)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True, env=env)
        if not json.loads(proc.stdout.readline()).get("ready"):
            raise RuntimeError(f"worker for {tree} did not start")
        workers.append(proc)
    runs = {i: {m: [] for m in MODES} for i in range(2)}
    hands = {}
    try:
        for _ in range(args.rounds):
            for mode in MODES:
                for i, proc in enumerate(workers):
                    proc.stdin.write(f"{mode} {args.frames}\n")
                    proc.stdin.flush()
                    out = json.loads(proc.stdout.readline())
                    runs[i][mode] += out["stages"]
                    hands[(i, mode)] = out["hands"]
    finally:
        for proc in workers:
            proc.stdin.close()
            proc.wait()
    from hand_recon_ros.commands.bench import cpu_description

    print(f"{args.image.name}, {args.rounds} rounds x {args.frames} frames, cpu: {cpu_description()}; median ms "
          f"(ratio to the first tree)")
    for mode in MODES:
        reference: dict[str, float] = {}
        for i, tree in enumerate(args.trees):
            stages = runs[i][mode]
            keys = list(dict.fromkeys(k for s in stages for k in s))
            medians = {k: float(np.median([s[k] for s in stages if k in s])) for k in keys}
            reference = reference or medians
            cells = [f"{k} {v:.2f}" + (f" ({v / reference[k]:.2f}x)" if reference.get(k) else "")
                     for k, v in medians.items()]
            print(f"{mode:<6} {str(tree):<32} hands {hands[(i, mode)]}  " + ", ".join(cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
