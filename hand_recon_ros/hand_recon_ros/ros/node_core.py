"""The processing both hand_recon nodes share (plain and lifecycle): callbacks, worker, outputs, diagnostics.

``HandReconCore`` is mixed into an rclpy ``Node`` (HandReconNode) or ``LifecycleNode``
(HandReconLifecycleNode). One worker thread waits on the image subscription itself and takes the newest frame
(ros/subscription_slot.py: no executor wake-up or thread hop on the way in; the reader's depth-1 history makes
the latest frame win, frames replaced before the worker took them are counted as dropped from the publisher's
sequence numbers), converts it, runs the pipeline and publishes HandArray, so the executor never waits on
inference. Markers, TF and the overlay are built on a second thread
from a second latest-wins slot, so they never delay the next frame.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from typing import Any

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from hand_recon_ros.io.image_conversion import (
    ImageConversionError,
    compressed_msg_to_rgb,
    image_msg_to_rgb,
)
from hand_recon_ros.io.overlay import draw_overlay
from hand_recon_ros.pipeline.depth_fusion import DepthError
from hand_recon_ros.pipeline.hand_pipeline import ImageFormatError
from hand_recon_ros.pipeline.types import CameraIntrinsics, IntrinsicsError
from hand_recon_ros.ros.depth_image import depth_msg_to_metres
from hand_recon_ros.ros.depth_pairing import DepthPairer
from hand_recon_ros.ros.diagnostics import NodeStats, to_diagnostic_array
from hand_recon_ros.ros.frame_slot import FrameWorker, LatestFrameSlot
from hand_recon_ros.ros.hand_array_cdr import hand_array_cdr
from hand_recon_ros.ros.image_cdr import image_from_serialized
from hand_recon_ros.ros.image_message import rgb_to_image_msg
from hand_recon_ros.ros.latency_trace import LatencyTrace
from hand_recon_ros.ros.markers import HandMarkerBuilder
from hand_recon_ros.ros.message_conversion import placeable, read_camera_info
from hand_recon_ros.ros.parameters import (
    PARAMETERS_BY_NAME,
    ParameterValueError,
    declare_parameters,
    deprecation_warnings,
    pipeline_settings,
    validate_value,
)
from hand_recon_ros.ros.subscription_slot import SubscriptionSlot, WorkerTakenGroup
from hand_recon_ros.ros.teleop_outputs import TeleopOutputs, one_euro_settings
from hand_recon_ros.ros.tf_publisher import create_tf_publisher

DIAGNOSTICS_PERIOD_S = 1.0
# Minimum time between two log lines about the same kind of problem (seconds).
LOG_THROTTLE_S = 5.0
# How long shutdown waits for the worker to finish the frame it is on (seconds).
WORKER_STOP_TIMEOUT_S = 10.0
# Depth of the reliable output topics (HandArray, markers).
OUTPUT_QOS_DEPTH = 10
# Longest the worker waits for the depth frame of a colour frame (aligned depth arrives a little later), seconds.
DEPTH_WAIT_MAX_S = 0.05

# Camera input: sensor-data QoS with depth 1 (best effort, volatile, keep last).
SENSOR_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=1,
    reliability=ReliabilityPolicy.BEST_EFFORT,
    durability=DurabilityPolicy.VOLATILE,
)
# Overlay output: reliable keep-last 1, so RViz (reliable by default) and best-effort viewers both connect.
OVERLAY_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=1,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)


@dataclasses.dataclass
class _Frame:
    """One received image message waiting for the worker."""

    msg: Any
    compressed: bool
    arrival_s: float  # time.monotonic() when the callback ran
    marks: dict[str, float] | None = None  # wall-clock marks for the latency trace (None: not traced)


@dataclasses.dataclass
class _Visual:
    """One processed frame waiting for its markers, TF and overlay."""

    result: Any
    header: Any
    rgb: Any


class HandReconCore:
    """Parameters, callbacks, worker threads and outputs of a hand_recon node (mixed into an rclpy Node).

    The node class calls, in order: ``_init_core`` (parameters and state), ``_create_outputs`` (publishers,
    TF), ``_create_diagnostics``, ``_create_inputs`` (subscriptions) and ``_start_workers``; and
    ``_stop_workers`` / ``_destroy_inputs`` / ``_destroy_outputs`` to undo them.
    """

    def _init_core(self, pipeline: Any | None) -> None:
        """Declare and validate the parameters (ParameterValueError on a bad one) and set up the shared state."""
        self._params = declare_parameters(self)
        for warning in deprecation_warnings(self._params):
            self.get_logger().warning(warning)
        # filter, grasp signals, wrist poses, joint states; a retargeting config that cannot load fails here
        self._teleop = TeleopOutputs(self, self._params)
        self._stats = NodeStats(self._params["no_image_timeout_s"])
        self._stats.extra_values = self._teleop.diagnostic_values
        self._depth: DepthPairer | None = None
        self._depth_sub: Any = None
        self._depth_problem = ""
        self._depth_age_s = float("nan")
        self._stats.depth_mode = self._params["use_depth"]
        self._pipeline = pipeline
        self._pending_changes: dict[str, Any] = {}
        self._changes_lock = threading.Lock()
        self._camera_lock = threading.Lock()
        self._camera_intrinsics: CameraIntrinsics | None = None
        self._markers = HandMarkerBuilder(self._params["marker_lifetime_s"])
        self._closed = False
        self._last_log_s: dict[str, float] = {}
        self._last_stamp_s: float | None = None
        self._camera_warnings_logged: set[str] = set()
        self._image_sub: Any = None
        self._camera_info_sub: Any = None
        self._worker: FrameWorker[_Frame] | None = None
        self._visual_worker: FrameWorker[_Visual] | None = None
        self._tf = None
        self._trace = LatencyTrace.from_env()  # HAND_RECON_LATENCY_TRACE: per-frame marks for the benchmark
        self.add_on_set_parameters_callback(self.on_set_parameters)

    def _create_outputs(self, create_publisher: Callable[..., Any]) -> None:
        """HandArray, markers and overlay publishers (made by ``create_publisher``) and the wrist TF broadcaster."""
        from hand_recon_msgs.msg import HandArray
        from sensor_msgs.msg import Image
        from visualization_msgs.msg import MarkerArray

        self._hands_pub = create_publisher(HandArray, "hands", OUTPUT_QOS_DEPTH)
        self._markers_pub = create_publisher(MarkerArray, "hands/markers", OUTPUT_QOS_DEPTH)
        self._overlay_pub = create_publisher(Image, "hands/overlay", OVERLAY_QOS)
        self._tf = None
        if self._params["publish_tf"]:
            self._tf, reason = create_tf_publisher(self, self._params["tf_prefix"])
            self.get_logger().info(reason)
        else:
            self.get_logger().info("TF off: publish_tf is false")

    def _destroy_outputs(self, destroy_publisher: Callable[[Any], Any]) -> None:
        """Undo ``_create_outputs`` (the TF broadcaster's publisher goes with the node)."""
        for name in ("_hands_pub", "_markers_pub", "_overlay_pub"):
            publisher = getattr(self, name, None)
            if publisher is not None:
                destroy_publisher(publisher)
                setattr(self, name, None)
        self._tf = None

    def _create_diagnostics(self) -> None:
        """The /diagnostics publisher and its 1 Hz timer (always on, whatever the lifecycle state)."""
        from diagnostic_msgs.msg import DiagnosticArray

        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", OUTPUT_QOS_DEPTH)
        self._diagnostics_timer = self.create_timer(DIAGNOSTICS_PERIOD_S, self.publish_diagnostics)

    def _create_inputs(self) -> None:
        """Subscribe to the image (raw or compressed) and CameraInfo topics."""
        from sensor_msgs.msg import CameraInfo, CompressedImage, Image

        # The worker waits on and takes from the image subscription itself (WorkerTakenGroup: the executor never
        # serves it), so the callback passed here is never called.
        if self._params["image_transport"] == "compressed":
            self._image_sub = self.create_subscription(
                CompressedImage, self._compressed_topic(), _never_called, SENSOR_QOS, callback_group=WorkerTakenGroup()
            )
        else:
            # raw=True: the frame's pixels are read in place from the received bytes (ros/image_cdr.py), not
            # copied by rclpy's deserialisation (~1-2 ms for a 640x960 rgb8 frame on a small CPU)
            self._image_sub = self.create_subscription(
                Image, "image", _never_called, SENSOR_QOS, raw=True, callback_group=WorkerTakenGroup()
            )
        # CameraInfo too is taken by the worker, just before each frame (ros/subscription_slot.py)
        self._camera_info_sub = self.create_subscription(
            CameraInfo, "camera_info", self.on_camera_info, SENSOR_QOS, callback_group=WorkerTakenGroup()
        )
        if self._params["use_depth"] != "off":
            max_age = self._params["depth_max_age_s"]
            self._depth = DepthPairer(max_age, min(max_age, DEPTH_WAIT_MAX_S))
            self._depth_sub = self.create_subscription(Image, "depth", self.on_depth, SENSOR_QOS)
            self.get_logger().info(f"depth ({self._params['use_depth']}) from {self._depth_sub.topic_name}")
        self._attach_image_subscription()

    def _destroy_inputs(self) -> None:
        """Unsubscribe from the image, CameraInfo and depth topics."""
        slot = getattr(self, "_slot", None)
        if slot is not None:
            slot.detach()  # before the subscription goes: the worker stops taking from it
        for name in ("_image_sub", "_camera_info_sub", "_depth_sub"):
            subscription = getattr(self, name, None)
            if subscription is not None:
                self.destroy_subscription(subscription)
                setattr(self, name, None)

    def _start_workers(self, on_start: Callable[[], None] | None = None) -> None:
        """Fresh frame slots and the inference and visuals threads (``on_start`` runs first on the worker)."""
        self._slot: SubscriptionSlot[_Frame] = SubscriptionSlot(self._frame_from_sample)
        self._last_image_sequence = 0
        self._worker = FrameWorker(self._slot, self._process_frame, self._on_worker_error, on_start=on_start)
        self._attach_image_subscription()
        # Markers, TF and overlay on their own thread, latest result wins: a big mesh marker never delays
        # the next frame's inference or HandArray.
        self._visual_slot: LatestFrameSlot[_Visual] = LatestFrameSlot()
        self._visual_worker = FrameWorker(
            self._visual_slot, self._publish_visuals, self._on_worker_error, name="hand_recon_visuals"
        )
        self._worker.start()
        self._visual_worker.start()

    def _attach_image_subscription(self) -> None:
        """Let the worker take from the image subscription once both exist (either may be created first)."""
        slot = getattr(self, "_slot", None)
        if slot is not None and not slot.closed and self._image_sub is not None:
            slot.attach(self._image_sub, self.context, [(self._camera_info_sub, self.on_camera_info)])

    def _stop_workers(self) -> bool:
        """Stop both threads, each finishing the item it is on; warn when one does not stop in time. Returns
        False when the inference worker is still running (then the pipeline must be left open for it)."""
        stopped = {"worker": True, "visuals worker": True}
        for label, worker in (("worker", self._worker), ("visuals worker", self._visual_worker)):
            if worker is not None and not worker.stop(WORKER_STOP_TIMEOUT_S):
                stopped[label] = False
                suffix = "; the pipeline is left open for it" if label == "worker" else ""
                self.get_logger().warning(f"{label} did not stop in time{suffix}")
        self._worker = self._visual_worker = None
        return stopped["worker"]

    def _listening_message(self) -> str:
        """One line naming the input and output topics."""
        return (
            f"listening on {self._image_sub.topic_name} ({self._params['image_transport']}) and "
            f"{self._camera_info_sub.topic_name}; publishing {self._hands_pub.topic_name}"
        )

    def _compressed_topic(self) -> str:
        """``<image>/compressed`` following a remap of ``image`` (as image_transport does), unless remapped itself."""
        explicit = self.resolve_topic_name("image/compressed")
        if explicit != self.resolve_topic_name("image/compressed", only_expand=True):
            return explicit
        return f"{self.resolve_topic_name('image')}/compressed"

    # -- image samples (taken by the worker thread) ------------------------------------------------------
    def _frame_from_sample(self, msg: Any, info: dict[str, Any]) -> _Frame | None:
        """A taken image sample as a frame for the worker (None when it cannot be read); counts it and the frames
        the reader's depth-1 history replaced before it was taken (gaps in the publisher's sequence numbers)."""
        arrival_s = time.monotonic()
        marks = None
        if self._trace is not None:
            marks = {"dds_source": info["source_timestamp"] * 1e-9,
                     "dds_received": info["received_timestamp"] * 1e-9, "woken": self._slot.woken_s,
                     "take_start": self._slot.take_start_s, "callback": time.time()}
        sequence = int(info.get("publication_sequence_number", 0) or 0)
        skipped = sequence - self._last_image_sequence - 1 if self._last_image_sequence and sequence else 0
        self._last_image_sequence = sequence
        if skipped > 0:  # (a smaller number: another or a restarted publisher, nothing known to be lost)
            self._stats.record_input(skipped)
            self._stats.record_drop(skipped)
            self.get_logger().debug(f"{skipped} frames dropped: worker busy", throttle_duration_sec=LOG_THROTTLE_S)
        self._stats.record_input()
        compressed = self._params["image_transport"] == "compressed"
        if not compressed and isinstance(msg, (bytes, bytearray, memoryview)):
            try:
                msg = image_from_serialized(msg)
            except Exception as exc:  # noqa: BLE001 - a malformed sample must not stop the worker
                self._report("input", f"image refused: cannot deserialise sensor_msgs/Image ({exc})")
                return None
        _mark(marks, "enqueue")
        return _Frame(msg, compressed, arrival_s, marks)

    # -- callbacks (executor thread: never block) ---------------------------------------------------
    def on_camera_info(self, msg: Any) -> None:
        """Keep the newest usable intrinsics; a bad CameraInfo is reported and the assumed ones are used (worker
        thread, which takes CameraInfo just before each frame and whenever it wakes)."""
        try:
            intrinsics, warning = read_camera_info(msg, self._params["input_rectified"])
        except (IntrinsicsError, ValueError) as exc:
            intrinsics = None
            self._report("camera_info", f"CameraInfo refused: {exc}")
        else:
            if intrinsics is not None:
                self._stats.record_camera_info()
            if warning is not None and warning not in self._camera_warnings_logged:
                self._camera_warnings_logged.add(warning)  # reported once, kept as a WARN in /diagnostics
                self.get_logger().warning(warning)
            self._stats.set_warning("camera_info", warning)
        with self._camera_lock:
            self._camera_intrinsics = intrinsics

    def on_depth(self, msg: Any) -> None:
        """Depth image: keep it for pairing with the colour frame of the same stamp (decoded on the worker)."""
        if self._depth is not None:
            self._depth.put(float(msg.header.stamp.sec) + float(msg.header.stamp.nanosec) * 1e-9, msg)

    def on_set_parameters(self, parameters: list[Any]) -> Any:
        """Validate live changes (refusing with the value named) and queue them for the worker."""
        from rcl_interfaces.msg import SetParametersResult

        changes: dict[str, Any] = {}
        try:
            for parameter in parameters:
                spec = PARAMETERS_BY_NAME.get(parameter.name)
                if spec is None:
                    continue
                if not spec.live:
                    raise ParameterValueError(f"{parameter.name} is read at start-up; restart the node to change it")
                changes[parameter.name] = validate_value(parameter.name, parameter.value)
            settings = pipeline_settings(changes, self._pipeline_fields())
            if settings:
                self._check_pipeline_settings(settings)
        except ValueError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        self._params.update(changes)
        if any(name.startswith("one_euro_") for name in changes):
            self._teleop.update_filter(one_euro_settings(self._params))
        if "depth_max_age_s" in changes and self._depth is not None:
            self._depth.max_age_s = changes["depth_max_age_s"]
            self._depth.wait_s = min(changes["depth_max_age_s"], DEPTH_WAIT_MAX_S)
        if "marker_lifetime_s" in changes:
            self._markers.lifetime_s = changes["marker_lifetime_s"]
        if "no_image_timeout_s" in changes:
            self._stats.no_image_timeout_s = changes["no_image_timeout_s"]
        if settings:
            with self._changes_lock:
                self._pending_changes.update(settings)
        return SetParametersResult(successful=True)

    def publish_diagnostics(self) -> None:
        """1 Hz DiagnosticArray: rates, latency, drops, backend, hands per frame and any WARN/ERROR."""
        snapshot = self._stats.snapshot()
        self._diagnostics_pub.publish(
            to_diagnostic_array(
                snapshot, f"{self.get_name()}: hand reconstruction", self._stats.backend,
                self.get_clock().now().to_msg(),
            )
        )

    # -- worker thread --------------------------------------------------------------------------------
    @staticmethod
    def _pipeline_fields() -> tuple[str, ...]:
        from hand_recon_ros.pipeline.config import PipelineConfig

        return PipelineConfig.field_names()

    def _check_pipeline_settings(self, settings: dict[str, Any]) -> None:
        """Raise ValueError when ``settings`` on top of the current parameters make an invalid PipelineConfig."""
        from hand_recon_ros.pipeline.config import PipelineConfig

        base = pipeline_settings(self._params, self._pipeline_fields())
        PipelineConfig(**{**base, **settings}).validate()

    def _ensure_pipeline(self) -> None:
        """Build the HandPipeline from the parameters (worker thread, so discovery is not held up)."""
        if self._pipeline is None:
            from hand_recon_ros.pipeline.config import PipelineConfig
            from hand_recon_ros.pipeline.hand_pipeline import HandPipeline

            config = PipelineConfig(**pipeline_settings(self._params, PipelineConfig.field_names()))
            try:
                config.validate()
                if not self._params["fetch_models"]:
                    self._require_cached_models(config)
                started = time.monotonic()
                self._pipeline = HandPipeline(config)
            except Exception as exc:
                self._stats.fatal = f"pipeline not loaded: {exc}"
                self.get_logger().error(
                    f"could not load the hand pipeline ({exc}); the node stays up and reports it on /diagnostics"
                )
                raise
            self.get_logger().info(f"pipeline ready in {time.monotonic() - started:.1f} s")
        self._stats.backend = str(getattr(self._pipeline, "backend_description", type(self._pipeline).__name__))
        self.get_logger().info(f"backend: {self._stats.backend}")

    @staticmethod
    def _require_cached_models(config: Any) -> None:
        """ModelFileError (naming the fix and fetch_models) unless every model file is already cached."""
        from hand_recon_ros.models.model_files import ModelFileError, cached_models

        try:
            cached_models(config.model_variant, config.models_dir)
        except ModelFileError as exc:
            raise ModelFileError(f"{exc}, or set the parameter fetch_models:=true to let the node fetch them") from exc

    def _report(self, kind: str, message: str) -> None:
        """Record an error for /diagnostics and log it, at most once per LOG_THROTTLE_S per kind."""
        self._stats.record_error(kind, message)
        now = time.monotonic()
        if now - self._last_log_s.get(kind, -LOG_THROTTLE_S) >= LOG_THROTTLE_S:
            self._last_log_s[kind] = now
            self.get_logger().error(message)

    def _on_worker_error(self, exc: BaseException) -> None:
        if self._closed:
            return
        self._report("inference", f"{type(exc).__name__}: {exc}")

    def _intrinsics_for(self, width: int, height: int) -> CameraIntrinsics:
        with self._camera_lock:
            intrinsics = self._camera_intrinsics
        if intrinsics is not None and (intrinsics.width, intrinsics.height) == (width, height):
            return intrinsics
        if intrinsics is not None:
            self.get_logger().warning(
                f"CameraInfo is {intrinsics.width}x{intrinsics.height} but the image is {width}x{height}; "
                "using assumed intrinsics",
                throttle_duration_sec=LOG_THROTTLE_S,
            )
        return CameraIntrinsics.assumed(width, height, self._params["assumed_hfov_deg"])

    def _apply_pending_changes(self) -> None:
        with self._changes_lock:
            changes, self._pending_changes = self._pending_changes, {}
        if changes:
            self._pipeline.update(**changes)
            self.get_logger().info(f"updated live settings: {changes}")

    def _process_frame(self, frame: _Frame) -> None:
        """Convert, reconstruct and publish one frame (worker thread); HandArray goes out pre-serialized
        (ros/hand_array_cdr.py)."""
        if self._pipeline is None:
            self._stats.record_error("inference", self._stats.fatal or "pipeline not loaded")
            return
        msg, marks = frame.msg, frame.marks
        _mark(marks, "pickup")
        try:
            rgb = (compressed_msg_to_rgb(msg) if frame.compressed
                   else image_msg_to_rgb(msg, self._params["mono16_bits"], copy=False))  # the frame's own bytes
        except ImageConversionError as exc:
            self._report("input", f"image refused: {exc}")
            return
        height, width = rgb.shape[:2]
        intrinsics = self._intrinsics_for(width, height)
        self._apply_pending_changes()
        stamp_s = float(msg.header.stamp.sec) + float(msg.header.stamp.nanosec) * 1e-9
        if self._last_stamp_s is not None and stamp_s < self._last_stamp_s:
            # time went backwards (bag loop, camera restart): tracks and smoothing state no longer apply
            self.get_logger().info(f"image stamp went back {self._last_stamp_s - stamp_s:.3f} s; resetting tracking")
            self._pipeline.reset()
            self._teleop.reset()
        self._last_stamp_s = stamp_s
        depth_kwargs = self._depth_for(stamp_s)
        _mark(marks, "pipeline_start")
        try:
            result = self._pipeline.process(rgb, intrinsics, stamp_s, **depth_kwargs)
        except ImageFormatError as exc:  # e.g. a 1x1 image: the input's fault, not the inference's
            self._report("input", f"image refused: {exc}")
            return
        except Exception as exc:
            self._report("inference", f"inference failed: {type(exc).__name__}: {exc}")
            return
        _mark(marks, "pipeline_end")
        for warning in getattr(getattr(self._pipeline, "lifter", None), "warnings", ()):  # e.g. a non-finite fit
            self._report("fit", warning)
        self._teleop.before_publish(result, stamp_s)
        header = msg.header
        hand_array = hand_array_cdr(result, header)  # serialized: no rosidl objects to build and convert
        self._record_depth(result)
        _mark(marks, "publish_start")
        self._hands_pub.publish(hand_array)
        _mark(marks, "publish_end")
        self._teleop.publish(result, header, self._params["mirrored"])
        self._stats.record_output(
            time.monotonic() - frame.arrival_s,
            sum(1 for hand in result.hands if placeable(hand)),
            result.intrinsics_known,
            result.timing_ms.get("total", float("nan")) / 1e3,
        )
        if self._visual_slot.put(_Visual(result, header, rgb)):
            self._stats.record_visual_skip()
        if marks is not None and self._trace is not None:
            marks["done"] = time.time()
            self._trace.write({"stamp": stamp_s, "pipeline_total_ms": result.timing_ms.get("total"), **marks})

    def _depth_for(self, stamp_s: float) -> dict[str, Any]:
        """``{"depth_m": metres}`` for the colour frame at ``stamp_s`` when a usable depth frame pairs with it, else
        ``{}`` with the reason kept for _record_depth (worker thread)."""
        self._depth_problem, self._depth_age_s = "", float("nan")
        if self._depth is None:
            return {}
        pair = self._depth.pair(stamp_s)
        if pair.msg is None:
            self._depth_problem = pair.problem
            return {}
        try:
            depth = depth_msg_to_metres(pair.msg, self._params["depth_scale"])
        except DepthError as exc:
            self._depth_problem = f"depth refused: {exc}"
            return {}
        self._depth_age_s = pair.age_s
        return {"depth_m": depth}

    def _record_depth(self, result: Any) -> None:
        """Count this frame's depth use or fallback for /diagnostics; log a fallback at most every LOG_THROTTLE_S."""
        if self._depth is None:
            return
        status = getattr(result, "depth", "none")
        problem = self._depth_problem or ("" if status == "used" else str(status).removeprefix("refused: "))
        if problem and self._params["use_depth"] == "auto" and not self._depth.received:
            return  # auto and no depth camera: monocular is the normal case, not a fallback
        by_depth = sum(1 for hand in result.hands if getattr(hand, "placement", "") == "depth")
        self._stats.record_depth(problem, self._depth_age_s, by_depth)
        if problem:
            self.get_logger().warning(f"depth not used ({problem}); placing hands monocularly",
                                      throttle_duration_sec=LOG_THROTTLE_S)

    def _publish_visuals(self, visual: _Visual) -> None:
        """Markers and overlay (each only while subscribed) and wrist TF for one processed frame (visuals thread)."""
        if self._markers_pub.get_subscription_count() > 0:  # nobody listening: no marker work on a shared CPU
            self._markers_pub.publish(self._markers.build(visual.result, visual.header))
        if self._tf is not None:
            self._tf.publish(visual.result, visual.header)
        if self._overlay_pub.get_subscription_count() > 0:
            self._overlay_pub.publish(rgb_to_image_msg(draw_overlay(visual.rgb, visual.result), visual.header))

    def _close_trace(self) -> None:
        """Close the latency trace file, if any."""
        if self._trace is not None:
            self._trace.close()

    @property
    def stats(self) -> NodeStats:
        """The counters behind /diagnostics."""
        return self._stats


def _mark(marks: dict[str, float] | None, name: str) -> None:
    """Record the wall clock under ``name`` when the frame is traced."""
    if marks is not None:
        marks[name] = time.time()


def _never_called(msg: Any) -> None:
    """Callback of the worker-taken image subscription (the executor never serves it)."""
