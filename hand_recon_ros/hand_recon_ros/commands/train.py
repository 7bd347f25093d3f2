"""`hand-recon train CONFIG`: train the learned two-hand network (one process, or many under torchrun + DDP).

CONFIG is a YAML file or a shipped config name (interhand-full, weak-2d, pseudo-label, tiny-synthetic).
RUN_DIR receives config.yaml, metrics.csv, TensorBoard event files and checkpoints/last.pt (atomic writes);
``--resume`` continues exactly from RUN_DIR's last checkpoint. Exit 2 for bad options or configs, 1 when the
work fails (bad data, unreadable checkpoint, non-finite loss).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

log = logging.getLogger("hand_recon_ros.train")

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def register(subparsers: Any) -> None:
    """Add the `train` sub-command."""
    parser = subparsers.add_parser("train", help="train the learned two-hand network", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", metavar="CONFIG", help="YAML path or shipped config name")
    parser.add_argument("--out", default=None, metavar="RUN_DIR", help="run folder (default runs/<config name>)")
    parser.add_argument("--max-steps", type=int, default=None, help="stop after this many steps in total")
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when available)")
    parser.add_argument("--resume", action="store_true", help="continue from RUN_DIR/checkpoints/last.pt")
    parser.add_argument("--data", default=None, metavar="PATH", help="override data.path of the config")
    parser.add_argument("--images-dir", default=None, metavar="DIR", help="override data.images_dir of the config")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=train_command)


def _device(name: str | None) -> str:
    """The torch device to use; ValueError when an explicitly requested CUDA device does not exist."""
    import torch

    if name is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ValueError(f"--device {name!r}: {exc}") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name!r}: CUDA is not available on this machine (torch {torch.__version__})")
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"--device {name!r}: only cpu and cuda are supported")
    return name


def train_command(args: argparse.Namespace) -> int:
    """Parse the config, train, report the last step and checkpoint."""
    from hand_recon_ros.config_schema import ConfigError
    from hand_recon_ros.training.checkpoint_io import CheckpointError
    from hand_recon_ros.training.config import load_config, resolve_config_path
    from hand_recon_ros.training.records import DataError
    from hand_recon_ros.training.trainer import train

    try:
        if args.max_steps is not None and args.max_steps < 1:
            raise ConfigError(f"--max-steps: must be >= 1, got {args.max_steps}")
        data = {key: value for key, value in (("path", args.data), ("images_dir", args.images_dir))
                if value is not None}
        config = load_config(args.config, data_overrides=data)
        if args.max_steps is not None:
            config.max_steps = args.max_steps
        config.validate()
        device = _device(args.device)
        run_dir = Path(args.out) if args.out else Path("runs") / resolve_config_path(args.config).stem
    except (ConfigError, ValueError) as exc:  # NetworkConfigError is a ConfigError
        print(f"hand-recon train: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        result = train(config, run_dir, device=device, resume=args.resume, quiet=args.quiet)
    except ConfigError as exc:
        print(f"hand-recon train: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (DataError, CheckpointError, FloatingPointError, OSError) as exc:
        print(f"hand-recon train: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if os.environ.get("RANK", "0") != "0":
        return EXIT_OK
    print(f"step {result.step}: loss {result.loss:.5g}; checkpoint {result.checkpoint}"
          + (f"; held-back 2D error {result.val_error_2d_px:.2f} px" if result.val_error_2d_px == result.val_error_2d_px
             else ""))
    return EXIT_OK
