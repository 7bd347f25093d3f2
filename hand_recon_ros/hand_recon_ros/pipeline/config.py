"""Settings of the ROS-free hand pipeline (one dataclass shared by the CLI, the benchmark and the ROS node)."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

MODES: tuple[str, ...] = ("image", "video")
MODEL_VARIANTS: tuple[str, ...] = ("full", "lite")
PRECISIONS: tuple[str, ...] = ("auto", "fp16", "fp32", "int8")
# "landmarks": MediaPipe landmark network per hand (default); "learned": the two-hand network of `hand-recon export`.
RECONSTRUCTORS: tuple[str, ...] = ("landmarks", "learned")
HAND_LENGTH_RANGE_M = (0.10, 0.30)  # plausible hand lengths, wrist to middle fingertip (children to large adults)
# Fields that may change while the pipeline runs (HandPipeline.update); the rest need a new pipeline.
LIVE_FIELDS: frozenset[str] = frozenset(
    {"min_detection_score", "min_presence_score", "max_hands", "mesh", "smoothing", "mirrored", "mode",
     "roi_proposals", "proposal_interval_frames", "proposal_source", "proposal_crops"}
)
# Where ROI proposals come from (pipeline/roi_proposals.py): "palm" (default) = weak palm-detector boxes on a
# normalised look at the frame and two tiles (3 palm calls), proposal_crops landmark crops judged (~4 crops in all);
# "grid" = the generic ~37-crop grid. Same hands found on every set of benchmarks/bench_proposals.py, ~4x faster
# (docs/pipeline.md).
PROPOSAL_SOURCES: tuple[str, ...] = ("palm", "grid")


class ConfigError(ValueError):
    """A pipeline setting has an invalid value; the message names the field and the value."""


@dataclass
class PipelineConfig:
    """Everything that selects models, thresholds and behaviour of HandPipeline."""

    backend: str = "litert"
    model_variant: str = "full"
    models_dir: str | None = None  # model files (None: $HAND_RECON_CACHE_DIR, else ~/.cache/hand_recon_ros)
    max_hands: int = 2
    min_detection_score: float = 0.5
    min_presence_score: float = 0.5
    mode: str = "video"  # "image": detector every frame; "video": tracking
    mirrored: bool = False
    refine_3d: bool = True
    mesh: bool = False
    mano_dir: str | None = None
    smoothing: float = 0.5  # 0 = none .. 1 = heavy (used by the 3D stage)
    intra_op_threads: int = 0
    # OpenCV's own thread count, set process-wide by HandPipeline (0 = leave OpenCV's setting alone). 1: the
    # pipeline's OpenCV calls are small (a resize, two warps), and OpenCV's idle workers spin-wait ~0.8 ms after each
    # call, taking a core from the network that runs next (docs/pipeline.md).
    opencv_threads: int = 1
    # When the palm detector finds fewer than max_hands hands: search generic ROI proposals with the landmark
    # network (pipeline/roi_proposals.py); in video mode only while a track is missing, at most every N frames.
    roi_proposals: bool = True
    proposal_interval_frames: int = 30
    proposal_source: str = "palm"  # PROPOSAL_SOURCES
    proposal_crops: int = 2  # landmark crops judged in the first proposal pass (source "palm" only; >= 1)
    # auto (each backend's default: fp16 on TensorRT and ORT's TensorRT provider, fp32 elsewhere) | fp32 | fp16 |
    # int8 (needs calib_dir); every backend honours it (precision graphs, engines/precision_graphs.py)
    precision: str = "auto"
    calib_dir: str | None = None  # INT8 calibration images (precision int8)
    engine_cache_dir: str | None = None  # built TensorRT engines (None: the backend's default beside the ONNX)
    reconstructor: str = "landmarks"  # RECONSTRUCTORS
    learned_model: str | None = None  # ONNX file from `hand-recon export` (reconstructor "learned")
    hand_length_m: float = 0.0  # the user's hand, wrist to middle fingertip (m); 0 = the adult prior

    def validate(self) -> None:
        """Raise ConfigError naming the first field whose value cannot be used."""
        if not isinstance(self.backend, str) or not self.backend:
            raise ConfigError(f"backend must be a non-empty string, got {self.backend!r}")
        if self.model_variant not in MODEL_VARIANTS:
            raise ConfigError(f"model_variant must be one of {MODEL_VARIANTS}, got {self.model_variant!r}")
        if self.mode not in MODES:
            raise ConfigError(f"mode must be one of {MODES}, got {self.mode!r}")
        if isinstance(self.max_hands, bool) or not isinstance(self.max_hands, int) or self.max_hands < 1:
            raise ConfigError(f"max_hands must be an integer >= 1, got {self.max_hands!r}")
        for name in ("min_detection_score", "min_presence_score", "smoothing"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ConfigError(f"{name} must be a number in [0, 1], got {value!r}")
            if not 0.0 <= float(value) <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1], got {value!r}")
        for name in ("mirrored", "refine_3d", "mesh", "roi_proposals"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if (
            isinstance(self.intra_op_threads, bool)
            or not isinstance(self.intra_op_threads, int)
            or self.intra_op_threads < 0
        ):
            raise ConfigError(f"intra_op_threads must be an integer >= 0 (0 = runtime default), got "
                              f"{self.intra_op_threads!r}")
        if isinstance(self.opencv_threads, bool) or not isinstance(self.opencv_threads, int) or self.opencv_threads < 0:
            raise ConfigError(f"opencv_threads must be an integer >= 0 (0 = leave OpenCV's setting), got "
                              f"{self.opencv_threads!r}")
        interval = self.proposal_interval_frames
        if isinstance(interval, bool) or not isinstance(interval, int) or interval < 1:
            raise ConfigError(f"proposal_interval_frames must be an integer >= 1, got {interval!r}")
        if self.proposal_source not in PROPOSAL_SOURCES:
            raise ConfigError(f"proposal_source must be one of {PROPOSAL_SOURCES}, got {self.proposal_source!r}")
        crops = self.proposal_crops
        if isinstance(crops, bool) or not isinstance(crops, int) or crops < 1:
            raise ConfigError(f"proposal_crops must be an integer >= 1, got {crops!r}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.precision == "int8" and not self.calib_dir:
            raise ConfigError("precision int8 needs calib_dir (a folder of representative images to calibrate on)")
        if self.calib_dir is not None and (not isinstance(self.calib_dir, str) or not self.calib_dir):
            raise ConfigError(f"calib_dir must be a non-empty path or None, got {self.calib_dir!r}")
        if (isinstance(self.hand_length_m, bool) or not isinstance(self.hand_length_m, (int, float))
                or not math.isfinite(self.hand_length_m)
                or not (self.hand_length_m == 0 or HAND_LENGTH_RANGE_M[0] <= self.hand_length_m
                        <= HAND_LENGTH_RANGE_M[1])):
            raise ConfigError(f"hand_length_m must be 0 (adult prior) or within {HAND_LENGTH_RANGE_M} m, got "
                              f"{self.hand_length_m!r}")
        if self.engine_cache_dir is not None and (not isinstance(self.engine_cache_dir, str)
                                                  or not self.engine_cache_dir):
            raise ConfigError(f"engine_cache_dir must be a non-empty path or None, got {self.engine_cache_dir!r}")
        if self.reconstructor not in RECONSTRUCTORS:
            raise ConfigError(f"reconstructor must be one of {RECONSTRUCTORS}, got {self.reconstructor!r}")
        if self.reconstructor == "learned" and not self.learned_model:
            raise ConfigError("reconstructor 'learned' needs learned_model (an ONNX file from `hand-recon export`)")
        if self.learned_model is not None and (not isinstance(self.learned_model, str) or not self.learned_model):
            raise ConfigError(f"learned_model must be a non-empty path or None, got {self.learned_model!r}")

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """Names of every setting (for parameter declarations and CLI mapping)."""
        return tuple(f.name for f in fields(cls))
