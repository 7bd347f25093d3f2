"""Two landmark crops: one 2-thread LiteRT interpreter at batch 2 vs two 1-thread interpreters invoked from two threads.

Issue 12, lever 2 (does running the crops in parallel beat XNNPACK's own 2-thread split?). Rounds alternate.
Usage: ``python benchmarks/litert_parallel_crops.py [--rounds 6] [--calls 40]``.
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from hand_recon_ros.commands.bench import cpu_description
from hand_recon_ros.models.model_files import model_cache_dir

MODEL = model_cache_dir() / "hand_landmark_full.tflite"


def make_interpreter(threads: int, batch: int) -> Any:
    """A warmed-up landmark interpreter with ``threads`` XNNPACK threads at batch ``batch``."""
    interpreter = Interpreter(model_path=str(MODEL), num_threads=threads)
    detail = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(detail["index"], [batch, 224, 224, 3])
    interpreter.allocate_tensors()
    interpreter.invoke()
    return interpreter


def main() -> None:
    """Print the median of per-round median ms per frame (two crops) for both ways."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--calls", type=int, default=40)
    args = parser.parse_args()
    batched = make_interpreter(2, 2)
    first, second = make_interpreter(1, 1), make_interpreter(1, 1)
    pool = ThreadPoolExecutor(1)

    def parallel() -> None:
        future = pool.submit(second.invoke)
        first.invoke()
        future.result()

    ways = {"batch 2, 2 threads": batched.invoke, "2 x batch 1, 1 thread each, 2 Python threads": parallel}
    medians: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(args.rounds):
        for name, call in ways.items():
            times = []
            for _ in range(args.calls):
                start = time.perf_counter()
                call()
                times.append(time.perf_counter() - start)
            medians[name].append(float(np.median(times)) * 1e3)
    print(f"cpu: {cpu_description()}")
    for name, values in medians.items():
        print(f"{name}: {np.median(values):.3f} ms ({', '.join(f'{v:.2f}' for v in values)})")


if __name__ == "__main__":
    main()
