"""`hand-recon pseudo-label` on real footage, then weak training from its labels beats the untrained model."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
import yaml

from hand_recon_ros.cli import main
from hand_recon_ros.training.config import load_config
from hand_recon_ros.training.crop_dataset import HandCropDataset
from hand_recon_ros.training.data_sources import split_records
from hand_recon_ros.training.pseudo_labels import pseudo_label_records
from hand_recon_ros.training.run_log import read_metrics
from hand_recon_ros.training.trainer import default_model_factory, evaluate_keypoints

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import SHARED_DATA, missing  # noqa: E402

FRAMES = 90


@pytest.fixture(scope="module")
def video_labels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    video = SHARED_DATA / "video" / "right_hand_motion.mp4"
    if not video.is_file():
        missing(f"{video} not present (set HAND_RECON_SHARED_DATA)")
    out = tmp_path_factory.mktemp("pseudo") / "labels.json"
    assert main(["pseudo-label", str(video), "--max-frames", str(FRAMES), "--every", "2", "-o", str(out),
                 "--quiet"]) == 0
    return out


def test_pseudo_label_file(video_labels: Path) -> None:
    payload = json.loads(video_labels.read_text())
    frames = payload["frames"]
    assert payload["format"] == "hand_recon_pseudo_labels" and len(frames) == FRAMES // 2
    assert [f["frame"] for f in frames] == list(range(0, FRAMES, 2))
    hands = [h for f in frames for h in f["hands"]]
    assert len(hands) >= 0.9 * len(frames) and {h["side"] for h in hands} == {"right"}
    for hand in hands:
        assert len(hand["keypoints_2d"]) == 21 and len(hand["joint_confidence"]) == 21
        assert hand["score"] >= 0.5 and hand["joints_3d"] is not None and hand["joints_3d"][0][2] > 0
        x0, y0, x1, y1 = hand["box"]
        assert 0 <= x0 < x1 <= 1280 and 0 <= y0 < y1 <= 720
    assert (video_labels.parent / frames[0]["image"]).is_file()
    assert len(pseudo_label_records(video_labels)) == len([f for f in frames if f["hands"]])


def test_pseudo_label_bad_options(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["pseudo-label", "x.jpg", "-o", str(tmp_path / "l.json"), "--min-score", "2"]) == 2
    assert "--min-score" in capsys.readouterr().err
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"nope")
    assert main(["pseudo-label", str(broken), "-o", str(tmp_path / "l.json"), "--quiet"]) == 1
    assert "broken.jpg" in capsys.readouterr().err and not (tmp_path / "l.json").exists()


def test_training_on_pseudo_labels_beats_the_start(video_labels: Path, tmp_path: Path) -> None:
    """Weak training on the first 80 % of the frames lowers the 2D error on the held-back last 20 %."""
    config = load_config("pseudo-label").to_dict()
    config["network"] = load_config("tiny-synthetic").network
    config.update(max_steps=100, batch_size=8, cpu_threads=1, learning_rate=0.003, log_every=25,
                  checkpoint_every=100)
    config["data"].update(val_every_n=0, rotation_deg=15.0)
    path = tmp_path / "pl.yaml"
    path.write_text(yaml.safe_dump(config))
    loaded = load_config(str(path))
    _, held_back = split_records(pseudo_label_records(video_labels), loaded.data.val_fraction)
    dataset = HandCropDataset(held_back, 64, loaded.data, train=False)
    torch.manual_seed(loaded.seed)
    start = evaluate_keypoints(default_model_factory(loaded.network)[0], dataset, torch.device("cpu"), True)
    assert main(["train", str(path), "--data", str(video_labels), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    rows = read_metrics(tmp_path / "run" / "metrics.csv")
    end = rows[-1]["val_error_2d_px"]
    print(f"pseudo-label training: held-back 2D error {start:.2f} -> {end:.2f} px")
    assert end < start * 0.8, (start, end)


def test_pseudo_label_a_bag_and_a_folder(woman_hands_path: Path, tmp_path: Path) -> None:
    """Bag frames are saved beside the labels; still images are referenced where they are; both sides found."""
    import numpy as np
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_HUMBLE)
    compressed = store.types["sensor_msgs/msg/CompressedImage"]
    header = store.types["std_msgs/msg/Header"]
    stamp = store.types["builtin_interfaces/msg/Time"]
    bag = tmp_path / "bag"
    with Writer(bag, version=8, storage_plugin=StoragePlugin.MCAP) as writer:
        conn = writer.add_connection("/cam/image/compressed", compressed.__msgtype__, typestore=store)
        for i in range(2):
            msg = compressed(header=header(stamp=stamp(sec=i, nanosec=0), frame_id="cam"), format="jpeg",
                             data=np.frombuffer(woman_hands_path.read_bytes(), np.uint8))
            writer.write(conn, (1 + i) * 10**9, store.serialize_cdr(msg, compressed.__msgtype__))
    out = tmp_path / "out" / "labels.json"
    assert main(["pseudo-label", str(bag), str(woman_hands_path), "--topic", "/cam/image/compressed", "-o", str(out),
                 "--quiet"]) == 0
    frames = json.loads(out.read_text())["frames"]
    assert [f["source"] for f in frames] == [str(bag), str(bag), str(woman_hands_path)]
    assert frames[0]["image"].startswith("labels_frames/") and (out.parent / frames[1]["image"]).is_file()
    assert (out.parent / frames[2]["image"]).resolve() == woman_hands_path.resolve()
    for frame in frames:
        assert sorted(h["side"] for h in frame["hands"]) == ["left", "right"]
