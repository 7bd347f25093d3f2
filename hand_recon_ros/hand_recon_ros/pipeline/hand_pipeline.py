"""HandPipeline: one RGB image in, every hand out (2D landmarks, sides, track ids, metric 3D). ROS-free.

Stages (timed in FrameResult.timing_ms): ``palm`` (letterbox + palm network + decode/NMS), ``landmarks``
(rotated crops + ONE batched landmark call + back-projection), ``proposals`` (only on frames where the
detector left a hand missing: generic ROI proposals judged by the landmark network, roi_proposals.py),
``tracking`` (de-duplication, ids, sides), ``lift`` (metric 3D), ``total``.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

import cv2
import numpy as np

from hand_recon_ros.engines.base import Backend
from hand_recon_ros.pipeline.anchors import PALM_INPUT_SIZE_PX
from hand_recon_ros.pipeline.config import LIVE_FIELDS, ConfigError, PipelineConfig
from hand_recon_ros.pipeline.landmark_estimator import LandmarkEstimator
from hand_recon_ros.pipeline.palm_detector import PalmDetector
from hand_recon_ros.pipeline.pnp_lift import Lifter, PnPLifter
from hand_recon_ros.pipeline.roi import landmarks_to_roi, palm_to_roi
from hand_recon_ros.pipeline.roi_proposals import MAX_PROPOSAL_BATCH, propose_hands
from hand_recon_ros.pipeline.tracker import Candidate, HandTracker, assign_sides
from hand_recon_ros.pipeline.types import CameraIntrinsics, FrameResult, HandDetection, IntrinsicsError, RotatedRect

log = logging.getLogger(__name__)

REFINE_MODULE = "hand_recon_ros.pipeline.refine_lift"
# Networks whose ONNX Runtime threads spin between operators during a Run (never after it: see
# onnxruntime_backend.py). Empty by default: in the node on a shared 2-core CPU, spinning the landmark session
# gave no better p50 and a worse p95 (29-37 vs 20-24 ms) in alternating A/B runs (docs/ros.md, Latency);
# flat-out offline runs (`hand-recon bench --mode video`) do gain from {"landmarks"}.
SPINNING_NETWORKS: frozenset[str] = frozenset()
NETWORKS: tuple[str, ...] = ("palm", "landmarks", "learned")
# LiteRT runs the original .tflite files only; the learned ONNX model runs here when the backend is litert.
LEARNED_ON_LITERT = "onnxruntime-cpu"


class ImageFormatError(ValueError):
    """The image handed to HandPipeline.process is not RGB uint8 (H, W, 3); the message says what it is."""


def check_image(image_rgb: Any) -> np.ndarray:
    """Return the image if it is a non-empty RGB uint8 (H, W, 3) array, else raise ImageFormatError."""
    if not isinstance(image_rgb, np.ndarray):
        raise ImageFormatError(f"image must be a numpy array, got {type(image_rgb).__name__}")
    if image_rgb.dtype != np.uint8:
        raise ImageFormatError(f"image must be uint8 RGB, got dtype {image_rgb.dtype} (convert it first)")
    if image_rgb.ndim != 3 or image_rgb.shape[2] != 3 or image_rgb.shape[0] < 2 or image_rgb.shape[1] < 2:
        raise ImageFormatError(f"image must have shape (H, W, 3) with H, W >= 2, got {image_rgb.shape}")
    return image_rgb


def make_lifter(config: PipelineConfig) -> tuple[Lifter, str]:
    """The refinement lifter when refine_3d is on, else PnP; also returns its name."""
    if config.refine_3d:
        from hand_recon_ros.pipeline.refine_lift import RefinementLifter  # scipy and the solver: only when used

        log.info("3D lifting: refinement (%s)", REFINE_MODULE)
        return RefinementLifter(config), "refinement"
    log.info("3D lifting: PnP (refine_3d is off)")
    return PnPLifter(), "pnp"


def learned_backend_name(backend: str) -> str:
    """The backend for the learned model: litert runs only MediaPipe's .tflite files, so an ONNX learned model
    runs on onnxruntime-cpu beside it (said in the reconstructor's log line); any other backend as given."""
    from hand_recon_ros.engines.base import BackendError
    from hand_recon_ros.engines.registry import canonical_backend_name

    try:
        return LEARNED_ON_LITERT if canonical_backend_name(backend) == "litert" else backend
    except BackendError:
        return backend  # create_backend names the unknown backend


def make_learned_reconstructor(config: PipelineConfig) -> Any:
    """The learned two-hand stage on ``config.learned_model`` through create_backend (same backends as the rest)."""
    from hand_recon_ros.engines.registry import create_backend
    from hand_recon_ros.network.exported_model import LearnedModelError, read_network_config
    from hand_recon_ros.pipeline.learned_reconstructor import LearnedReconstructor

    try:
        network_config = read_network_config(config.learned_model)
    except LearnedModelError as exc:
        raise ConfigError(f"learned_model: {exc}") from exc
    backend_name = learned_backend_name(config.backend)
    backend = create_backend(backend_name, config.learned_model, **backend_options(config, "learned"))
    log.info("reconstructor: learned (%s on %s, %s, %dpx%s)", config.learned_model, backend_name,
             network_config.backbone, network_config.input_size, ", residual" if network_config.residual else "")
    return LearnedReconstructor(backend, network_config)


def backend_options(config: PipelineConfig, network: str = "palm") -> dict[str, Any]:
    """Options for create_backend (names from engines.base.KNOWN_OPTIONS; each backend reads the ones it uses).

    max_batch covers the largest landmark call (a chunk of proposals); opt_batch keeps TensorRT tuned for the
    per-frame hand count. cache_dir is passed only when engine_cache_dir is set (else the backend's default).
    ``network`` ("palm" or "landmarks") picks the idle-thread policy (SPINNING_NETWORKS).
    """
    if network not in NETWORKS:
        raise ValueError(f"network must be one of {NETWORKS}, got {network!r}")
    options: dict[str, Any] = {
        "intra_op_threads": config.intra_op_threads,
        "allow_spinning": network in SPINNING_NETWORKS,
        "precision": config.precision,
        "max_batch": max(config.max_hands, MAX_PROPOSAL_BATCH),
        "opt_batch": config.max_hands,
    }
    if network == "learned":  # one crop (both hands) per frame
        options["max_batch"] = options["opt_batch"] = 1
    if config.engine_cache_dir:
        options["cache_dir"] = config.engine_cache_dir
    if config.calib_dir:
        options["calib_dir"] = config.calib_dir
    return options



def apply_opencv_threads(threads: int) -> None:
    """Set OpenCV's process-wide thread count (PipelineConfig.opencv_threads; 0 leaves it), logged when it changes:
    with more than one, OpenCV's idle workers spin-wait after each small call on a core the network then needs."""
    if threads > 0 and cv2.getNumThreads() != threads:
        log.info("OpenCV threads %d -> %d (opencv_threads; 0 leaves OpenCV's own setting)", cv2.getNumThreads(),
                 threads)
        cv2.setNumThreads(threads)


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0


class HandPipeline:
    """Palm detection → landmarks → tracking → metric 3D for every hand in an RGB image."""

    def __init__(
        self,
        config: PipelineConfig,
        *,
        palm_backend: Backend | None = None,
        landmark_backend: Backend | None = None,
        lifter: Lifter | None = None,
    ) -> None:
        """Load the models (via ensure_models + create_backend unless backends are given) and pick the lifter."""
        config.validate()
        self.config = dataclasses.replace(config)
        apply_opencv_threads(self.config.opencv_threads)
        if palm_backend is None or landmark_backend is None:
            from hand_recon_ros.engines.registry import create_backend
            from hand_recon_ros.models.model_files import ensure_models

            paths = ensure_models(self.config.model_variant, self.config.models_dir)
            palm_backend = palm_backend or create_backend(
                self.config.backend, paths.palm_onnx, **backend_options(self.config, "palm"))
            landmark_backend = landmark_backend or create_backend(
                self.config.backend, paths.landmark_onnx, **backend_options(self.config, "landmarks"))
        self.palm = PalmDetector(palm_backend)
        self.landmarks = LandmarkEstimator(landmark_backend)
        if lifter is None:
            self.lifter, self.lifter_name = make_lifter(self.config)
        else:
            self.lifter, self.lifter_name = lifter, type(lifter).__name__
        self.learned = None  # LearnedReconstructor when reconstructor is "learned"
        if self.config.reconstructor == "learned":
            try:
                self.learned = make_learned_reconstructor(self.config)
            except Exception:
                self.close()  # the palm and landmark backends are already loaded
                raise
        self.tracker = HandTracker()
        self._frames_since_proposals = self.config.proposal_interval_frames  # first frame may propose
        self.warmup()

    def warmup(self) -> None:
        """Run both networks once on blank input so the first real frame does not pay ONNX Runtime's set-up."""
        # The compiled kernels first (palm/landmark post-processing and the solver; loaded from the cache that make
        # setup fills): a kernel that fails to compile switches them all off, so the numpy paths run instead.
        from hand_recon_ros.pipeline.solver_kernels import warm

        warm()
        blank = np.zeros((PALM_INPUT_SIZE_PX, PALM_INPUT_SIZE_PX, 3), np.uint8)
        self.palm.detect(blank, 1.0)
        roi = RotatedRect(PALM_INPUT_SIZE_PX / 2.0, PALM_INPUT_SIZE_PX / 2.0, 100.0, 100.0, 0.0)
        self.landmarks.estimate(blank, [roi] * 2)
        if self.config.roi_proposals:  # the first proposal call (a full chunk) should not pay set-up either
            self.landmarks.estimate(blank, [roi] * MAX_PROPOSAL_BATCH)
        if self.learned is not None:
            self.learned.warmup()

    @property
    def backend_description(self) -> str:
        """Backends and lifter in one line (for logs, diagnostics and the benchmark table)."""
        learned = f"; learned: {self.learned.backend.describe()}" if self.learned is not None else ""
        return (f"palm: {self.palm.backend.describe()}; landmarks: {self.landmarks.backend.describe()}{learned}; "
                f"lift: {self.lifter_name}")

    def reset(self) -> None:
        """Forget tracks and any temporal 3D state (call on a scene cut or a new video)."""
        self.tracker.reset()
        self.lifter.reset()
        self._frames_since_proposals = self.config.proposal_interval_frames

    def update(self, **changes: Any) -> None:
        """Change live settings (thresholds, max_hands, mesh, smoothing, mirrored, mode); validated first."""
        unknown = sorted(set(changes) - set(PipelineConfig.field_names()))
        if unknown:
            raise ConfigError(f"unknown pipeline setting(s) {unknown}")
        fixed = sorted(set(changes) - LIVE_FIELDS)
        if fixed:
            raise ConfigError(f"setting(s) {fixed} cannot change while running; create a new HandPipeline")
        new = dataclasses.replace(self.config, **changes)
        new.validate()
        if new.mode != self.config.mode or new.mirrored != self.config.mirrored:
            self.reset()
        self.config = new
        if hasattr(self.lifter, "update"):
            self.lifter.update(**changes)

    def close(self) -> None:
        """Release every backend (each is closed even when another's close raises; idempotent)."""
        try:
            self.palm.backend.close()
        finally:
            try:
                self.landmarks.backend.close()
            finally:
                if self.learned is not None:
                    self.learned.backend.close()

    def _proposals_due(self, candidates: list[Candidate]) -> bool:
        """Proposals on: image mode whenever a hand is missing; video mode also at most every N frames."""
        cfg = self.config
        self._frames_since_proposals += 1
        if not cfg.roi_proposals:
            return False
        if cfg.mode == "video" and self._frames_since_proposals < cfg.proposal_interval_frames:
            return False
        return len(self.tracker.select(candidates, cfg.min_presence_score, cfg.max_hands)) < cfg.max_hands

    def _propose(self, image: np.ndarray, candidates: list[Candidate]) -> list[Candidate]:
        """New-hand candidates from ROI proposals, given this frame's landmark candidates (found hands)."""
        cfg = self.config
        self._frames_since_proposals = 0
        kept = self.tracker.select(candidates, cfg.min_presence_score, cfg.max_hands)
        found = [(landmarks_to_roi(c.output.keypoints_2d), c.output.keypoints_2d) for c in kept]
        palm = self.palm if cfg.proposal_source == "palm" else None
        proposals = propose_hands(self.landmarks, image, found, cfg.max_hands - len(kept), cfg.min_presence_score,
                                  palm, cfg.proposal_crops)
        return [Candidate(p.roi, -1, p.output) for p in proposals]

    def process(
        self, image_rgb: np.ndarray, intrinsics: CameraIntrinsics | None = None, timestamp_s: float | None = None,
        depth_m: np.ndarray | None = None,
    ) -> FrameResult:
        """Find every hand (up to max_hands) in an RGB uint8 (H, W, 3) image; 3D with given or assumed intrinsics,
        placed by ``depth_m`` ((H, W) metres registered to the image) where usable (FrameResult.depth says)."""
        start = time.perf_counter()
        image = check_image(image_rgb)
        height, width = image.shape[:2]
        if intrinsics is None:
            intrinsics = CameraIntrinsics.assumed(width, height)
        elif (intrinsics.width, intrinsics.height) != (width, height):
            raise IntrinsicsError(
                f"intrinsics are for {intrinsics.width}x{intrinsics.height} images, this image is {width}x{height}"
            )
        cfg = self.config
        video = cfg.mode == "video"
        timing: dict[str, float] = {}
        if not video:
            self.tracker.reset(restart_ids=True)  # independent images: ids 0..n-1 per image
        rois = self.tracker.tracked_rois()
        t = time.perf_counter()
        if len(rois) < cfg.max_hands:
            palms = self.palm.detect(image, cfg.min_detection_score)
            fresh = self.tracker.new_rois([palm_to_roi(p) for p in palms], cfg.max_hands - len(rois))
            rois = rois + [(-1, roi) for roi in fresh]
        timing["palm"] = _ms(t)
        t = time.perf_counter()
        outputs = self.landmarks.estimate(image, [roi for _, roi in rois])
        timing["landmarks"] = _ms(t)
        candidates = [Candidate(roi, track_id, out) for (track_id, roi), out in zip(rois, outputs)]
        t = time.perf_counter()
        if self._proposals_due(candidates):
            candidates += self._propose(image, candidates)
            timing["proposals"] = _ms(t)
        t = time.perf_counter()
        hands = self.tracker.update(candidates, cfg.min_presence_score, cfg.max_hands, keep_tracks=video)
        assign_sides(hands, cfg.mirrored)
        detections = [
            HandDetection(
                side=h.side,
                score=h.candidate.output.presence,
                side_score=h.side_score,
                keypoints_2d=h.candidate.output.keypoints_2d,
                keypoints_z=h.candidate.output.keypoints_z,
                world_landmarks=h.candidate.output.world_landmarks,
                roi=h.candidate.roi,
                track_id=h.track_id,
            )
            for h in hands
        ]
        timing["tracking"] = _ms(t)
        if self.learned is not None:
            t = time.perf_counter()
            detections = self.learned.reconstruct(image, detections, cfg.min_presence_score)
            timing["learned"] = _ms(t)
        t = time.perf_counter()
        depth_status, depth = _usable_depth(depth_m, width, height, self.lifter_name)
        if not detections:
            results = []
        elif depth is not None:
            results = self.lifter.lift(detections, intrinsics, timestamp_s, cfg.mesh, depth_m=depth)
        else:
            results = self.lifter.lift(detections, intrinsics, timestamp_s, cfg.mesh)
        timing["lift"] = _ms(t)
        timing["total"] = _ms(start)
        return FrameResult(width, height, intrinsics.known, results, timing, depth_status)


def _usable_depth(depth_m: np.ndarray | None, width: int, height: int, lifter_name: str
                  ) -> tuple[str, np.ndarray | None]:
    """("none" | "used" | why refused, the depth to lift with or None): depth needs the refinement lifter."""
    if depth_m is None:
        return "none", None
    if lifter_name != "refinement":
        return f"refused: the {lifter_name} lifter cannot use depth (refine_3d is off)", None
    from hand_recon_ros.pipeline.depth_fusion import DepthError, check_depth

    try:
        check_depth(depth_m, width, height)
    except DepthError as exc:
        return f"refused: {exc}", None
    return "used", depth_m
