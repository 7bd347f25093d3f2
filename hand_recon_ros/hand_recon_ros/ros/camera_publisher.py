"""A camera for people without a camera driver: webcam, video file, image file or folder -> Image + CameraInfo.

Used by ``hand-recon publish``. Images go out as rgb8 (reliable, keep-last 1), stamped
with the node clock at publication; CameraInfo goes on the sibling ``camera_info`` topic with the same header.
Without calibration the CameraInfo has K = 0, the ROS way of saying "uncalibrated", so a consumer (like
hand_recon_node) knows to assume intrinsics instead of trusting made-up ones.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hand_recon_ros.pipeline.types import CameraIntrinsics

DEFAULT_RATE_HZ = 10.0
DEFAULT_FRAME_ID = "camera_optical_frame"
# Webcams are opened by index ("0") or device path ("/dev/video0").
WEBCAM_DEVICE_PREFIX = "/dev/video"


class SourceError(ValueError):
    """A publish source that cannot be opened or holds no frames; the message names the source."""


def camera_info_topic_for(image_topic: str) -> str:
    """The CameraInfo topic beside an image topic (``/cam/image_raw`` -> ``/cam/camera_info``)."""
    head, _, _ = image_topic.rstrip("/").rpartition("/")
    return f"{head}/camera_info" if head or image_topic.startswith("/") else "camera_info"


def _source_paths(source: str) -> str:
    return f"{WEBCAM_DEVICE_PREFIX}{source}" if source.isdigit() else source


def iter_source_frames(source: str, loop: bool = False) -> Iterator[np.ndarray]:
    """RGB uint8 frames of a webcam index/device, video file, image file or image folder (repeated with ``loop``).

    Raises SourceError when the source yields no frame at all; unreadable single frames are skipped.
    """
    from hand_recon_ros.io.image_source import iter_frames

    path = _source_paths(source)
    if not path.startswith(WEBCAM_DEVICE_PREFIX) and not Path(path).exists():
        raise SourceError(f"publish source not found: {source}")
    errors: list[str] = []
    while True:
        produced = 0
        for frame in iter_frames([path]):
            if frame.image is None:
                errors.append(str(frame.error))
                continue
            produced += 1
            yield frame.image
        if produced == 0:
            detail = "; ".join(errors[:3]) or "no images or video frames"
            raise SourceError(f"publish source {source} gave no frames: {detail}")
        if not loop or path.startswith(WEBCAM_DEVICE_PREFIX):
            return


@dataclass
class PublishStats:
    """What a publish run did."""

    frames: int = 0
    elapsed_s: float = 0.0

    @property
    def rate_hz(self) -> float:
        """Achieved publication rate (intervals between the first and the last frame)."""
        return (self.frames - 1) / self.elapsed_s if self.frames > 1 and self.elapsed_s > 0 else 0.0


class CameraPublisher:
    """Publishes frames as sensor_msgs/Image + CameraInfo from an rclpy node it creates."""

    def __init__(
        self,
        topic: str = "image",
        frame_id: str = DEFAULT_FRAME_ID,
        intrinsics: CameraIntrinsics | None = None,
        node_name: str = "hand_recon_camera",
        context: Any = None,
    ) -> None:
        import rclpy
        from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import CameraInfo, Image

        self.node = rclpy.create_node(node_name, context=context)
        self.frame_id = frame_id
        self.intrinsics = intrinsics
        # Reliable keep-last 1: matches best-effort (sensor-data) readers and reliable ones such as RViz.
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.VOLATILE)
        self.image_pub = self.node.create_publisher(Image, topic, qos)
        self.info_pub = self.node.create_publisher(CameraInfo, camera_info_topic_for(topic), qos)

    def camera_info(self, width: int, height: int, header: Any) -> Any:
        """The CameraInfo for a frame: the given intrinsics (size-checked) or K = 0 (uncalibrated)."""
        from sensor_msgs.msg import CameraInfo

        from hand_recon_ros.ros.message_conversion import intrinsics_to_camera_info

        if self.intrinsics is not None:
            if (self.intrinsics.width, self.intrinsics.height) != (width, height):
                raise SourceError(
                    f"intrinsics are for {self.intrinsics.width}x{self.intrinsics.height}, frame is {width}x{height}"
                )
            return intrinsics_to_camera_info(self.intrinsics, header)
        info = CameraInfo()
        info.header = header
        info.width, info.height = width, height
        return info

    def publish(self, rgb: np.ndarray) -> Any:
        """Publish one RGB frame (stamped now) and its CameraInfo; returns the Image message."""
        from std_msgs.msg import Header

        from hand_recon_ros.ros.image_message import rgb_to_image_msg

        header = Header()
        header.stamp = self.node.get_clock().now().to_msg()
        header.frame_id = self.frame_id
        self.info_pub.publish(self.camera_info(rgb.shape[1], rgb.shape[0], header))
        msg = rgb_to_image_msg(rgb, header)
        self.image_pub.publish(msg)
        return msg

    def run(
        self,
        frames: Iterator[np.ndarray],
        rate_hz: float = DEFAULT_RATE_HZ,
        count: int | None = None,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> PublishStats:
        """Publish ``frames`` at ``rate_hz`` (0 = as fast as possible) until exhausted, ``count`` or stop."""
        if rate_hz < 0 or not np.isfinite(rate_hz):
            raise ValueError(f"rate must be >= 0 Hz, got {rate_hz}")
        period_s = 1.0 / rate_hz if rate_hz > 0 else 0.0
        stats = PublishStats()
        start = time.monotonic()
        for rgb in frames:
            if should_stop() or (count is not None and stats.frames >= count):
                break
            target = start + stats.frames * period_s
            delay = target - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self.publish(rgb)
            stats.frames += 1
        stats.elapsed_s = time.monotonic() - start
        return stats

    def close(self) -> None:
        """Destroy the node."""
        self.node.destroy_node()


def wait_for_subscriber(publisher: Any, timeout_s: float) -> bool:
    """Wait until ``publisher`` has a subscriber (e.g. hand_recon_node discovered), up to ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while publisher.get_subscription_count() == 0:
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


class HandsListener:
    """Listens to a HandArray topic on the publisher's node and summarises what comes back (``--summary``).

    Latency is now - header.stamp, valid because the publisher stamps with the same host clock.
    """

    def __init__(self, node: Any, topic: str = "hands", printer: Callable[[str], None] = print) -> None:
        from hand_recon_msgs.msg import HandArray
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile, ReliabilityPolicy

        self._node = node
        self._printer = printer
        self.latencies_ms: list[float] = []
        self.hands_per_frame: list[int] = []
        self._subscription = node.create_subscription(
            HandArray, topic, self.on_hands, QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        )
        self._executor = SingleThreadedExecutor(context=node.context)
        self._executor.add_node(node)
        import threading

        self._thread = threading.Thread(target=self._executor.spin, name="hands_listener", daemon=True)
        self._thread.start()

    def on_hands(self, msg: Any) -> None:
        """Record and print one HandArray."""
        now_s = self._node.get_clock().now().nanoseconds * 1e-9
        latency_ms = (now_s - (msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9)) * 1e3
        self.latencies_ms.append(latency_ms)
        self.hands_per_frame.append(len(msg.hands))
        hands = ", ".join(
            f"{'left' if h.side == h.LEFT else 'right'} {h.score:.2f} wrist z {h.wrist_pose.position.z:.2f} m"
            for h in msg.hands
        ) or "no hand"
        intrinsics = "" if msg.intrinsics_known else " (assumed intrinsics)"
        self._printer(f"{msg.header.stamp.sec}.{msg.header.stamp.nanosec:09d} {msg.header.frame_id}: {hands}; "
                      f"latency {latency_ms:.1f} ms{intrinsics}")

    def summary(self, published: int) -> str:
        """One line: frames answered, hands per frame, latency p50/p95."""
        if not self.latencies_ms:
            return f"{published} frames published, no HandArray came back (is hand_recon_node running?)"
        p50, p95 = np.percentile(self.latencies_ms, [50, 95])
        return (f"{published} frames published, {len(self.latencies_ms)} HandArrays received, "
                f"{np.mean(self.hands_per_frame):.2f} hands per frame, latency p50 {p50:.1f} ms, p95 {p95:.1f} ms")

    def close(self) -> None:
        """Stop the executor thread (before rclpy shuts down)."""
        self._executor.shutdown()
        self._thread.join(timeout=5.0)
        self._node.destroy_subscription(self._subscription)
