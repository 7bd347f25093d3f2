"""`hand-recon models fetch|info`: download, verify and convert the palm/landmark networks; show what is cached."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hand_recon_ros.commands.cache_args import add_models_dir_argument
from hand_recon_ros.models import model_files as mf

VARIANT_CHOICES: tuple[str, ...] = (*mf.VARIANTS, "all")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``models`` with its ``fetch`` and ``info`` actions."""
    parser = subparsers.add_parser(
        "models",
        help="fetch/convert the hand networks, show the cache",
        description=f"MediaPipe palm and hand-landmark networks ({mf.MEDIAPIPE_REQUIREMENT}, Apache-2.0): "
        f"cached under ${mf.CACHE_ENV_VAR} or ${{XDG_CACHE_HOME:-~/.cache}}/{mf.CACHE_SUBDIR}.",
    )
    actions = parser.add_subparsers(dest="models_action", metavar="ACTION")
    for name, help_text in (
        ("fetch", "download the TFLite files (wheel only, never installed), verify sha256, convert to ONNX"),
        ("info", "paths, sizes, sha256 and ONNX input/output shapes of the cached files"),
    ):
        sub = actions.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("--variant", choices=VARIANT_CHOICES, default="all" if name == "info" else "full")
        add_models_dir_argument(sub, deprecated_cache_dir=True,
                                help_text="folder of the model files (overrides the env var)")
        if name == "fetch":
            sub.add_argument("--quiet", action="store_true", help="print nothing when all is cached and valid")
            sub.add_argument("--no-convert", action="store_true", help="only fetch and verify the TFLite files")
    parser.set_defaults(func=_run, models_parser=parser)


def _variants(choice: str) -> tuple[str, ...]:
    return mf.VARIANTS if choice == "all" else (choice,)


def _run(args: argparse.Namespace) -> int:
    action = getattr(args, "models_action", None)
    if action == "fetch":
        return _fetch(args)
    if action == "info":
        return _info(args)
    args.models_parser.print_help()
    return 2


def _fetch(args: argparse.Namespace) -> int:
    try:
        for variant in _variants(args.variant):
            paths = mf.ensure_models(variant, cache_dir=args.models_dir, convert=not args.no_convert, quiet=args.quiet)
            if not args.quiet:
                print(f"[{variant}]")
                for label, path in _labelled(paths):
                    print(f"  {label:16s} {path}")
    except mf.ModelFileError as exc:
        print(f"hand-recon models fetch: {exc}", file=sys.stderr)
        return 1
    return 0


def _labelled(paths: mf.ModelPaths) -> list[tuple[str, Path]]:
    return [
        ("palm tflite", paths.palm_tflite),
        ("landmark tflite", paths.landmark_tflite),
        ("palm onnx", paths.palm_onnx),
        ("landmark onnx", paths.landmark_onnx),
    ]


def _info(args: argparse.Namespace) -> int:
    cache = mf.model_cache_dir(args.models_dir)
    print(f"cache: {cache}  (source: {mf.MEDIAPIPE_REQUIREMENT} wheel, Apache-2.0)")
    missing = 0
    for variant in _variants(args.variant):
        print(f"[{variant}]")
        for kind in ("palm_detection", "hand_landmark"):
            spec = mf.TFLITE_FILES[f"{kind}_{variant}"]
            tflite_path = cache / spec.filename
            if not tflite_path.is_file():
                print(f"  {spec.filename}: MISSING (run 'hand-recon models fetch --variant {variant}')")
                missing += 1
                continue
            sha = mf.file_sha256(tflite_path)
            state = "ok" if sha == spec.sha256 else f"CORRUPT (expected {spec.sha256})"
            print(f"  {tflite_path}  {tflite_path.stat().st_size} B  sha256 {sha}  {state}")
            missing += state != "ok"
            mode = mf.PALM_BATCH_MODE if kind == "palm_detection" else mf.LANDMARK_BATCH_MODE
            onnx_path = mf.onnx_path_for(tflite_path, spec.sha256, mode)
            if not onnx_path.is_file():
                print(f"  {onnx_path.name}: not converted yet (run 'hand-recon models fetch --variant {variant}')")
                missing += 1
                continue
            from hand_recon_ros.models.onnx_export import onnx_io_summary

            try:
                summary = onnx_io_summary(onnx_path)
            except Exception as exc:  # noqa: BLE001 - any parse failure means the file is unusable
                print(f"  {onnx_path}  CORRUPT ({type(exc).__name__}: {exc}; run 'hand-recon models fetch "
                      f"--variant {variant}' to rebuild it)")
                missing += 1
                continue
            io = "; ".join(
                f"{'in' if group == 'inputs' else 'out'} {name} {shape}"
                for group in ("inputs", "outputs")
                for name, shape in summary[group]
            )
            print(f"  {onnx_path}  {onnx_path.stat().st_size} B  {io}")
    return 1 if missing else 0
