"""A LiteRT call right after another interpreter's call vs right after its own: the cost of switching networks.

The pipeline alternates the palm and the landmark interpreters (each with its own XNNPACK thread pool); the
"bare network" figures of bench_vs_mediapipe.py call one interpreter right after a frame. This prints the median
ms of the landmark network (batch 2) and of the palm network, each right after itself and right after the other,
rounds interleaved. Usage: ``python benchmarks/litert_interpreter_switch.py [--rounds 6] [--calls 20]``.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from hand_recon_ros.commands.bench import cpu_description
from hand_recon_ros.models.model_files import model_cache_dir


def make_interpreter(name: str, batch: int) -> Any:
    """A warmed-up 2-thread interpreter of the cached ``name``.tflite at ``batch``."""
    interpreter = Interpreter(model_path=str(model_cache_dir() / f"{name}.tflite"), num_threads=2)
    detail = interpreter.get_input_details()[0]
    if batch != int(detail["shape"][0]):
        interpreter.resize_tensor_input(detail["index"], [batch, *detail["shape"][1:]])
    interpreter.allocate_tensors()
    for _ in range(5):
        interpreter.invoke()
    return interpreter


def timed_ms(interpreter: Any) -> float:
    """One invoke, wall ms."""
    start = time.perf_counter()
    interpreter.invoke()
    return (time.perf_counter() - start) * 1000.0


def main() -> None:
    """Print the four medians (landmarks / palm, after itself / after the other network)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--calls", type=int, default=20)
    args = parser.parse_args()
    palm, landmarks = make_interpreter("palm_detection_full", 1), make_interpreter("hand_landmark_full", 2)
    pairs = {"landmarks x2 after landmarks": (landmarks, landmarks), "landmarks x2 after palm": (palm, landmarks),
             "palm after palm": (palm, palm), "palm after landmarks": (landmarks, palm)}
    times: dict[str, list[float]] = {name: [] for name in pairs}
    for _ in range(args.rounds):
        for name, (before, measured) in pairs.items():
            for _ in range(args.calls):
                before.invoke()
                times[name].append(timed_ms(measured))
    print(f"cpu: {cpu_description()}; load {os.getloadavg()[0]:.2f}; {args.rounds} rounds x {args.calls} calls")
    for name, values in times.items():
        print(f"  {name:<30} {np.median(values):6.2f} ms")


if __name__ == "__main__":
    main()
