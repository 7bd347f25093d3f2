"""Longer training runs than the tests: tiny-synthetic (full 3D), weak 2D-only, and pseudo-labels of a real video.

Usage: python benchmarks/bench_training.py [--video ../shared/data/video/right_hand_motion.mp4] [--steps N]
       [--json OUT.json]
Prints the CPU, a reference timing measured in the same run (a 256×256 float32 matmul, 200 times), and for
each run: steps, wall and CPU seconds, seconds per step as a ratio to the reference, the loss at the first and
last step, and the 2D error (input pixels) before and after training: on the training images for the toy
sets, on the held-back last 20 % of the frames for the pseudo-labels. Every run uses the shipped
tiny-synthetic network (64×64 input) on one CPU thread.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from hand_recon_ros.cli import main as cli_main
from hand_recon_ros.commands.bench import cpu_description
from hand_recon_ros.training import trainer as tr
from hand_recon_ros.training.config import TrainConfig, load_config
from hand_recon_ros.training.crop_dataset import HandCropDataset
from hand_recon_ros.training.data_sources import load_records, split_records
from hand_recon_ros.training.run_log import read_metrics

REFERENCE_MATMULS = 200


def reference_ms() -> float:
    """Wall ms of REFERENCE_MATMULS 256×256 matmuls on one thread (the yardstick for the ratios)."""
    torch.set_num_threads(1)
    a = torch.rand(256, 256)
    start = time.perf_counter()
    for _ in range(REFERENCE_MATMULS):
        a @ a
    return (time.perf_counter() - start) * 1000.0


def run(name: str, config: TrainConfig, out: Path, records_2d_only: bool = False) -> dict:
    """Train ``config`` into ``out``; 2D error before/after on the held-back set (or the training images)."""
    records = load_records(config.data)
    if records_2d_only:
        for record in records:
            for hand in record.hands:
                hand.joints_3d = hand.joints_valid = None
        original = tr.load_records
        tr.load_records = lambda data: records
    train_records, held = split_records(records, config.data.val_fraction)
    size = int(config.network["input_size"])
    dataset = HandCropDataset(held or train_records, size, config.data, train=False)
    torch.manual_seed(config.seed)
    start_error = tr.evaluate_keypoints(tr.default_model_factory(config.network)[0], dataset, torch.device("cpu"),
                                        config.teacher_forcing)
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        result = tr.train(config, out, quiet=True)
    finally:
        if records_2d_only:
            tr.load_records = original
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    model, _ = tr.default_model_factory(config.network)
    model.load_state_dict(torch.load(result.checkpoint, weights_only=False)["model"])
    end_error = tr.evaluate_keypoints(model, dataset, torch.device("cpu"), config.teacher_forcing)
    rows = read_metrics(out / "metrics.csv")
    return {"run": name, "steps": result.step, "wall_s": wall, "cpu_s": cpu, "loss_first": rows[0]["loss"],
            "loss_last": rows[-1]["loss"], "error_2d_px_before": start_error, "error_2d_px_after": end_error,
            "evaluated_on": "held-back frames" if held else "training images"}


def main() -> None:
    """Run the three trainings and print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--video", default="../shared/data/video/right_hand_motion.mp4")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    ref = reference_ms()
    tiny = load_config("tiny-synthetic")
    tiny.max_steps = args.steps
    weak = TrainConfig.from_dict({**tiny.to_dict(), "mode": "weak",
                                  "loss": {"joints_3d": 0.0, "vertices": 0.0, "root_offset": 0.0}})
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        results.append(run("tiny-synthetic (full 3D)", tiny, Path(tmp) / "tiny"))
        results.append(run("weak, 2D-only toy labels", weak, Path(tmp) / "weak", records_2d_only=True))
        if Path(args.video).is_file():
            labels = Path(tmp) / "labels.json"
            start = time.perf_counter()
            if cli_main(["pseudo-label", args.video, "--every", "2", "-o", str(labels), "--quiet"]) != 0:
                raise SystemExit("pseudo-labelling failed")
            label_s = time.perf_counter() - start
            pl = load_config("pseudo-label").to_dict()
            pl.update(network=tiny.network, max_steps=args.steps, batch_size=8, cpu_threads=1, learning_rate=0.003,
                      log_every=25, checkpoint_every=args.steps)
            pl["data"].update(path=str(labels), val_every_n=0, rotation_deg=15.0)
            row = run(f"pseudo-labels of {Path(args.video).name}", TrainConfig.from_dict(pl), Path(tmp) / "pl")
            row["pseudo_label_s"] = label_s
            results.append(row)
    print(f"CPU: {cpu_description()}")
    print(f"reference: {REFERENCE_MATMULS} matmuls 256x256 fp32, 1 thread: {ref:.1f} ms")
    print(f"{'run':<40}{'steps':>6}{'wall s':>8}{'cpu s':>8}{'step/ref':>9}{'loss':>18}{'2D px':>16}  on")
    for r in results:
        ratio = r["wall_s"] / r["steps"] * 1000.0 / ref
        print(f"{r['run']:<40}{r['steps']:>6}{r['wall_s']:>8.1f}{r['cpu_s']:>8.1f}{ratio:>9.2f}"
              f"{r['loss_first']:>9.3f}->{r['loss_last']:<7.3f}{r['error_2d_px_before']:>7.2f}->"
              f"{r['error_2d_px_after']:<7.2f}  {r['evaluated_on']}")
    if args.json:
        Path(args.json).write_text(json.dumps({"cpu": cpu_description(), "reference_ms": ref, "runs": results},
                                              indent=1))


if __name__ == "__main__":
    main()
