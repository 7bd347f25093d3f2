"""`hand-recon build-engine`: prebuild TensorRT engines for both networks (e.g. while building a Jetson image).

Engines land in the engine cache under keys that the backends check at load, so a node started later on the
same machine loads them instead of building for minutes. Exit status: 0 built or up to date, 1 a build or
model error, 2 TensorRT (or the ORT TensorRT provider) not available here.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

from hand_recon_ros.engines.base import BackendError, BackendUnavailableError
from hand_recon_ros.engines.engine_cache import DEFAULT_MAX_BATCH, DEFAULT_WORKSPACE_MB, PRECISIONS

_LOG = logging.getLogger(__name__)

BUILD_BACKENDS: tuple[str, ...] = ("tensorrt", "onnxruntime-tensorrt")
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_UNAVAILABLE = 2


def register(subparsers: Any) -> None:
    """Add the ``build-engine`` sub-command."""
    parser = subparsers.add_parser(
        "build-engine",
        help="prebuild TensorRT engines for the palm and landmark networks",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("--backend", choices=BUILD_BACKENDS, default="tensorrt",
                        help="engine builder (default: tensorrt)")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp16", help="engine precision (default: fp16)")
    parser.add_argument("--calib-dir", type=Path, default=None,
                        help="folder of representative images for INT8 calibration (needed with int8)")
    parser.add_argument("--max-batch", type=int, default=DEFAULT_MAX_BATCH,
                        help=f"most hands per landmark call (default: {DEFAULT_MAX_BATCH})")
    parser.add_argument("--workspace-mb", type=int, default=DEFAULT_WORKSPACE_MB,
                        help=f"builder workspace limit in MiB (default: {DEFAULT_WORKSPACE_MB})")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="model cache folder (engines go to its engines/ subfolder)")
    parser.add_argument("--variant", choices=("full", "lite"), default="full", help="model variant (default: full)")
    parser.add_argument("--rebuild", action="store_true", help="build even when a matching engine is cached")
    parser.add_argument("--model", type=Path, default=None, metavar="MODEL.onnx",
                        help="build for this learned model (from `hand-recon export`) instead of the palm and "
                             "landmark networks; the engine lands in engines/ beside it")
    parser.set_defaults(func=run)


def _unavailable_reason(backend: str) -> str | None:
    from hand_recon_ros.engines.auto_select import probe_ort_provider, probe_tensorrt

    if backend == "tensorrt":
        return probe_tensorrt()
    return probe_ort_provider("TensorrtExecutionProvider")()


def _check_args(args: argparse.Namespace) -> str | None:
    if args.max_batch < 1:
        return f"--max-batch must be >= 1, got {args.max_batch}"
    if args.workspace_mb < 1:
        return f"--workspace-mb must be >= 1, got {args.workspace_mb}"
    if args.model is not None:
        from hand_recon_ros.network.exported_model import LearnedModelError, read_network_config

        try:
            read_network_config(args.model)
        except LearnedModelError as exc:
            return str(exc)
    if args.precision == "int8":
        if args.backend != "tensorrt":
            return "--precision int8 needs --backend tensorrt"
        if args.calib_dir is None:
            return "--precision int8 needs --calib-dir DIR (a folder of representative images)"
        if not args.calib_dir.is_dir():
            return f"--calib-dir {args.calib_dir} is not a folder"
    return None


def run(args: argparse.Namespace) -> int:
    """Build (or confirm up to date) the engines of both networks; see the module docstring for exit codes."""
    problem = _check_args(args)
    if problem:
        print(f"build-engine: {problem}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    reason = _unavailable_reason(args.backend)
    if reason is not None:
        what = "TensorRT" if args.backend == "tensorrt" else "ONNX Runtime's TensorRT provider"
        print(f"build-engine: {what} not available: {reason}. Engines can only be built on a machine with an "
              "NVIDIA GPU and TensorRT 10 (pip install tensorrt-cu12, or JetPack on Jetson).", file=sys.stderr)
        return EXIT_UNAVAILABLE

    from hand_recon_ros.engines.registry import create_backend
    from hand_recon_ros.models.model_files import ModelFileError, ensure_models

    if args.model is not None:
        targets = [("learned", args.model)]
    else:
        try:
            paths = ensure_models(args.variant, args.cache_dir, quiet=False)
        except (ModelFileError, ValueError) as exc:
            print(f"build-engine: {exc}", file=sys.stderr)
            return EXIT_FAILED
        targets = [("palm", paths.palm_onnx), ("landmark", paths.landmark_onnx)]
    # No cache_dir option: the backends' own default (engines/ beside each ONNX file) is where a node or
    # `hand-recon run` pointed at the same model folder will look.
    options: dict[str, Any] = {"precision": args.precision, "max_batch": args.max_batch,
                               "workspace_mb": args.workspace_mb}
    if args.backend == "tensorrt":
        options.update(rebuild=args.rebuild, warmup_runs=1)
        if args.calib_dir is not None:
            options["calib_dir"] = str(args.calib_dir)
    status = EXIT_OK
    for label, onnx_path in targets:
        start = time.monotonic()
        try:
            with create_backend(args.backend, onnx_path, **options) as backend:
                built = getattr(backend, "built", None)
                verb = "built" if built else ("up to date" if built is False else "ready")
                print(f"{label}: {verb} in {time.monotonic() - start:.1f} s: {backend.describe()}")
        except BackendUnavailableError as exc:
            print(f"build-engine: {label}: not available: {exc}", file=sys.stderr)
            return EXIT_UNAVAILABLE
        except BackendError as exc:
            print(f"build-engine: {label}: {exc}", file=sys.stderr)
            status = EXIT_FAILED
    return status
