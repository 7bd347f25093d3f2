"""`hand-recon run`: images, folders, videos (and rosbag2 recordings) → one JSON line per frame, overlays, meshes."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from hand_recon_ros.commands.cache_args import add_engine_cache_dir_argument, add_models_dir_argument
from hand_recon_ros.commands.precision_args import add_precision_arguments, precision_problem
from hand_recon_ros.engines.base import BackendError, BackendUnavailableError
from hand_recon_ros.engines.registry import canonical_backend_name
from hand_recon_ros.io.image_source import Frame, count_frames, expand_inputs, is_bag_path, is_video_path, iter_frames
from hand_recon_ros.io.intrinsics_input import (
    intrinsics_for,
    load_camera_info_yaml,
    load_intrinsics_map,
    parse_intrinsics_arg,
)
from hand_recon_ros.io.jsonl_writer import JsonlWriter, error_to_dict, frame_to_dict
from hand_recon_ros.pipeline import one_euro_filter as one_euro
from hand_recon_ros.pipeline.config import MODEL_VARIANTS, MODES, PROPOSAL_SOURCES, RECONSTRUCTORS, PipelineConfig
from hand_recon_ros.pipeline.teleop_signals import TeleopSignals
from hand_recon_ros.pipeline.types import CameraIntrinsics, FrameResult, IntrinsicsError

log = logging.getLogger("hand_recon_ros.run")

EXIT_OK = 0
EXIT_NOTHING_PROCESSED = 1
EXIT_USAGE = 2


def add_pipeline_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by `run` and `bench`: backend, model variant, mode, hands, mirroring, model files."""
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders, video files, rosbag2")
    parser.add_argument("--mode", choices=MODES, default=None,
                        help="image: detector on every frame; video: tracking (default: video for videos/bags, "
                             "image for still images)")
    parser.add_argument("--backend", default=PipelineConfig.backend, help="inference backend (default %(default)s)")
    parser.add_argument("--variant", choices=MODEL_VARIANTS, default="full", help="model variant")
    parser.add_argument("--max-hands", type=int, default=2, help="most hands per frame (default %(default)s)")
    parser.add_argument("--mirrored", action="store_true", help="input is a mirrored (selfie) image")
    parser.add_argument("--threads", type=int, default=0, help="inference threads (0 = runtime default)")
    parser.add_argument("--no-roi-proposals", dest="roi_proposals", action="store_false",
                        help="do not search ROI proposals for hands the palm detector misses (faster, fewer hands)")
    parser.add_argument("--proposal-source", choices=PROPOSAL_SOURCES, default=PipelineConfig.proposal_source,
                        help="ROI proposals from the palm detector's normalised second look (default) or the "
                             "generic grid (~4x slower)")
    add_models_dir_argument(parser)
    add_engine_cache_dir_argument(parser)
    parser.add_argument("--palm-onnx", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--landmark-onnx", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--topic", default=None, help="image topic to read from rosbag2 inputs")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_precision_arguments(parser)
    add_reconstructor_arguments(parser)


def add_reconstructor_arguments(parser: argparse.ArgumentParser) -> None:
    """--reconstructor / --learned-model (run, bench, eval)."""
    parser.add_argument("--reconstructor", choices=RECONSTRUCTORS, default="landmarks",
                        help="2D+3D per hand: the MediaPipe landmark network (default) or the learned two-hand "
                             "network (needs --learned-model)")
    parser.add_argument("--learned-model", default=None, metavar="MODEL.onnx",
                        help="learned two-hand model from `hand-recon export` (for --reconstructor learned)")


def reconstructor_problem(args: argparse.Namespace) -> str | None:
    """A message when --reconstructor/--learned-model do not fit together or the model file is missing."""
    if args.reconstructor == "learned" and not args.learned_model:
        return "--reconstructor learned needs --learned-model MODEL.onnx (from `hand-recon export`)"
    if args.learned_model and args.reconstructor != "learned":
        return "--learned-model is only used with --reconstructor learned"
    if args.learned_model and not Path(args.learned_model).is_file():
        return f"--learned-model {args.learned_model} does not exist"
    return None


def register(subparsers: Any) -> None:
    """Add the `run` sub-command."""
    parser = subparsers.add_parser("run", help="find hands in images/videos, write JSONL (+ overlays)",
                                   description=__doc__)
    add_pipeline_arguments(parser)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--intrinsics", default=None, metavar="FX,FY,CX,CY", help="pixels, for every input")
    group.add_argument("--intrinsics-file", default=None, metavar="MAP.json",
                       help="JSON object: image file name -> [fx, fy, cx, cy]")
    group.add_argument("--camera-info", default=None, metavar="FILE.yaml", help="ROS CameraInfo YAML")
    parser.add_argument("--output", "-o", default=None, metavar="OUT.jsonl", help="JSONL file (default: stdout)")
    parser.add_argument("--overlay-dir", default=None, help="write an overlay image per frame here")
    parser.add_argument("--mesh-dir", default=None, help="write hand meshes (OBJ) here when the 3D stage makes them")
    parser.add_argument("--depth", default=None, metavar="FILE|DIR|VIDEO",
                        help="depth registered to the colour inputs: one file for every frame, a folder paired by "
                             "file name or order, or a video paired frame by frame; places hands by depth")
    parser.add_argument("--depth-scale", type=float, default=None, metavar="M_PER_UNIT",
                        help="metres per depth unit (default: 0.001 for 16-bit depth, 1 for float; required for "
                             "8-bit depth)")
    parser.add_argument("--hand-length", type=float, default=0.0, metavar="M",
                        help="the user's hand length, wrist to middle fingertip, metres (0 = adult prior); "
                             "monocular depth scales with it; given, it is used as it is (not measured with --depth)")
    add_one_euro_arguments(parser)
    parser.set_defaults(func=run_command)


def add_one_euro_arguments(parser: argparse.ArgumentParser) -> None:
    """--one-euro-* options: the node's one_euro_* parameters, with the same defaults and ranges."""
    ranges = one_euro.SETTING_RANGES
    parser.add_argument("--one-euro-min-cutoff", type=float, default=one_euro.DEFAULT_MIN_CUTOFF_HZ, metavar="HZ",
                        help="One-Euro filter on joints_3d and wrist_pose within a video or bag: cut-off at rest "
                             f"(Hz, {ranges['min_cutoff_hz'][0]:g}-{ranges['min_cutoff_hz'][1]:g}; default "
                             "%(default)s = off)")
    parser.add_argument("--one-euro-beta", type=float, default=one_euro.DEFAULT_BETA, metavar="HZ_PER_M_S",
                        help="One-Euro filter: cut-off rise with speed (Hz per m/s, "
                             f"{ranges['beta'][0]:g}-{ranges['beta'][1]:g}; default %(default)s)")
    parser.add_argument("--one-euro-d-cutoff", type=float, default=one_euro.DEFAULT_D_CUTOFF_HZ, metavar="HZ",
                        help="One-Euro filter: cut-off of its speed estimate (Hz, "
                             f"{ranges['d_cutoff_hz'][0]:g}-{ranges['d_cutoff_hz'][1]:g}; default %(default)s)")


def one_euro_settings(args: argparse.Namespace) -> one_euro.OneEuroSettings:
    """The One-Euro settings of the --one-euro-* options (ValueError naming the one out of range)."""
    return one_euro.checked_settings(args.one_euro_min_cutoff, args.one_euro_beta, args.one_euro_d_cutoff)


def build_pipeline(args: argparse.Namespace, mesh: bool = False) -> Any:
    """HandPipeline from the shared options (ValueError/RuntimeError subclasses name the problem)."""
    from hand_recon_ros.pipeline.hand_pipeline import HandPipeline, backend_options

    config = PipelineConfig(backend=args.backend, model_variant=args.variant, models_dir=args.models_dir,
                            engine_cache_dir=getattr(args, "engine_cache_dir", None),
                            max_hands=args.max_hands, mirrored=args.mirrored, mesh=mesh,
                            intra_op_threads=args.threads, mode=args.mode or "image",
                            roi_proposals=getattr(args, "roi_proposals", True),
                            proposal_source=getattr(args, "proposal_source", PipelineConfig.proposal_source),
                            precision=args.precision, calib_dir=args.calib_dir,
                            reconstructor=args.reconstructor, learned_model=args.learned_model,
                            hand_length_m=float(getattr(args, "hand_length", 0.0) or 0.0))
    config.validate()
    palm = landmark = None
    if args.palm_onnx or args.landmark_onnx:
        from hand_recon_ros.engines.registry import create_backend

        if not (args.palm_onnx and args.landmark_onnx):
            raise ValueError("--palm-onnx and --landmark-onnx must be given together")
        options = backend_options(config)
        palm = create_backend(config.backend, args.palm_onnx, **options)
        landmark = create_backend(config.backend, args.landmark_onnx, **options)
    return HandPipeline(config, palm_backend=palm, landmark_backend=landmark)


def default_mode(source: str) -> str:
    """Tracking for videos, cameras and bags; independent frames for still images."""
    path = Path(source)
    return "video" if is_video_path(path) or is_bag_path(path) else "image"


class IntrinsicsSource:
    """Intrinsics per frame from the CLI options; None means 'assume them' (no option, or no map entry)."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.numbers = parse_intrinsics_arg(args.intrinsics) if args.intrinsics else None
        self.mapping = load_intrinsics_map(args.intrinsics_file) if args.intrinsics_file else None
        self.camera = load_camera_info_yaml(args.camera_info) if args.camera_info else None
        self._warned: set[str] = set()

    def for_frame(self, source: str, width: int, height: int) -> CameraIntrinsics | None:
        """The intrinsics to use for this frame (IntrinsicsError when the camera info does not fit it)."""
        if self.numbers is not None:
            return intrinsics_for(self.numbers, width, height)
        if self.camera is not None:
            if (self.camera.width, self.camera.height) != (width, height):
                raise IntrinsicsError(f"camera info is for {self.camera.width}x{self.camera.height}, "
                                      f"{source} is {width}x{height}")
            return self.camera
        if self.mapping is not None:
            name = Path(source).name
            if name in self.mapping:
                return intrinsics_for(self.mapping[name], width, height)
            if name not in self._warned:
                self._warned.add(name)
                log.warning("%s: not in the intrinsics file; assuming intrinsics", name)
        return None


def _progress(total: int | None, quiet: bool) -> Any:
    if quiet or not sys.stderr.isatty():
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit="frame", file=sys.stderr, dynamic_ncols=True)


def _overlay_name(frame: Frame, video: bool, stem: str) -> str:
    return f"{stem}_{frame.index:06d}.jpg" if video else f"{stem}.jpg"


def _unique_stem(source: str, stems: dict[str, str]) -> str:
    """The output file stem of ``source``, made unique among ``stems`` (a/x.jpg and b/x.png: x, x_2) and recorded."""
    if source not in stems:
        base = Path(source).stem or "frame"
        stem, k = base, 2
        while stem in stems.values():
            stem, k = f"{base}_{k}", k + 1
        stems[source] = stem
    return stems[source]


def write_meshes(mesh_dir: Path, base: str, result: FrameResult) -> int:
    """Write each hand's mesh as OBJ (metres, camera optical frame); returns how many were written."""
    from hand_recon_ros.io.mesh_writer import write_mesh

    written = 0
    for i, hand in enumerate(result.hands):
        if hand.mesh is not None:
            write_mesh(mesh_dir / f"{base}_{i}_{hand.side}.obj", hand.mesh)
            written += 1
    return written


def run_command(args: argparse.Namespace) -> int:
    """Process every input; exit 0 when at least one frame was processed, 1 when none, 2 for bad options."""
    try:
        intrinsics = IntrinsicsSource(args)
    except (IntrinsicsError, OSError) as exc:
        log.error("%s", exc)
        return EXIT_USAGE
    if args.max_hands < 1:
        log.error("--max-hands must be >= 1, got %d", args.max_hands)
        return EXIT_USAGE
    if args.threads < 0:
        log.error("--threads must be >= 0 (0 = runtime default), got %d", args.threads)
        return EXIT_USAGE
    try:
        canonical_backend_name(args.backend)
    except BackendError as exc:
        log.error("%s", exc)
        return EXIT_USAGE
    problem = precision_problem(args) or reconstructor_problem(args)
    if problem:
        log.error("%s", problem)
        return EXIT_USAGE
    try:
        PipelineConfig(hand_length_m=float(getattr(args, "hand_length", 0.0) or 0.0)).validate()
        signals = TeleopSignals(one_euro_settings(args))
        depth = _open_depth(args)
    except ValueError as exc:
        log.error("%s", exc)
        return EXIT_USAGE
    overlay_dir = Path(args.overlay_dir) if args.overlay_dir else None
    mesh_dir = Path(args.mesh_dir) if args.mesh_dir else None
    for folder in (overlay_dir, mesh_dir):
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
    writer = JsonlWriter(args.output) if args.output else JsonlWriter(sys.stdout)
    with writer:
        try:
            pipeline = build_pipeline(args, mesh=mesh_dir is not None)
        except BackendUnavailableError as exc:  # the runtime is missing here: an option problem, not a data one
            log.error("%s", exc)
            return EXIT_USAGE
        except Exception as exc:  # noqa: BLE001 - model/backend failures of any kind end the run with one message
            message = f"cannot load the models: {exc}"
            log.error("%s", message)
            for path in expand_inputs(args.inputs):
                writer.write(error_to_dict(str(path), 0, message))
            return EXIT_NOTHING_PROCESSED
        log.info("backend: %s", pipeline.backend_description)
        processed = failed = 0
        bar = _progress(count_frames(expand_inputs(args.inputs)), args.quiet)
        current_source = None
        output_stems: dict[str, str] = {}  # source -> overlay/mesh file stem, unique within this run
        depth_log = _DepthLog()
        position = 0
        try:
            for frame in iter_frames(args.inputs, args.topic):
                if bar is not None:
                    bar.update(1)
                if frame.source != current_source:
                    current_source = frame.source
                    pipeline.update(mode=args.mode or default_mode(frame.source))
                    pipeline.reset()
                    signals.reset()
                if frame.image is None:
                    failed += 1
                    log.error("%s", frame.error)
                    writer.write(error_to_dict(frame.source, frame.index, frame.error or "unknown error"))
                    continue
                height, width = frame.image.shape[:2]
                depth_m, depth_problem = depth.for_frame(frame.source, position) if depth else (None, None)
                position += 1
                try:
                    result = pipeline.process(frame.image, intrinsics.for_frame(frame.source, width, height),
                                              frame.timestamp_s, depth_m=depth_m)
                except (ValueError, RuntimeError) as exc:
                    failed += 1
                    log.error("%s frame %d: %s", frame.source, frame.index, exc)
                    writer.write(error_to_dict(frame.source, frame.index, str(exc)))
                    continue
                processed += 1
                # as in the node: One-Euro filter (when on) by the frame's stamp (none: not filtered), grasp signals
                signals.apply(result, frame.timestamp_s)
                if depth is not None:
                    depth_log.record(frame.source, frame.index, depth_problem or result.depth)
                    if depth_problem:
                        result.depth = f"refused: {depth_problem}"
                writer.write(frame_to_dict(frame.source, frame.index, result))
                video = pipeline.config.mode == "video"
                name = _overlay_name(frame, video, _unique_stem(frame.source, output_stems))
                if overlay_dir is not None:
                    from hand_recon_ros.io.overlay import write_overlay

                    write_overlay(str(overlay_dir / name), frame.image, result)
                if mesh_dir is not None:
                    write_meshes(mesh_dir, Path(name).stem, result)
        finally:
            if bar is not None:
                bar.close()
            pipeline.close()
            if depth is not None:
                depth.close()
    log.info("processed %d frame(s), %d failed", processed, failed)
    if depth is not None:
        depth_log.summary()
    return EXIT_OK if processed > 0 else EXIT_NOTHING_PROCESSED


def _open_depth(args: argparse.Namespace) -> Any:
    """The run's DepthSource, or None without --depth (DepthError, a ValueError, for a bad --depth)."""
    if getattr(args, "depth", None) is None:
        if getattr(args, "depth_scale", None) is not None:
            raise ValueError("--depth-scale needs --depth")
        return None
    from hand_recon_ros.io.depth_source import DepthSource

    return DepthSource(args.depth, args.depth_scale)


class _DepthLog:
    """Counts frames placed with and without depth; each distinct reason for falling back is logged once."""

    def __init__(self) -> None:
        self.used = 0
        self.fallbacks: dict[str, int] = {}

    def record(self, source: str, index: int, status: str) -> None:
        """One processed frame's depth status ("used", "none" or a refusal)."""
        if status == "used":
            self.used += 1
            return
        reason = status.removeprefix("refused: ")
        if reason not in self.fallbacks:
            log.warning("%s frame %d: depth not used (%s); placing hands monocularly", source, index, reason)
        self.fallbacks[reason] = self.fallbacks.get(reason, 0) + 1

    def summary(self) -> None:
        """Log how many frames used depth and how many fell back (per reason)."""
        fell_back = sum(self.fallbacks.values())
        log.info("depth used on %d frame(s), monocular fallback on %d%s", self.used, fell_back,
                 "".join(f"; {n}x {reason}" for reason, n in self.fallbacks.items()))
