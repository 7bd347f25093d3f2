"""hand_recon_node: camera images in; HandArray, RViz markers, overlay, wrist TF and /diagnostics out.

A thin shell around the ROS-free HandPipeline. The image callback only stores the newest message in a
one-frame slot (latest frame wins, replaced frames are counted as dropped); one worker thread converts,
runs the pipeline and publishes HandArray, so the executor never waits on inference. Markers, TF and the
overlay are built on a second thread from a second latest-wins slot, so they never delay the next frame.
Run: ``hand_recon_node --ros-args -r image:=/camera/image_raw -r camera_info:=/camera/camera_info``.
"""

from __future__ import annotations

import dataclasses
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from hand_recon_ros.io.overlay import draw_overlay
from hand_recon_ros.pipeline.types import CameraIntrinsics, IntrinsicsError
from hand_recon_ros.ros.diagnostics import NodeStats, to_diagnostic_array
from hand_recon_ros.ros.frame_slot import FrameWorker, LatestFrameSlot
from hand_recon_ros.ros.image_conversion import (
    ImageConversionError,
    compressed_msg_to_rgb,
    image_msg_to_rgb,
    rgb_to_image_msg,
)
from hand_recon_ros.ros.markers import HandMarkerBuilder
from hand_recon_ros.ros.message_conversion import camera_info_to_intrinsics, frame_result_to_hand_array
from hand_recon_ros.ros.parameters import (
    PARAMETERS_BY_NAME,
    ParameterValueError,
    declare_parameters,
    pipeline_settings,
    validate_value,
)
from hand_recon_ros.ros.tf_publisher import create_tf_publisher

NODE_NAME = "hand_recon_node"
DIAGNOSTICS_PERIOD_S = 1.0
# Minimum time between two log lines about the same kind of problem (seconds).
LOG_THROTTLE_S = 5.0
# How long shutdown waits for the worker to finish the frame it is on (seconds).
WORKER_STOP_TIMEOUT_S = 10.0
# Depth of the reliable output topics (HandArray, markers).
OUTPUT_QOS_DEPTH = 10

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


@dataclasses.dataclass
class _Visual:
    """One processed frame waiting for its markers, TF and overlay."""

    result: Any
    header: Any
    rgb: Any


class HandReconNode(Node):
    """ROS 2 node publishing two-hand 3D reconstructions of the images it receives.

    ``pipeline``: an object with HandPipeline's interface (``process``, ``update``, ``reset``,
    ``backend_description``); when None, a HandPipeline is built from the parameters on the worker thread.
    """

    def __init__(self, pipeline: Any | None = None, node_name: str = NODE_NAME, **node_kwargs: Any) -> None:
        super().__init__(node_name, **node_kwargs)
        self._params = declare_parameters(self)
        self._stats = NodeStats(self._params["no_image_timeout_s"])
        self._pipeline = pipeline
        self._pending_changes: dict[str, Any] = {}
        self._changes_lock = threading.Lock()
        self._camera_lock = threading.Lock()
        self._camera_intrinsics: CameraIntrinsics | None = None
        self._markers = HandMarkerBuilder(self._params["marker_lifetime_s"])
        self._closed = False
        self._last_log_s: dict[str, float] = {}
        self._last_stamp_s: float | None = None

        from diagnostic_msgs.msg import DiagnosticArray
        from hand_recon_msgs.msg import HandArray
        from sensor_msgs.msg import CameraInfo, CompressedImage, Image
        from visualization_msgs.msg import MarkerArray

        self._hands_pub = self.create_publisher(HandArray, "hands", OUTPUT_QOS_DEPTH)
        self._markers_pub = self.create_publisher(MarkerArray, "hands/markers", OUTPUT_QOS_DEPTH)
        self._overlay_pub = self.create_publisher(Image, "hands/overlay", OVERLAY_QOS)
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", OUTPUT_QOS_DEPTH)
        self._tf = None
        if self._params["publish_tf"]:
            self._tf, reason = create_tf_publisher(self, self._params["tf_prefix"])
            self.get_logger().info(reason)
        else:
            self.get_logger().info("TF off: publish_tf is false")

        self._slot: LatestFrameSlot[_Frame] = LatestFrameSlot()
        if self._params["image_transport"] == "compressed":
            self._image_sub = self.create_subscription(
                CompressedImage, self._compressed_topic(), self.on_compressed_image, SENSOR_QOS
            )
        else:
            self._image_sub = self.create_subscription(Image, "image", self.on_image, SENSOR_QOS)
        self._camera_info_sub = self.create_subscription(CameraInfo, "camera_info", self.on_camera_info, SENSOR_QOS)
        self.add_on_set_parameters_callback(self.on_set_parameters)
        self._diagnostics_timer = self.create_timer(DIAGNOSTICS_PERIOD_S, self.publish_diagnostics)

        self._worker: FrameWorker[_Frame] = FrameWorker(
            self._slot, self._process_frame, self._on_worker_error, on_start=self._ensure_pipeline
        )
        # Markers, TF and overlay on their own thread, latest result wins: a big mesh marker never delays
        # the next frame's inference or HandArray.
        self._visual_slot: LatestFrameSlot[_Visual] = LatestFrameSlot()
        self._visual_worker: FrameWorker[_Visual] = FrameWorker(
            self._visual_slot, self._publish_visuals, self._on_worker_error, name="hand_recon_visuals"
        )
        self._worker.start()
        self._visual_worker.start()
        self.get_logger().info(
            f"listening on {self._image_sub.topic_name} ({self._params['image_transport']}) and "
            f"{self._camera_info_sub.topic_name}; publishing {self._hands_pub.topic_name}"
        )

    def _compressed_topic(self) -> str:
        """``<image>/compressed`` following a remap of ``image`` (as image_transport does), unless remapped itself."""
        explicit = self.resolve_topic_name("image/compressed")
        if explicit != self.resolve_topic_name("image/compressed", only_expand=True):
            return explicit
        return f"{self.resolve_topic_name('image')}/compressed"

    # -- callbacks (executor thread: never block) ---------------------------------------------------
    def on_image(self, msg: Any) -> None:
        """Raw image: hand it to the worker (a frame still waiting is dropped and counted)."""
        self._enqueue(_Frame(msg, False, time.monotonic()))

    def on_compressed_image(self, msg: Any) -> None:
        """Compressed image: hand it to the worker (decoded there)."""
        self._enqueue(_Frame(msg, True, time.monotonic()))

    def _enqueue(self, frame: _Frame) -> None:
        self._stats.record_input()
        if self._slot.put(frame):
            self._stats.record_drop()
            self.get_logger().debug("frame dropped: worker busy", throttle_duration_sec=LOG_THROTTLE_S)

    def on_camera_info(self, msg: Any) -> None:
        """Keep the newest usable intrinsics; a bad CameraInfo is reported and the assumed ones are used."""
        try:
            intrinsics = camera_info_to_intrinsics(msg)
        except (IntrinsicsError, ValueError) as exc:
            intrinsics = None
            self._report("camera_info", f"CameraInfo refused: {exc}")
        else:
            if intrinsics is not None:
                self._stats.record_camera_info()
        with self._camera_lock:
            self._camera_intrinsics = intrinsics

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
        """Convert, reconstruct and publish one frame (worker thread)."""
        if self._pipeline is None:
            self._stats.record_error("inference", self._stats.fatal or "pipeline not loaded")
            return
        msg = frame.msg
        try:
            rgb = compressed_msg_to_rgb(msg) if frame.compressed else image_msg_to_rgb(msg)
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
        self._last_stamp_s = stamp_s
        try:
            result = self._pipeline.process(rgb, intrinsics, stamp_s)
        except Exception as exc:
            self._report("inference", f"inference failed: {type(exc).__name__}: {exc}")
            return
        for warning in getattr(getattr(self._pipeline, "lifter", None), "warnings", ()):  # e.g. a non-finite fit
            self._report("fit", warning)
        header = msg.header
        hand_array = frame_result_to_hand_array(result, header)
        self._hands_pub.publish(hand_array)
        self._stats.record_output(
            time.monotonic() - frame.arrival_s,
            len(hand_array.hands),
            result.intrinsics_known,
            result.timing_ms.get("total", float("nan")) / 1e3,
        )
        if self._visual_slot.put(_Visual(result, header, rgb)):
            self._stats.record_visual_skip()

    def _publish_visuals(self, visual: _Visual) -> None:
        """Markers and overlay (each only while subscribed) and wrist TF for one processed frame (visuals thread)."""
        if self._markers_pub.get_subscription_count() > 0:  # nobody listening: no marker work on a shared CPU
            self._markers_pub.publish(self._markers.build(visual.result, visual.header))
        if self._tf is not None:
            self._tf.publish(visual.result, visual.header)
        if self._overlay_pub.get_subscription_count() > 0:
            self._overlay_pub.publish(rgb_to_image_msg(draw_overlay(visual.rgb, visual.result), visual.header))

    # -- shutdown -------------------------------------------------------------------------------------
    @property
    def stats(self) -> NodeStats:
        """The counters behind /diagnostics."""
        return self._stats

    def close(self) -> None:
        """Stop the worker (finishing the frame it is on), then destroy the node. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if not self._worker.stop(WORKER_STOP_TIMEOUT_S):
            self.get_logger().warning("worker did not stop in time")
        if not self._visual_worker.stop(WORKER_STOP_TIMEOUT_S):
            self.get_logger().warning("visuals worker did not stop in time")
        self.destroy_node()


def main(args: list[str] | None = None) -> int:
    """Entry point of ``hand_recon_node`` / ``python -m hand_recon_ros.ros.node``; returns the exit status."""
    try:
        rclpy.init(args=args)
    except RuntimeError as exc:  # rclpy's RCLError: e.g. an unreadable --params-file or malformed --ros-args
        print(f"[FATAL] [{NODE_NAME}]: cannot start ROS 2 with these arguments: {exc}", file=sys.stderr)
        return 2
    try:
        node = HandReconNode()
    except KeyboardInterrupt:
        return _interrupted_during_start_up()
    except ParameterValueError as exc:
        rclpy.logging.get_logger(NODE_NAME).fatal(f"invalid parameter: {exc}")
        rclpy.try_shutdown()
        return 2
    except ModuleNotFoundError as exc:
        if exc.name != "hand_recon_msgs" and not str(exc.name).startswith("hand_recon_msgs."):
            raise
        rclpy.logging.get_logger(NODE_NAME).fatal(
            f"{exc}: build and source the hand_recon_msgs package (colcon build; source install/setup.bash, "
            "or `source env.sh` in the source tree)"
        )
        rclpy.try_shutdown()
        return 2
    return spin_until_shutdown(node)


def _interrupted_during_start_up() -> int:
    """Ctrl-C/SIGINT before the node finished starting: say so and shut rclpy down; a clean exit (0)."""
    rclpy.logging.get_logger(NODE_NAME).info("interrupted during start-up; shutting down")
    rclpy.try_shutdown()
    return 0


def build_and_spin(factory: Callable[[], HandReconNode]) -> int:
    """Construct the node with ``factory`` and spin it; Ctrl-C at any point (start-up included) exits 0."""
    try:
        node = factory()
    except KeyboardInterrupt:
        return _interrupted_during_start_up()
    except Exception:
        # A SIGINT while the node is being built lets rclpy shut the context down first; the next rcl call (a
        # create_publisher, say) then fails with "context is invalid": that is the Ctrl-C, not a fault.
        if not rclpy.ok():
            return _interrupted_during_start_up()
        raise
    return spin_until_shutdown(node)


def spin_until_shutdown(node: HandReconNode) -> int:
    """Spin ``node`` until Ctrl-C/SIGINT or an external shutdown, then stop its threads and rclpy cleanly."""
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.close()
        executor.shutdown()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
