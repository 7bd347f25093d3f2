"""`--precision` and `--calib-dir`, shared by run, bench, eval and build-engine (one meaning, one check)."""

from __future__ import annotations

import argparse
from pathlib import Path

from hand_recon_ros.engines.precision_graphs import PRECISION_AUTO, PRECISION_CHOICES


def add_precision_arguments(parser: argparse.ArgumentParser, default: str = PRECISION_AUTO) -> None:
    """Add ``--precision {auto,fp32,fp16,int8}`` and ``--calib-dir DIR``."""
    parser.add_argument("--precision", choices=PRECISION_CHOICES, default=default,
                        help="network precision: auto = fp16 on TensorRT, fp32 on CPU/CUDA; int8 needs --calib-dir "
                             "(default %(default)s)")
    parser.add_argument("--calib-dir", default=None, metavar="DIR",
                        help="folder of representative images to calibrate INT8 on (needed with --precision int8)")


def precision_problem(args: argparse.Namespace) -> str | None:
    """Why ``--precision``/``--calib-dir`` cannot work (exit 2), or None."""
    if args.precision == "int8" and not args.calib_dir:
        return ("--precision int8 needs --calib-dir DIR: a folder of representative images to calibrate the INT8 "
                "graph on (it is cached under the images' digest)")
    if args.calib_dir is not None and not Path(args.calib_dir).is_dir():
        return f"--calib-dir {args.calib_dir} is not a folder"
    return None
