"""io.bag_reader: rosbag2 files (MCAP and sqlite3) written with rosbags' writer, read back as RGB images."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from hand_recon_ros.io.bag_reader import BagError, iter_bag_images, list_image_topics
from hand_recon_ros.io.image_conversion import ImageConversionError

TYPESTORE = get_typestore(Stores.ROS2_HUMBLE)
Image = TYPESTORE.types["sensor_msgs/msg/Image"]
CompressedImage = TYPESTORE.types["sensor_msgs/msg/CompressedImage"]
Header = TYPESTORE.types["std_msgs/msg/Header"]
Time = TYPESTORE.types["builtin_interfaces/msg/Time"]
String = TYPESTORE.types["std_msgs/msg/String"]


def _frames(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    return [rng.integers(0, 256, (12, 16, 3), dtype=np.uint8) for _ in range(n)]


def _header(sec: int, nanosec: int, frame: str):
    return Header(stamp=Time(sec=sec, nanosec=nanosec), frame_id=frame)


def _write_bag(path: Path, storage: StoragePlugin, frames: list[np.ndarray], broken_last: bool = False) -> None:
    with Writer(path, version=8, storage_plugin=storage) as writer:
        raw = writer.add_connection("/cam/image_raw", Image.__msgtype__, typestore=TYPESTORE)
        jpeg = writer.add_connection("/cam/image_raw/compressed", CompressedImage.__msgtype__, typestore=TYPESTORE)
        text = writer.add_connection("/chatter", String.__msgtype__, typestore=TYPESTORE)
        for i, rgb in enumerate(frames):
            bgr = np.ascontiguousarray(rgb[..., ::-1])
            # bgr8 with row padding (step > width*3) so step handling is exercised
            padded = np.zeros((rgb.shape[0], rgb.shape[1] * 3 + 4), np.uint8)
            padded[:, : rgb.shape[1] * 3] = bgr.reshape(rgb.shape[0], -1)
            msg = Image(header=_header(100 + i, 5_000_000, "cam_optical"), height=rgb.shape[0], width=rgb.shape[1],
                        encoding="bgr8", is_bigendian=0, step=padded.shape[1], data=padded.reshape(-1))
            if broken_last and i == len(frames) - 1:
                msg = Image(header=_header(100 + i, 0, "cam_optical"), height=rgb.shape[0], width=rgb.shape[1],
                            encoding="bayer_rggb8", is_bigendian=0, step=rgb.shape[1], data=padded.reshape(-1))
            writer.write(raw, (1000 + i) * 10**9, TYPESTORE.serialize_cdr(msg, Image.__msgtype__))
            ok, png = cv2.imencode(".png", bgr)
            assert ok
            cmsg = CompressedImage(header=_header(0, 0, "cam_optical"), format="png",
                                   data=np.frombuffer(png.tobytes(), np.uint8))
            writer.write(jpeg, (1000 + i) * 10**9 + 1, TYPESTORE.serialize_cdr(cmsg, CompressedImage.__msgtype__))
            writer.write(text, (1000 + i) * 10**9 + 2,
                         TYPESTORE.serialize_cdr(String(data="hi"), String.__msgtype__))


@pytest.mark.parametrize("storage", [StoragePlugin.MCAP, StoragePlugin.SQLITE3], ids=["mcap", "sqlite3"])
def test_raw_and_compressed_images_read_back(tmp_path: Path, storage: StoragePlugin) -> None:
    frames = _frames(3)
    bag = tmp_path / "bag"
    _write_bag(bag, storage, frames)
    assert list_image_topics(bag) == {
        "/cam/image_raw": "sensor_msgs/msg/Image",
        "/cam/image_raw/compressed": "sensor_msgs/msg/CompressedImage",
    }
    raw = list(iter_bag_images(bag, "/cam/image_raw"))
    assert [round(item.stamp_s, 3) for item in raw] == [100.005, 101.005, 102.005]
    assert all(item.frame_id == "cam_optical" for item in raw)
    for item, rgb in zip(raw, frames):
        np.testing.assert_array_equal(item.rgb, rgb)
    compressed = list(iter_bag_images(bag, "/cam/image_raw/compressed"))
    # zero header stamp -> the bag's record time
    assert [round(item.stamp_s, 6) for item in compressed] == [1000.0, 1001.0, 1002.0]
    for item, rgb in zip(compressed, frames):
        np.testing.assert_array_equal(item.rgb, rgb)


def test_storage_file_can_be_given_directly(tmp_path: Path) -> None:
    _write_bag(tmp_path / "bag", StoragePlugin.MCAP, _frames(2))
    mcap = next((tmp_path / "bag").glob("*.mcap"))
    assert len(list(iter_bag_images(mcap, "/cam/image_raw"))) == 2


def test_topic_errors_name_the_available_topics(tmp_path: Path) -> None:
    bag = tmp_path / "bag"
    _write_bag(bag, StoragePlugin.SQLITE3, _frames(1))
    with pytest.raises(BagError, match=r"no topic '/nope'.*/cam/image_raw"):
        list(iter_bag_images(bag, "/nope"))
    with pytest.raises(BagError, match=r"choose an image topic"):
        list(iter_bag_images(bag))
    with pytest.raises(BagError, match=r"std_msgs/msg/String, not an image"):
        list(iter_bag_images(bag, "/chatter"))
    with pytest.raises(BagError, match="bag not found"):
        list(iter_bag_images(tmp_path / "missing"))


def test_undecodable_message_names_its_index(tmp_path: Path) -> None:
    bag = tmp_path / "bag"
    _write_bag(bag, StoragePlugin.MCAP, _frames(3), broken_last=True)
    items = iter_bag_images(bag, "/cam/image_raw")
    assert len([next(items), next(items)]) == 2
    with pytest.raises(ImageConversionError, match=r"message 2: unsupported image encoding 'bayer_rggb8'"):
        next(items)


def test_hand_recon_run_replays_a_bag_through_the_pipeline(tmp_path: Path, woman_hands_path: Path,
                                                           model_paths) -> None:
    """`hand-recon run BAG --topic T`: the real pipeline on a real photo stored as JPEG CompressedImage messages."""
    import json
    import subprocess
    import sys

    jpeg = np.frombuffer(woman_hands_path.read_bytes(), np.uint8)
    bag = tmp_path / "photo_bag"
    with Writer(bag, version=8, storage_plugin=StoragePlugin.MCAP) as writer:
        conn = writer.add_connection("/cam/image/compressed", CompressedImage.__msgtype__, typestore=TYPESTORE)
        for i in range(3):
            msg = CompressedImage(header=_header(50 + i, 0, "cam_optical"), format="jpeg", data=jpeg)
            writer.write(conn, (50 + i) * 10**9, TYPESTORE.serialize_cdr(msg, CompressedImage.__msgtype__))
    out = tmp_path / "hands.jsonl"
    done = subprocess.run(
        [sys.executable, "-m", "hand_recon_ros.cli", "run", str(bag), "--topic", "/cam/image/compressed",
         "--output", str(out), "--quiet"],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(records) == 3
    for record in records:
        assert "error" not in record, record
        assert sorted(h["side"] for h in record["hands"]) == ["left", "right"]
