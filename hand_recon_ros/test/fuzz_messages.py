"""Malformed Image / CompressedImage / CameraInfo messages with good frames interleaved, sent to a running node.

Shared by ``benchmarks/fuzz_node.py`` (>= 10,000 messages, real pipeline) and ``test_ros_fuzz.py`` (500,
fake pipeline). Two phases, one node process each: raw (Image + CameraInfo) and compressed (CompressedImage +
CameraInfo). Good frames carry stamps from GOOD_STAMP_BASE_S, malformed ones from BAD_STAMP_BASE_S, so every
HandArray says which it answers. After the fuzz, AFTER_FRAMES good frames are sent one at a time and each
awaited: the node must still answer them.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from test_ros_peer import Peer, make_camera_info, make_image_msg, start_node, status_values, stop_node  # noqa: E402

GOOD_STAMP_BASE_S = 1_000.0
BAD_STAMP_BASE_S = 1_000_000.0
# One message in GOOD_EVERY is a good frame (with its CameraInfo just before).
GOOD_EVERY = 10
AFTER_FRAMES = 20
AFTER_WAIT_S = 5.0
DRAIN_S = 2.0
# Pause between two published messages (s): about 1,000 messages/s, below what DDS drops outright.
SEND_INTERVAL_S = 0.001
FRAME_ID = "camera_optical_frame"


@dataclasses.dataclass
class PhaseReport:
    """What one phase sent and what came back."""

    transport: str
    sent: int = 0
    good_sent: int = 0
    kinds: Counter = dataclasses.field(default_factory=Counter)
    good_answered_during: int = 0
    bad_answered: int = 0
    after_sent: int = 0
    after_answered: int = 0
    crashed: bool = False
    exit_code: int | None = None
    tracebacks: int = 0
    errors: dict[str, str] = dataclasses.field(default_factory=dict)
    seconds: float = 0.0


def _stamp(msg: Any, stamp_s: float) -> Any:
    msg.header.stamp.sec = int(stamp_s)
    msg.header.stamp.nanosec = int(round((stamp_s % 1.0) * 1e9)) % 1_000_000_000
    msg.header.frame_id = FRAME_ID
    return msg


def _image(height: int, width: int, encoding: str, step: int, data: bytes, big: int = 0) -> Any:
    from sensor_msgs.msg import Image

    msg = Image()
    msg.height, msg.width, msg.encoding, msg.step, msg.is_bigendian = height, width, encoding, step, big
    msg.data = data
    return msg


def _compressed(data: bytes, fmt: str) -> Any:
    from sensor_msgs.msg import CompressedImage

    msg = CompressedImage()
    msg.format, msg.data = fmt, data
    return msg


def bad_images(rng: np.random.Generator) -> list[tuple[str, Callable[[], Any]]]:
    """(kind, factory) for malformed sensor_msgs/Image messages."""
    def noise(n: int) -> bytes:
        return rng.integers(0, 256, n, dtype=np.uint8).tobytes()

    return [
        ("image/unknown-encoding", lambda: _image(8, 8, "bayer_rggb8", 8, noise(64))),
        ("image/empty-encoding", lambda: _image(8, 8, "", 24, noise(192))),
        ("image/zero-size", lambda: _image(0, 16, "rgb8", 48, b"")),
        ("image/short-data", lambda: _image(48, 64, "rgb8", 192, noise(100))),
        ("image/step-too-small", lambda: _image(48, 64, "rgb8", 10, noise(480))),
        ("image/huge-header", lambda: _image(100_000, 100_000, "rgb8", 300_000, noise(64))),
        ("image/max-side-short-data", lambda: _image(16_384, 16_384, "mono16", 32_768, noise(1000))),
        ("image/yuv-odd-width", lambda: _image(4, 5, "yuv422", 10, noise(40))),
        ("image/one-pixel", lambda: _image(1, 1, "rgb8", 3, noise(3))),
        ("image/no-data", lambda: _image(48, 64, "bgr8", 192, b"")),
        ("image/noise-mono16-odd-endian", lambda: _image(48, 64, "mono16", 128, noise(128 * 48), big=7)),
        ("image/noise-rgba8", lambda: _image(48, 64, "rgba8", 256, noise(256 * 48))),
        ("image/16UC1-dark", lambda: _image(48, 64, "16UC1", 128, np.full((48, 64), 3, "<u2").tobytes())),
        ("image/bgr8-step-padding-short", lambda: _image(48, 64, "bgr8", 200, noise(200 * 47))),
    ]


def bad_compressed(rng: np.random.Generator, jpeg: bytes) -> list[tuple[str, Callable[[], Any]]]:
    """(kind, factory) for malformed sensor_msgs/CompressedImage messages."""
    png_1x1 = cv2.imencode(".png", np.zeros((1, 1, 3), np.uint8))[1].tobytes()
    # A PNG that declares 30000x30000 (the IHDR of one: decoding a full one allocated 5 GB)
    huge_png = png_1x1[:16] + (30000).to_bytes(4, "big") * 2 + png_1x1[24:]
    return [
        ("compressed/empty", lambda: _compressed(b"", "jpeg")),
        ("compressed/noise", lambda: _compressed(rng.integers(0, 256, 2000, dtype=np.uint8).tobytes(), "jpeg")),
        ("compressed/truncated-jpeg", lambda: _compressed(jpeg[: len(jpeg) // 3], "jpeg")),
        ("compressed/jpeg-header-only", lambda: _compressed(jpeg[:20], "jpeg")),
        ("compressed/png-signature-only", lambda: _compressed(b"\x89PNG\r\n\x1a\n", "png")),
        ("compressed/one-pixel-png", lambda: _compressed(png_1x1, "png")),
        ("compressed/wrong-format-name", lambda: _compressed(png_1x1, "rgb8; compressedDepth")),
        ("compressed/png-declares-30000x30000", lambda: _compressed(huge_png, "png")),
        ("compressed/flipped-bytes", lambda: _compressed(bytes(b ^ 0xFF for b in jpeg[:4000]), "jpeg")),
    ]


def bad_camera_infos(width: int, height: int) -> list[tuple[str, Callable[[], Any]]]:
    """(kind, factory) for malformed or hostile sensor_msgs/CameraInfo messages (some of the image's size)."""
    def info(**fields: Any) -> Any:
        msg = make_camera_info(width, height, FRAME_ID)
        for name, value in fields.items():
            setattr(msg, name, value)
        return msg

    nan_k = [float("nan")] * 9
    return [
        ("camera_info/nan-k", lambda: info(k=nan_k)),
        ("camera_info/negative-focal", lambda: info(k=[-500.0, 0, 32, 0, 500.0, 24, 0, 0, 1])),
        ("camera_info/zero-k", lambda: info(k=[0.0] * 9)),
        ("camera_info/inf-d", lambda: info(d=[float("inf"), 0.0, 0.0, 0.0, 0.0])),
        ("camera_info/d-wrong-length", lambda: info(d=[0.1, 0.2, 0.3])),
        ("camera_info/fisheye-5-coefficients", lambda: info(distortion_model="equidistant", d=[0.1] * 5)),
        ("camera_info/unknown-model", lambda: info(distortion_model="kannala_brandt", d=[0.1] * 8)),
        ("camera_info/zero-size", lambda: info(width=0, height=0)),
        ("camera_info/tiny-focal", lambda: info(k=[1e-3, 0, 32, 0, 1e-3, 24, 0, 0, 1])),
        ("camera_info/huge-focal", lambda: info(k=[1e12, 0, 32, 0, 1e12, 24, 0, 0, 1])),
        ("camera_info/strong-distortion", lambda: info(d=[50.0, -80.0, 3.0, -3.0, 200.0])),
        ("camera_info/other-size", lambda: info(width=width * 3, height=height * 5)),
    ]


def _good_stamps(hands: list[tuple[float, Any]]) -> tuple[set[float], int]:
    good, bad = set(), 0
    for _, msg in hands:
        stamp_s = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        if stamp_s >= BAD_STAMP_BASE_S:
            bad += 1
        elif stamp_s >= GOOD_STAMP_BASE_S:
            good.add(round(stamp_s, 3))
    return good, bad


def run_phase(domain_id: int, transport: str, messages: int, good_rgb: np.ndarray, fake: bool,
              seed: int = 13, params: dict[str, Any] | None = None,
              log: Callable[[str], None] = lambda _: None) -> PhaseReport:
    """Start a node (``transport`` raw or compressed), fuzz it with ``messages`` messages, then probe it."""
    rng = np.random.default_rng(seed)
    height, width = good_rgb.shape[:2]
    jpeg = cv2.imencode(".jpg", cv2.cvtColor(good_rgb, cv2.COLOR_RGB2BGR))[1].tobytes()
    bad = (bad_compressed(rng, jpeg) if transport == "compressed" else bad_images(rng)) + \
        bad_camera_infos(width, height)
    report = PhaseReport(transport)
    node_params = {"image_transport": transport, "no_image_timeout_s": 60.0, **(params or {})}
    process = start_node(domain_id, node_params, fake=fake)
    peer = Peer(domain_id, image_topic="image/compressed" if transport == "compressed" else "image")
    output = ""
    try:
        if transport == "raw":
            peer.wait_for_node(timeout_s=120.0)
        else:
            _wait_compressed(peer, jpeg)
        with peer.lock:
            peer.hands.clear()
        good_info = make_camera_info(width, height, FRAME_ID)

        def good_message(stamp_s: float) -> Any:
            if transport == "compressed":
                return _stamp(_compressed(jpeg, "jpeg"), stamp_s)
            return make_image_msg(good_rgb, stamp_s, FRAME_ID)

        started = time.monotonic()
        for i in range(messages):
            if i % GOOD_EVERY == 0:
                peer.info_pub.publish(_stamp(good_info, 0.0))
                peer.image_pub.publish(good_message(GOOD_STAMP_BASE_S + report.good_sent))
                report.good_sent += 1
                report.kinds["good"] += 1
            else:
                kind, factory = bad[int(rng.integers(len(bad)))]
                msg = _stamp(factory(), BAD_STAMP_BASE_S + i)
                (peer.info_pub if kind.startswith("camera_info") else peer.image_pub).publish(msg)
                report.kinds[kind] += 1
            report.sent += 1
            if process.poll() is not None:
                report.crashed = True
                break
            time.sleep(SEND_INTERVAL_S)
            if log and i and i % 2000 == 0:
                log(f"  {transport}: {i} sent")
        time.sleep(DRAIN_S)
        report.seconds = time.monotonic() - started
        with peer.lock:
            good, report.bad_answered = _good_stamps(peer.hands)
        report.good_answered_during = len(good)
        # After: the node must still answer good frames, one at a time.
        for j in range(AFTER_FRAMES):
            if process.poll() is not None:
                report.crashed = True
                break
            stamp_s = GOOD_STAMP_BASE_S + report.good_sent + 10_000 + j
            peer.info_pub.publish(_stamp(good_info, 0.0))
            peer.image_pub.publish(good_message(stamp_s))
            report.after_sent += 1
            if peer.wait_for(lambda s=stamp_s: bool(peer.hands_with_stamp(s)), AFTER_WAIT_S):
                report.after_answered += 1
        time.sleep(1.2)  # one more diagnostics period
        status = peer.latest_status()
        if status is not None:
            report.errors = {k: v for k, v in status_values(status).items()
                             if k.startswith(("errors", "warning", "last error"))}
    finally:
        peer.close()
        if process.poll() is not None and not report.crashed and report.after_sent < AFTER_FRAMES:
            report.crashed = True
        report.exit_code, output = stop_node(process)
    report.tracebacks = output.count("Traceback")
    if report.exit_code not in (0, None):
        report.crashed = True
    return report


def _wait_compressed(peer: Peer, jpeg: bytes, timeout_s: float = 120.0) -> None:
    """Like Peer.wait_for_node, with JPEG probes on image/compressed."""
    deadline = time.monotonic() + timeout_s
    probe = 0
    while time.monotonic() < deadline:
        probe += 1
        peer.image_pub.publish(_stamp(_compressed(jpeg, "jpeg"), 1.0 + probe))
        if peer.wait_for(lambda: bool(peer.hands), 0.5):
            return
    raise AssertionError("the compressed node did not answer a probe")
