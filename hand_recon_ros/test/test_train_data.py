"""Training data: crop + augmentation geometry, flips swap sides, loaders and their errors on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hand_recon_ros.training import augment as aug
from hand_recon_ros.training.coco_wholebody import coco_wholebody_records
from hand_recon_ros.training.config import DataConfig
from hand_recon_ros.training.crop_dataset import HandCropDataset, make_item
from hand_recon_ros.training.interhand_records import interhand_records
from hand_recon_ros.training.pseudo_labels import FORMAT_NAME, pseudo_label_records
from hand_recon_ros.training.records import DataError, HandLabel, TrainRecord
from hand_recon_ros.training.toy_data import toy_records, write_toy_interhand


def _marker_record() -> TrainRecord:
    """A grey image with a red dot under the left index tip and a green one under the right index tip."""
    records = toy_records(1, seed=3)
    image = np.full((160, 160, 3), 60, np.uint8)
    colours = {"left": (255, 0, 0), "right": (0, 255, 0)}
    for hand in records[0].hands:
        u, v = np.round(hand.keypoints_2d[8]).astype(int)
        image[v - 2:v + 3, u - 2:u + 3] = colours[hand.side]
    return TrainRecord("markers", records[0].hands, image=image)


@pytest.mark.parametrize("flip", [False, True])
def test_augmented_keypoints_follow_the_image(flip: bool) -> None:
    record = _marker_record()
    params = aug.AugmentParams(scale=1.1, rotation_rad=0.4, shift=(0.05, -0.03), flip=flip)
    item = make_item(record, 96, 1.5, params)
    image = item["image"].numpy().transpose(1, 2, 0)
    for side, channel in (("left", 0), ("right", 1)):
        s = ("left", "right").index(side)
        s_after = 1 - s if flip else s
        u, v = np.round(item["keypoints_2d"][s_after, 8].numpy()).astype(int)
        patch = image[v - 1:v + 2, u - 1:u + 2]
        assert patch[..., channel].max() > 0.7, (side, flip)
        assert patch[..., 1 - channel].max() < 0.5


def test_flip_swaps_sides_and_mirrors_3d() -> None:
    record = toy_records(1, seed=1)[0]
    plain = make_item(record, 64, 1.5, aug.AugmentParams())
    flipped = make_item(record, 64, 1.5, aug.AugmentParams(flip=True))
    np.testing.assert_allclose(flipped["joints_3d"][0].numpy(), plain["joints_3d"][1].numpy() * [-1, 1, 1], atol=1e-6)
    np.testing.assert_allclose(flipped["keypoints_2d"][1, :, 0].numpy(), 63 - plain["keypoints_2d"][0, :, 0].numpy(),
                               atol=1e-4)
    np.testing.assert_allclose(flipped["root_offset"].numpy(), -plain["root_offset"].numpy() * [-1, 1, 1], atol=1e-6)


def test_rotation_keeps_3d_consistent_with_2d() -> None:
    """Rotating the image about the principal point = rotating the camera about its axis: reprojection agrees."""
    record = toy_records(1, seed=2)[0]
    centre = np.array([79.5, 79.5])
    params = aug.AugmentParams(rotation_rad=0.5)
    matrix = aug.crop_matrix(centre, 160.0, 160, params)
    for hand in record.hands:
        rotated = aug.rotate_joints(hand.joints_3d, params)
        focal = 1.4 * 160
        uv = focal * rotated[:, :2] / rotated[:, 2:3] + centre
        np.testing.assert_allclose(uv, aug.warp_points(hand.keypoints_2d, matrix), atol=1e-6)


def test_augmentation_is_seeded_by_epoch_and_index() -> None:
    data = DataConfig(flip_probability=0.5)
    dataset = HandCropDataset(toy_records(3), 64, data, seed=5)
    assert np.array_equal(dataset[(1, 2)]["image"].numpy(), dataset[(1, 2)]["image"].numpy())
    assert not np.array_equal(dataset[(1, 2)]["image"].numpy(), dataset[(1, 3)]["image"].numpy())
    assert dataset.params_for(1, 2) != dataset.params_for(2, 2)


def test_interhand_toy_round_trip(tmp_path: Path) -> None:
    write_toy_interhand(tmp_path, 3, seed=4)
    records = interhand_records(tmp_path)
    truth = toy_records(3, seed=4)
    assert len(records) == 3
    for got, want in zip(records, truth):
        for hand in want.hands:
            mine = next(h for h in got.hands if h.side == hand.side)
            np.testing.assert_allclose(mine.keypoints_2d, hand.keypoints_2d, atol=1e-6)
            np.testing.assert_allclose(mine.joints_3d, hand.joints_3d, atol=1e-9)
        assert got.load_image().shape == (160, 160, 3)


def test_interhand_real_folder(interhand_dir: Path) -> None:
    records = interhand_records(interhand_dir)
    assert [sorted(h.side for h in r.hands) for r in records].count(["left", "right"]) == 2
    item = make_item(records[0], 128, 1.5, aug.AugmentParams())
    assert float(item["present"].sum()) == 2.0 and float(item["root_offset_valid"]) == 1.0


def test_interhand_wrong_format_names_the_file(tmp_path: Path) -> None:
    write_toy_interhand(tmp_path, 2)
    (tmp_path / "test_interhand2.6m_camera.json").write_text("{}")
    with pytest.raises(DataError, match="test_interhand2.6m_data.json: image toy0000.jpg"):
        interhand_records(tmp_path)
    with pytest.raises(DataError, match="InterHand2.6M folder not found"):
        interhand_records(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"expected exactly one \*_data.json"):
        interhand_records(tmp_path / "empty")


def _labels(tmp_path: Path, hands: list[dict], image: str = "a.png") -> Path:
    import cv2

    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((32, 32, 3), np.uint8))
    path = tmp_path / "labels.json"
    path.write_text(json.dumps({"format": FORMAT_NAME, "version": 1, "frames": [
        {"image": image, "hands": hands}]}))
    return path


def _hand(**changes: object) -> dict:
    hand = {"side": "right", "score": 0.9, "keypoints_2d": [[1.0, 2.0]] * 21, "joint_confidence": [1.0] * 21,
            "joints_3d": None}
    hand.update(changes)
    return hand


def test_pseudo_labels_errors_name_file_and_field(tmp_path: Path) -> None:
    assert len(pseudo_label_records(_labels(tmp_path, [_hand()]))) == 1
    bad = [[1.0, 2.0]] * 21
    bad[4] = [float("nan"), 2.0]
    path = _labels(tmp_path, [_hand(keypoints_2d=bad)])
    with pytest.raises(DataError, match=r"labels.json: frames\[0\].hands\[0\]: field keypoints_2d has a non-finite "
                                        r"value \(NaN/inf\) at joint 4"):
        pseudo_label_records(path)
    with pytest.raises(DataError, match=r"frames\[0\].image: no such file"):
        pseudo_label_records(_labels(tmp_path, [_hand()], image="gone.jpg"))
    with pytest.raises(DataError, match="field joint_confidence has shape"):
        pseudo_label_records(_labels(tmp_path, [_hand(joint_confidence=[1.0] * 20)]))
    with pytest.raises(DataError, match="side 'middle'"):
        pseudo_label_records(_labels(tmp_path, [_hand(side="middle")]))
    (tmp_path / "x.json").write_text("[]")
    with pytest.raises(DataError, match="x.json: field 'format'"):
        pseudo_label_records(tmp_path / "x.json")


def test_unreadable_image_names_the_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    record = TrainRecord("list", [HandLabel("left", np.zeros((21, 2)), np.ones(21))], image_path=broken)
    with pytest.raises(DataError, match="broken.jpg: cannot read image"):
        make_item(record, 32, 1.5, aug.AugmentParams())


def test_coco_wholebody_hands(tmp_path: Path) -> None:
    kpts = np.zeros((21, 3))
    kpts[:, 0], kpts[:, 1], kpts[:, 2] = np.arange(21), 5.0, 2
    kpts[3, 2] = 0
    ann = {"image_id": 7, "lefthand_valid": True, "lefthand_kpts": kpts.ravel().tolist(),
           "righthand_valid": False, "righthand_kpts": [0] * 63}
    path = tmp_path / "cwb.json"
    path.write_text(json.dumps({"images": [{"id": 7, "file_name": "p.jpg"}], "annotations": [ann]}))
    with pytest.raises(DataError, match=r"cwb.json: 1 image\(s\) missing, first .*p.jpg"):
        coco_wholebody_records(path, tmp_path / "imgs")
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "p.jpg").write_bytes(b"x")
    (record,) = coco_wholebody_records(path, tmp_path / "imgs")
    assert record.image_path == tmp_path / "imgs" / "p.jpg"
    assert [h.side for h in record.hands] == ["left"]
    assert record.hands[0].confidence[3] == 0 and record.hands[0].confidence.sum() == 20
    assert record.hands[0].joints_3d is None
    ann["lefthand_kpts"] = [1.0] * 62
    path.write_text(json.dumps({"images": [{"id": 7, "file_name": "p.jpg"}], "annotations": [ann]}))
    with pytest.raises(DataError, match=r"annotations\[0\].lefthand_kpts: expected 63 numbers"):
        coco_wholebody_records(path, tmp_path / "imgs")


def test_interhand_images_dir_layout(tmp_path: Path) -> None:
    """InterHand2.6M's own layout: annotations in one folder, images (relative file names) in another."""
    annotations, images = tmp_path / "annotations" / "train", tmp_path / "images" / "train"
    write_toy_interhand(annotations, 2)
    images.mkdir(parents=True)
    for jpg in annotations.glob("*.jpg"):
        jpg.rename(images / jpg.name)
    with pytest.raises(DataError, match=r"2 image\(s\) missing, first .*toy0000.jpg \(is data.images_dir right\?\)"):
        interhand_records(annotations)
    records = interhand_records(annotations, images)
    assert [r.image_path for r in records] == [images / "toy0000.jpg", images / "toy0001.jpg"]


def test_interhand_invalid_joints_are_ignored(tmp_path: Path) -> None:
    """An invalid joint at the camera centre (projects to inf) must not break loading; it gets confidence 0."""
    write_toy_interhand(tmp_path, 1)
    path = tmp_path / "test_interhand2.6m_joint_3d.json"
    joints = json.loads(path.read_text())
    frame = joints["0"]["1000"]
    frame["world_coord"][5] = [0.0, 0.0, 0.0]  # InterHand index 5 = right index tip (IH order: tip→base)
    frame["joint_valid"][5] = [False]
    path.write_text(json.dumps(joints))
    (record,) = interhand_records(tmp_path)
    right = next(h for h in record.hands if h.side == "right")
    assert right.confidence.sum() == 20 and not right.joints_valid.all()
    assert np.isfinite(right.keypoints_2d).all() and np.isfinite(right.joints_3d).all()


def test_train_on_an_unreadable_image_exits_1_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """An image that exists but does not decode: one clear error, exit 1, no checkpoint written."""
    from hand_recon_ros.cli import main

    path = _labels(tmp_path, [_hand()], image="a.png")
    (tmp_path / "a.png").write_bytes(b"\x89PNG but not really")
    config = tmp_path / "c.yaml"
    config.write_text("network: {backbone: resnet18, backbone_width: 8, input_size: 64, iterations: 1}\n"
                      "data: {kind: pseudo_label}\nmode: weak\n"
                      "loss: {joints_3d: 0.0, vertices: 0.0, root_offset: 0.0}\n"
                      "batch_size: 1\nmax_steps: 2\ncpu_threads: 1\n")
    assert main(["train", str(config), "--data", str(path), "--out", str(tmp_path / "run"), "--quiet"]) == 1
    assert "a.png: cannot read image" in capsys.readouterr().err
    assert not (tmp_path / "run" / "checkpoints" / "last.pt").exists()
