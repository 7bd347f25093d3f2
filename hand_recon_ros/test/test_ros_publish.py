"""`hand-recon publish` over real DDS: images from a folder arrive as Image + CameraInfo with matching headers."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import rclpy  # noqa: E402  (required: a missing rclpy is a failure, never a skip)
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402

from hand_recon_ros.io.image_conversion import image_msg_to_rgb  # noqa: E402
from hand_recon_ros.ros.camera_publisher import SourceError, camera_info_topic_for, iter_source_frames  # noqa: E402

DOMAIN_ID = 72 + os.getpid() % 30  # 72..101
RUN_TIMEOUT_S = 60.0


@pytest.fixture
def image_folder(tmp_path: Path) -> tuple[Path, list[np.ndarray]]:
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 256, (24, 32, 3), dtype=np.uint8) for _ in range(3)]
    for i, rgb in enumerate(frames):
        assert cv2.imwrite(str(tmp_path / f"frame_{i:02d}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    (tmp_path / "notes.txt").write_text("not an image")
    return tmp_path, frames


def test_camera_info_topic_sits_beside_the_image_topic() -> None:
    assert camera_info_topic_for("image") == "camera_info"
    assert camera_info_topic_for("/cam/image_raw") == "/cam/camera_info"
    assert camera_info_topic_for("/image") == "/camera_info"
    assert camera_info_topic_for("front/image") == "front/camera_info"


def test_source_frames_loop_and_errors(image_folder, tmp_path: Path) -> None:
    folder, frames = image_folder
    looped = iter_source_frames(str(folder), loop=True)
    got = [next(looped) for _ in range(7)]
    for i, rgb in enumerate(got):
        np.testing.assert_array_equal(rgb, frames[i % 3])
    assert len(list(iter_source_frames(str(folder)))) == 3
    with pytest.raises(SourceError, match="not found"):
        list(iter_source_frames(str(tmp_path / "missing.mp4")))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SourceError, match="gave no frames"):
        list(iter_source_frames(str(empty)))


def _listen(topic_image: str, topic_info: str):
    os.environ["ROS_DOMAIN_ID"] = str(DOMAIN_ID)
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=DOMAIN_ID)
    node = rclpy.create_node("publish_listener", context=context)
    images: list[Image] = []
    infos: list[CameraInfo] = []
    node.create_subscription(Image, topic_image, images.append, qos_profile_sensor_data)
    node.create_subscription(CameraInfo, topic_info, infos.append, qos_profile_sensor_data)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()

    def close() -> None:
        executor.shutdown()
        thread.join(5.0)
        node.destroy_node()
        rclpy.try_shutdown(context=context)

    return images, infos, close


def test_publish_folder_with_intrinsics(image_folder) -> None:
    folder, frames = image_folder
    images, infos, close = _listen("/cam/image_raw", "/cam/camera_info")
    try:
        env = dict(os.environ, ROS_DOMAIN_ID=str(DOMAIN_ID))
        done = subprocess.run(
            [sys.executable, "-m", "hand_recon_ros.cli", "publish", str(folder), "--rate", "20", "--loop",
             "--count", "60", "--topic", "/cam/image_raw", "--frame-id", "cam_optical", "--intrinsics",
             "40,41,16,12", "--wait-for-subscriber", "20"],  # discovery can outlast 60 frames on a busy host
            env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
        )
        time.sleep(0.3)
    finally:
        close()
    assert done.returncode == 0, done.stderr
    assert "published 60 frames" in done.stderr
    assert len(images) >= 10, f"only {len(images)} of 60 images arrived"
    for msg in images:
        rgb = image_msg_to_rgb(msg)
        assert any(np.array_equal(rgb, f) for f in frames)
        assert msg.header.frame_id == "cam_optical"
    stamps = [m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 for m in images]
    assert all(b > a for a, b in zip(stamps, stamps[1:]))
    info_by_stamp = {(i.header.stamp.sec, i.header.stamp.nanosec): i for i in infos}
    matched = [info_by_stamp.get((m.header.stamp.sec, m.header.stamp.nanosec)) for m in images]
    assert sum(i is not None for i in matched) >= len(images) // 2
    info = next(i for i in matched if i is not None)
    assert list(info.k) == [40.0, 0.0, 16.0, 0.0, 41.0, 12.0, 0.0, 0.0, 1.0]
    assert (info.width, info.height, info.header.frame_id) == (32, 24, "cam_optical")


def test_publish_refuses_bad_source_and_intrinsics(image_folder, tmp_path: Path) -> None:
    folder, _ = image_folder
    env = dict(os.environ, ROS_DOMAIN_ID=str(DOMAIN_ID))
    base = [sys.executable, "-m", "hand_recon_ros.cli", "publish"]
    missing = subprocess.run([*base, str(tmp_path / "nope.mp4")], env=env, capture_output=True, text=True,
                             timeout=RUN_TIMEOUT_S)
    assert missing.returncode == 2 and "nope.mp4" in missing.stderr
    bad = subprocess.run([*base, str(folder), "--intrinsics", "1,2,3"], env=env, capture_output=True, text=True,
                         timeout=RUN_TIMEOUT_S)
    assert bad.returncode == 2 and "--intrinsics" in bad.stderr and "'3'" in bad.stderr


def test_publish_summary_shows_the_whole_chain(image_folder) -> None:
    """publisher process -> node process (fake pipeline) -> `hands` back to the publisher's --summary."""
    sys.path.insert(0, str(Path(__file__).parent))
    from test_ros_peer import start_node, stop_node

    folder, _ = image_folder
    domain = DOMAIN_ID
    node = start_node(domain, extra_args=["-r", "image:=/chain/image", "-r", "camera_info:=/chain/camera_info"])
    try:
        env = dict(os.environ, ROS_DOMAIN_ID=str(domain))
        done = subprocess.run(
            [sys.executable, "-m", "hand_recon_ros.cli", "publish", str(folder), "--topic", "/chain/image",
             "--rate", "10", "--loop", "--count", "15", "--summary", "--intrinsics", "40,40,16,12"],
            env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
        )
    finally:
        code, output = stop_node(node)
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if "camera_optical_frame:" in line]
    assert len(lines) >= 5, done.stdout
    assert "left 0.90 wrist z 0.50 m, right 0.90 wrist z 0.50 m" in lines[-1]  # the fake pipeline's two hands
    assert "assumed intrinsics" not in lines[-1]
    summary = done.stdout.strip().splitlines()[-1]
    assert summary.startswith("15 frames published,") and "2.00 hands per frame" in summary
    assert code == 0, output


def test_publish_summary_without_answers_is_a_failure(image_folder) -> None:
    """--summary with no node answering exits 1 naming the hands topic (it exited 0, so `make demo` passed)."""
    folder, _ = image_folder
    env = dict(os.environ, ROS_DOMAIN_ID=str(DOMAIN_ID))
    done = subprocess.run(
        [sys.executable, "-m", "hand_recon_ros.cli", "publish", str(folder), "--topic", "/nobody/image",
         "--hands-topic", "/nobody/hands", "--rate", "0", "--count", "3", "--summary", "--wait-for-subscriber", "0"],
        env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
    )
    assert done.returncode == 1, done.stderr
    assert "no HandArray came back on /nobody/hands" in done.stderr
