"""`hand-recon export CHECKPOINT -o MODEL.onnx`: the learned two-hand network to ONNX, parity-checked first.

The ONNX file is written only when ONNX Runtime's outputs match torch's within 1e-4 on a fixed input batch.
Exit status: 0 written, 1 the export or the parity check failed (or the checkpoint is corrupt), 2 bad options.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def register(subparsers: Any) -> None:
    """Add the ``export`` sub-command."""
    parser = subparsers.add_parser("export", help="export a learned-model checkpoint to ONNX (parity-checked)",
                                   description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", type=Path, metavar="CHECKPOINT", help="a .pt checkpoint from hand-recon train")
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="MODEL.onnx", help="ONNX file to write")
    parser.add_argument("--opset", type=int, default=None, help="ONNX opset (default 17; at least 17)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Load the checkpoint, export, check parity, write; see the module docstring for exit codes."""
    from hand_recon_ros.network.checkpoint import CheckpointError, load_model
    from hand_recon_ros.network.export import ONNX_OPSET, PARITY_TOLERANCE, ExportError, export_onnx

    opset = ONNX_OPSET if args.opset is None else args.opset
    if opset < ONNX_OPSET:
        print(f"export: --opset must be >= {ONNX_OPSET} (GridSample), got {opset}", file=sys.stderr)
        return EXIT_USAGE
    if not args.checkpoint.is_file():
        print(f"export: checkpoint {args.checkpoint} does not exist", file=sys.stderr)
        return EXIT_USAGE
    if args.output.suffix != ".onnx":
        print(f"export: --output must end in .onnx, got {args.output}", file=sys.stderr)
        return EXIT_USAGE
    start = time.monotonic()
    try:
        model, cfg = load_model(args.checkpoint, mesh=False)  # the pipeline uses joints; meshes come from the lifter
        diffs = export_onnx(model, args.output, opset)
    except (CheckpointError, ExportError, ValueError) as exc:
        print(f"export: {exc}", file=sys.stderr)
        return EXIT_FAILED
    worst = max(diffs.values())
    params = sum(p.numel() for p in model.parameters())
    print(f"wrote {args.output}: {cfg.backbone}, {cfg.input_size}x{cfg.input_size}, "
          f"{'residual' if cfg.residual else 'full'} mode, {params / 1e6:.2f} M parameters, opset {opset}; "
          f"ONNX Runtime vs torch max |diff| {worst:.2e} (limit {PARITY_TOLERANCE:g}) "
          f"in {time.monotonic() - start:.1f} s")
    return EXIT_OK
