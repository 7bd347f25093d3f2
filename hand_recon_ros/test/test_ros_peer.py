"""Support for the DDS tests (no tests here): a deterministic fake pipeline, a node runner and a test peer.

Run as a script (``python test_ros_peer.py fake-node --ros-args ...``) it starts HandReconNode with
FakePipeline in its own process; the pytest process then talks to it over real DDS through ``Peer``.

FakePipeline stands in for HandPipeline where the pipeline is not the subject (burst/drop behaviour, marker
rules, malformed input, shutdown). What it returns is chosen by the first pixel of the image:
red channel 0 -> no hand, 1 -> left only, 2 -> right only, 4 -> a right hand whose palm is collapsed (finite joints
no retargeter can use), anything else -> both hands; green 255 -> raise.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

SRC_ROOT = Path(__file__).resolve().parents[1]
if str(SRC_ROOT) not in sys.path:
    sys.path.insert(0, str(SRC_ROOT))

from hand_recon_ros.pipeline.types import (  # noqa: E402
    CameraIntrinsics,
    FrameResult,
    HandDetection,
    HandMesh,
    HandResult,
    RotatedRect,
)

# Simulated inference time of the fake pipeline (ms); the burst test publishes 10x faster than this allows.
FAKE_PROCESS_MS = float(os.environ.get("FAKE_PROCESS_MS", "40"))
DISCOVERY_TIMEOUT_S = 20.0
TRACK_IDS_PER_RESET = 10
# Red value of the first pixel that makes the fake pipeline return a right hand with a collapsed palm.
COLLAPSED_PALM_RED = 4
# Header stamps (s) of the probe images sent while waiting for the node; tests use larger stamps.
PROBE_STAMP_S = 1.0
# A unit cube: 8 vertices, 12 triangles (36 TRIANGLE_LIST points per hand).
CUBE_VERTICES = np.array([[x, y, z] for x in (0, 1) for y in (0, 1) for z in (0, 1)], dtype=np.float32) * 0.05
CUBE_FACES = np.array(
    [[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
     [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]],
    dtype=np.int32,
)


def synthetic_hand(side: str, with_mesh: bool) -> HandResult:
    """A plausible open hand 0.5 m in front of the camera, left at x<0, right at x>0."""
    x0 = -0.1 if side == "left" else 0.1
    joints = np.zeros((21, 3), dtype=np.float32)
    joints[0] = (x0, 0.05, 0.5)
    for finger in range(5):
        for k in range(4):
            joints[1 + finger * 4 + k] = (x0 + (finger - 2) * 0.02, 0.05 - 0.025 * (k + 1), 0.5)
    keypoints = joints[:, :2] / joints[:, 2:] * 500.0 + np.array([320.0, 240.0], dtype=np.float32)
    detection = HandDetection(
        side=side, score=0.9, side_score=0.95, keypoints_2d=keypoints, keypoints_z=np.zeros(21, np.float32),
        world_landmarks=joints - joints[0], roi=RotatedRect(320.0, 240.0, 100.0, 100.0, 0.0),
        track_id=0 if side == "left" else 1,
    )
    mesh = HandMesh(CUBE_VERTICES + joints[0], CUBE_FACES) if with_mesh else None
    return HandResult(detection, joints, np.full(21, 0.8, np.float32), joints[0].copy(),
                      np.array([0.0, 0.0, 0.0, 1.0], np.float32), mesh)


class FakePipeline:
    """HandPipeline's interface with fixed processing time and image-chosen output (see module docstring)."""

    backend_description = "fake-pipeline (test double)"

    def __init__(self, process_ms: float = FAKE_PROCESS_MS) -> None:
        self.process_s = process_ms / 1e3
        self.settings: dict[str, Any] = {"max_hands": 2, "mesh": False}
        self.resets = 0

    def process(self, image_rgb: np.ndarray, intrinsics: CameraIntrinsics | None, timestamp_s: float) -> FrameResult:
        """Sleep like an inference, then return the hands the first pixel asks for."""
        time.sleep(self.process_s)
        red, green = int(image_rgb[0, 0, 0]), int(image_rgb[0, 0, 1])
        if green == 255:
            raise RuntimeError("fake inference failure requested by the image")
        sides = {0: [], 1: ["left"], 2: ["right"], COLLAPSED_PALM_RED: ["right"]}.get(red, ["left", "right"])
        hands = [synthetic_hand(s, self.settings["mesh"]) for s in sides][: self.settings["max_hands"]]
        if red == COLLAPSED_PALM_RED:
            hands[0].joints_3d[[5, 9]] = hands[0].joints_3d[0]  # index and middle MCP on the wrist
        for hand in hands:  # new track ids after every reset, so a reset is visible from outside
            hand.detection.track_id += TRACK_IDS_PER_RESET * self.resets
        h, w = image_rgb.shape[:2]
        known = intrinsics is not None and intrinsics.known
        return FrameResult(w, h, known, hands, {"total": self.process_s * 1e3})

    def update(self, **changes: Any) -> None:
        """Record live changes (max_hands and mesh change the output)."""
        self.settings.update(changes)

    def reset(self) -> None:
        """Count resets (they show in the track ids)."""
        self.resets += 1

    def close(self) -> None:
        """Say so on stdout, so a test reading the node's output sees that the node released its pipeline."""
        print(FAKE_CLOSED_BANNER, flush=True)


def run_fake_node(argv: list[str]) -> int:
    """Process entry: HandReconNode with FakePipeline, spun like ``hand_recon_ros.ros.node.main``."""
    import rclpy

    from hand_recon_ros.ros.malloc_tuning import keep_freed_buffers
    from hand_recon_ros.ros.node import HandReconNode, build_and_spin

    delay_s = float(os.environ.get(START_DELAY_ENV, "0"))

    def build() -> HandReconNode:
        if delay_s > 0:  # a slow start-up (like loading real models), announced so a test can interrupt it
            print(STARTING_BANNER, flush=True)
            # Short sleeps that stop once rclpy's SIGINT handler has shut the context down (it may do so without
            # a KeyboardInterrupt reaching this thread): the node's construction then fails on the dead context,
            # which build_and_spin must turn into a clean "interrupted during start-up" exit.
            until = time.monotonic() + delay_s
            while time.monotonic() < until and rclpy.ok():
                time.sleep(0.1)
        return HandReconNode(pipeline=FakePipeline())

    keep_freed_buffers()  # as the real entry points do (ros/node_start.py)
    rclpy.init(args=argv)
    return build_and_spin(build)


def run_fake_lifecycle_node(argv: list[str]) -> int:
    """Process entry: HandReconLifecycleNode building a FakePipeline at configure, spun like its ``main``."""
    import rclpy

    from hand_recon_ros.ros.lifecycle_node import HandReconLifecycleNode, spin_until_finalized

    rclpy.init(args=argv)
    return spin_until_finalized(HandReconLifecycleNode(pipeline_factory=FakePipeline))


# Printed by FakePipeline.close().
FAKE_CLOSED_BANNER = "fake pipeline: closed"
# The fake node waits this long (seconds) before constructing HandReconNode, printing STARTING_BANNER first.
START_DELAY_ENV = "HAND_RECON_FAKE_NODE_START_DELAY_S"
STARTING_BANNER = "fake node: starting up"


def start_node(domain_id: int, params: dict[str, Any] | None = None, fake: bool = True,
               extra_args: list[str] | None = None, env: dict[str, str] | None = None,
               lifecycle: bool = False) -> subprocess.Popen:
    """Start the node (``lifecycle``: the managed one) in its own process, fake pipeline or the real one."""
    args = ["--ros-args"]
    for name, value in (params or {}).items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        args += ["-p", f"{name}:={text}"]
    args += extra_args or []
    if fake:
        mode = "fake-lifecycle-node" if lifecycle else "fake-node"
        command = [sys.executable, str(Path(__file__).resolve()), mode, *args]
    else:
        module = "hand_recon_ros.ros.lifecycle_node" if lifecycle else "hand_recon_ros.ros.node"
        command = [sys.executable, "-m", module, *args]
    env = dict(os.environ, **(env or {}), ROS_DOMAIN_ID=str(domain_id), PYTHONUNBUFFERED="1")
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def stop_node(process: subprocess.Popen, timeout_s: float = 15.0) -> tuple[int, str]:
    """SIGINT the node process; return its exit code and output."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
    try:
        output, _ = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
        return -9, output
    return process.returncode, output


def make_image_msg(rgb: np.ndarray, stamp_s: float, frame_id: str, encoding: str = "rgb8") -> Any:
    """A sensor_msgs/Image with ``rgb`` (H, W, C uint8) under the given stamp and frame."""
    from sensor_msgs.msg import Image

    msg = Image()
    msg.header.stamp.sec = int(stamp_s)
    msg.header.stamp.nanosec = int(round((stamp_s % 1.0) * 1e9)) % 1_000_000_000
    msg.header.frame_id = frame_id
    msg.height, msg.width = rgb.shape[:2]
    msg.encoding = encoding
    msg.step = rgb.shape[1] * (rgb.shape[2] if rgb.ndim == 3 else 1) * rgb.itemsize
    msg.data = np.ascontiguousarray(rgb).tobytes()
    return msg


def make_camera_info(width: int, height: int, frame_id: str, f_px: float = 500.0) -> Any:
    """A calibrated sensor_msgs/CameraInfo for a width x height image."""
    from sensor_msgs.msg import CameraInfo

    msg = CameraInfo()
    msg.header.frame_id = frame_id
    msg.width, msg.height = width, height
    msg.k = [f_px, 0.0, width / 2.0, 0.0, f_px, height / 2.0, 0.0, 0.0, 1.0]
    msg.d = [0.0] * 5
    msg.distortion_model = "plumb_bob"
    return msg


def first_pixel_image(red: int, width: int = 64, height: int = 48, green: int = 0) -> np.ndarray:
    """An rgb8 image whose first pixel selects the fake pipeline's output."""
    rgb = np.full((height, width, 3), 100, dtype=np.uint8)
    rgb[0, 0] = (red, green, 0)
    return rgb


class Peer:
    """The test side over DDS: publishes images/CameraInfo, records node outputs, sets parameters."""

    def __init__(self, domain_id: int, node_name: str = "hand_recon_test_peer",
                 image_topic: str = "image") -> None:
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from hand_recon_msgs.msg import HandArray
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import CameraInfo, CompressedImage, Image
        from visualization_msgs.msg import MarkerArray

        os.environ["ROS_DOMAIN_ID"] = str(domain_id)
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = rclpy.create_node(node_name, context=self.context)
        self.lock = threading.Condition()
        self.hands: list[tuple[float, Any]] = []  # (receive wall time, HandArray)
        # header stamp (sec, nanosec) of each HandArray -> its DDS source and reception stamps (ns, rmw MessageInfo)
        self.hand_dds_stamps: dict[tuple[int, int], tuple[int, int]] = {}
        self.markers: list[Any] = []
        self.diagnostics: list[Any] = []
        self.overlays: list[Any] = []
        reliable = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        self.node.create_subscription(HandArray, "hands", self._record_hands, reliable)
        self.node.create_subscription(MarkerArray, "hands/markers", self._recorder(self.markers), reliable)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._recorder(self.diagnostics), reliable)
        image_type = CompressedImage if image_topic.endswith("compressed") else Image
        self.image_pub = self.node.create_publisher(image_type, image_topic, reliable)
        self.info_pub = self.node.create_publisher(CameraInfo, "camera_info", reliable)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def _recorder(self, store: list, timed: bool = False) -> Callable[[Any], None]:
        def record(msg: Any) -> None:
            with self.lock:
                store.append((time.time(), msg) if timed else msg)
                self.lock.notify_all()

        return record

    def _record_hands(self, msg: Any, info: Any) -> None:
        """Keep the HandArray with its receive time, and its DDS stamps by header stamp (for the latency benchmark)."""
        received = time.time()
        with self.lock:
            self.hands.append((received, msg))
            stamp = (msg.header.stamp.sec, msg.header.stamp.nanosec)
            self.hand_dds_stamps[stamp] = (info["source_timestamp"], info["received_timestamp"])
            self.lock.notify_all()

    def subscribe_overlay(self) -> None:
        """Subscribe to hands/overlay (the node draws it only while someone listens)."""
        from rclpy.qos import qos_profile_sensor_data
        from sensor_msgs.msg import Image

        self.node.create_subscription(Image, "hands/overlay", self._recorder(self.overlays), qos_profile_sensor_data)

    def wait_for(self, predicate: Callable[[], bool], timeout_s: float) -> bool:
        """Wait until ``predicate()`` (evaluated under the lock) holds."""
        deadline = time.monotonic() + timeout_s
        with self.lock:
            while not predicate():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self.lock.wait(min(remaining, 0.1))
        return True

    def wait_for_node(self, timeout_s: float = DISCOVERY_TIMEOUT_S) -> None:
        """Wait until the node's image subscription and our output subscriptions are matched."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.image_pub.get_subscription_count() > 0 and self.info_pub.get_subscription_count() > 0:
                if self.node.count_publishers("hands") > 0 and self.node.count_publishers("hands/markers") > 0:
                    break
            time.sleep(0.05)
        else:
            raise AssertionError("the node did not appear on DDS (image/camera_info/hands not matched)")
        # Matching is seen on one side first: probe until a frame makes the round trip both ways.
        probe = 0
        while time.monotonic() < deadline:
            probe += 1
            self.send(first_pixel_image(0), PROBE_STAMP_S + probe)
            if self.wait_for(lambda: bool(self.hands), 0.3):
                return
        raise AssertionError("the node is matched but no HandArray came back from a probe image")

    def send(self, rgb: np.ndarray, stamp_s: float, frame_id: str = "camera_optical_frame",
             encoding: str = "rgb8", with_info: bool = True) -> Any:
        """Publish one image (and its CameraInfo first)."""
        if with_info:
            self.info_pub.publish(make_camera_info(rgb.shape[1], rgb.shape[0], frame_id))
        msg = make_image_msg(rgb, stamp_s, frame_id, encoding)
        self.image_pub.publish(msg)
        return msg

    def hands_with_stamp(self, stamp_s: float) -> list[Any]:
        """HandArrays received with the given header stamp."""
        sec, nanosec = int(stamp_s), int(round((stamp_s % 1.0) * 1e9)) % 1_000_000_000
        return [m for _, m in self.hands if (m.header.stamp.sec, m.header.stamp.nanosec) == (sec, nanosec)]

    def markers_with_stamp(self, stamp_s: float) -> list[Any]:
        """MarkerArrays whose first marker carries the given stamp."""
        sec, nanosec = int(stamp_s), int(round((stamp_s % 1.0) * 1e9)) % 1_000_000_000
        return [a for a in self.markers if a.markers and
                (a.markers[0].header.stamp.sec, a.markers[0].header.stamp.nanosec) == (sec, nanosec)]

    def set_parameters(self, node_name: str, values: dict[str, Any], timeout_s: float = 10.0) -> list[Any]:
        """Call <node>/set_parameters; returns the SetParametersResult list."""
        from rcl_interfaces.srv import SetParameters
        from rclpy.parameter import Parameter

        request = SetParameters.Request()
        request.parameters = [Parameter(k, value=v).to_parameter_msg() for k, v in values.items()]
        return list(self.call_service(SetParameters, f"/{node_name}/set_parameters", request, timeout_s).results)

    def call_service(self, srv_type: Any, name: str, request: Any, timeout_s: float = 10.0) -> Any:
        """Call a service and wait for the response (AssertionError on timeout)."""
        client = self.node.create_client(srv_type, name)
        try:
            if not client.wait_for_service(timeout_sec=timeout_s):
                raise AssertionError(f"{name} not available")
            future = client.call_async(request)
            deadline = time.monotonic() + timeout_s
            while not future.done() and time.monotonic() < deadline:
                time.sleep(0.02)
            if not future.done():
                raise AssertionError(f"{name} timed out")
            return future.result()
        finally:
            self.node.destroy_client(client)

    def latest_status(self) -> Any:
        """The newest DiagnosticStatus from hand_recon_node (or None)."""
        with self.lock:
            for array in reversed(self.diagnostics):
                for status in array.status:
                    if "hand reconstruction" in status.name:
                        return status
        return None

    def close(self) -> None:
        """Stop spinning and shut the context down (executor first, see notes on 'terminate called')."""
        import rclpy

        self.executor.shutdown()
        self.thread.join(timeout=5.0)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


def status_values(status: Any) -> dict[str, str]:
    """KeyValue list of a DiagnosticStatus as a dict."""
    return {kv.key: kv.value for kv in status.values}


if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] == "fake-node":
    sys.exit(run_fake_node(sys.argv))
if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] == "fake-lifecycle-node":
    sys.exit(run_fake_lifecycle_node(sys.argv))
