"""`hand-recon build-engine`: prebuild TensorRT engines for both networks (e.g. while building a Jetson image).

Engines land in the engine cache under keys that the backends check at load, so a node started later on the
same machine loads them instead of building for minutes: the options come from the same PipelineConfig →
``backend_options`` path the node uses, and the key from ``engine_key.engine_key_for_options``. ``--print-key``
prints each network's key and engine file without building. Exit status: 0 built or up to date, 1 a build or
model error, 2 TensorRT (or the ORT TensorRT provider) not available here, or a bad option.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

from hand_recon_ros.commands.cache_args import add_engine_cache_dir_argument, add_models_dir_argument
from hand_recon_ros.commands.precision_args import add_precision_arguments, precision_problem
from hand_recon_ros.engines.base import BackendError, BackendUnavailableError
from hand_recon_ros.engines.engine_cache import DEFAULT_WORKSPACE_MB

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
    add_precision_arguments(parser)
    parser.add_argument("--max-hands", type=int, default=2,
                        help="the node's/pipeline's max_hands: decides the batch profile (default: 2)")
    parser.add_argument("--max-batch", type=int, default=None,
                        help="override the batch profile's largest batch (the node then does NOT find the engine "
                             "unless it computes the same; default: as the pipeline computes it)")
    parser.add_argument("--workspace-mb", type=int, default=None,
                        help=f"builder workspace limit in MiB (default: {DEFAULT_WORKSPACE_MB}, as the node uses)")
    parser.add_argument("--print-key", action="store_true",
                        help="print each network's engine key and file name, build nothing")
    add_models_dir_argument(parser, deprecated_cache_dir=True,
                            help_text="folder of the model files (engines go to its engines/ subfolder unless "
                                      "--engine-cache-dir is given)")
    add_engine_cache_dir_argument(parser)
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
    if args.max_hands < 1:
        return f"--max-hands must be >= 1, got {args.max_hands}"
    if args.max_batch is not None and args.max_batch < 1:
        return f"--max-batch must be >= 1, got {args.max_batch}"
    if args.workspace_mb is not None and args.workspace_mb < 1:
        return f"--workspace-mb must be >= 1, got {args.workspace_mb}"
    if args.model is not None:
        from hand_recon_ros.network.exported_model import LearnedModelError, read_network_config

        try:
            read_network_config(args.model)
        except LearnedModelError as exc:
            return str(exc)
    if args.print_key and args.backend != "tensorrt":
        return "--print-key needs --backend tensorrt (ONNX Runtime keys its own engine cache)"
    return precision_problem(args)


def build_options(args: argparse.Namespace, network: str) -> dict[str, Any]:
    """Backend options for ``network`` exactly as the pipeline/node computes them from the same settings."""
    from hand_recon_ros.pipeline.config import PipelineConfig
    from hand_recon_ros.pipeline.hand_pipeline import backend_options

    config = PipelineConfig(backend=args.backend, model_variant=args.variant,
                            models_dir=args.models_dir, engine_cache_dir=args.engine_cache_dir,
                            max_hands=args.max_hands, precision=args.precision,
                            calib_dir=None if args.calib_dir is None else str(args.calib_dir))
    config.validate()
    options = backend_options(config, network)
    if args.max_batch is not None:
        options["max_batch"] = args.max_batch
        options["opt_batch"] = min(options["opt_batch"], args.max_batch)
    if args.workspace_mb is not None:
        options["workspace_mb"] = args.workspace_mb
    return options


def print_keys(args: argparse.Namespace, networks: list[tuple[str, str, Path]]) -> int:
    """One line per network: label, key digest, engine file (what the backend would load or build)."""
    from hand_recon_ros.engines import engine_key as ek
    from hand_recon_ros.engines.tensorrt_backend import import_tensorrt

    try:
        trt = import_tensorrt()
        device = ek.live_device_identity(int(build_options(args, "palm").get("device_id", 0)))
    except BackendUnavailableError as exc:
        print(f"build-engine: --print-key: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    for label, network, onnx_path in networks:
        try:
            key, path = ek.engine_path_for_options(onnx_path, build_options(args, network), str(trt.__version__),
                                                   device)
        except BackendError as exc:
            print(f"build-engine: {label}: {exc}", file=sys.stderr)
            return EXIT_FAILED
        print(f"{label}: key {key.digest} engine {path}")
    return EXIT_OK


def run(args: argparse.Namespace) -> int:
    """Build (or confirm up to date) the engines of both networks; see the module docstring for exit codes."""
    problem = _check_args(args)
    if problem:
        print(f"build-engine: {problem}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    reason = None if args.print_key else _unavailable_reason(args.backend)
    if reason is not None:
        what = "TensorRT" if args.backend == "tensorrt" else "ONNX Runtime's TensorRT provider"
        print(f"build-engine: {what} not available: {reason}. Engines can only be built on a machine with an "
              "NVIDIA GPU and TensorRT 10.x/11.x (pip install 'tensorrt>=10,<12', or JetPack 6 on Jetson).",
              file=sys.stderr)
        return EXIT_UNAVAILABLE

    from hand_recon_ros.engines.registry import create_backend
    from hand_recon_ros.models.model_files import ModelFileError, ensure_models

    if args.model is not None:
        networks = [("learned", "learned", args.model)]
    else:
        try:
            paths = ensure_models(args.variant, args.models_dir, quiet=False)
        except (ModelFileError, ValueError) as exc:
            print(f"build-engine: {exc}", file=sys.stderr)
            return EXIT_FAILED
        networks = [("palm", "palm", paths.palm_onnx), ("landmark", "landmarks", paths.landmark_onnx)]
    if args.print_key:
        return print_keys(args, networks)
    status = EXIT_OK
    for label, network, onnx_path in networks:
        # The node's options (engines/ beside each ONNX file unless engine_cache_dir is set): same key, same file.
        options = build_options(args, network)
        if args.backend == "tensorrt":
            options.update(rebuild=args.rebuild, warmup_runs=1)
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
