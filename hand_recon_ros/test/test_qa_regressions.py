"""Regression tests for faults found by end-to-end QA of the CLI (bad options must exit 2 with a clear message)."""

from __future__ import annotations

import logging

import cv2
import numpy as np

from hand_recon_ros.cli import main
from hand_recon_ros.evaluation.interhand import write_synthetic_interhand
from hand_recon_ros.models import hand_kinematics as hk

EXIT_USAGE = 2


def _one_image_interhand(folder) -> None:
    """A one-image, one-hand InterHand2.6M-format set (black image; enough for option checks)."""
    rng = np.random.default_rng(0)
    cam = hk.pose_joints(np.diag([1.0, -1.0, -1.0]), np.array([0.0, 0.0, 1.0]), hk.random_angles(rng, spread=0.3),
                         hk.BONE_LENGTH_PRIOR_M, "right")
    entry = {"file_name": "img0.jpg", "width": 334, "height": 512, "focal": (1200.0, 1200.0),
             "princpt": (167.0, 256.0), "campos": np.zeros(3), "camrot": np.eye(3), "right": cam * 1000.0}
    cv2.imwrite(str(folder / "img0.jpg"), np.zeros((512, 334, 3), np.uint8))
    write_synthetic_interhand(folder, [entry])


def test_run_negative_threads_is_a_usage_error(woman_hands_path, tmp_path, caplog):
    """`run --threads -1` is a bad option: exit 2 naming --threads, before any model loads or JSON is written."""
    out = tmp_path / "out.jsonl"
    with caplog.at_level(logging.ERROR):
        status = main(["run", str(woman_hands_path), "--threads", "-1", "-o", str(out), "--quiet"])
    assert status == EXIT_USAGE
    assert "--threads" in caplog.text
    assert not out.exists() or out.read_text() == ""


def test_eval_unknown_backend_is_a_usage_error(tmp_path, caplog):
    """`eval --backend foo` exits 2 with one message naming the backend (was a traceback)."""
    _one_image_interhand(tmp_path)
    with caplog.at_level(logging.ERROR):
        status = main(["eval", str(tmp_path), "--backend", "foo"])
    assert status == EXIT_USAGE
    assert "'foo'" in caplog.text


def test_eval_negative_threads_is_a_usage_error(tmp_path, caplog):
    """`eval --threads -1` exits 2 naming intra_op_threads (was a ConfigError traceback)."""
    _one_image_interhand(tmp_path)
    with caplog.at_level(logging.ERROR):
        status = main(["eval", str(tmp_path), "--threads", "-1"])
    assert status == EXIT_USAGE
    assert "intra_op_threads" in caplog.text


def test_same_file_stem_in_two_inputs_keeps_both_outputs(woman_hands_path, tmp_path):
    """a/hands.jpg and b/hands.png: two overlays and both meshes (the second silently overwrote the first)."""
    image = cv2.resize(cv2.imread(str(woman_hands_path)), (320, 480), interpolation=cv2.INTER_AREA)
    first, second = tmp_path / "a" / "hands.jpg", tmp_path / "b" / "hands.png"
    for path in (first, second):
        path.parent.mkdir()
        cv2.imwrite(str(path), image)
    overlays, meshes = tmp_path / "overlays", tmp_path / "meshes"
    status = main(["run", str(first), str(second), "-o", str(tmp_path / "out.jsonl"), "--overlay-dir", str(overlays),
                   "--mesh-dir", str(meshes), "--quiet"])
    assert status == 0
    assert sorted(p.name for p in overlays.iterdir()) == ["hands.jpg", "hands_2.jpg"]
    names = sorted(p.name for p in meshes.iterdir())
    assert len(names) == 4 and sum(name.startswith("hands_2_") for name in names) == 2, names


def test_models_info_names_a_corrupt_onnx_file(model_paths, tmp_path, capsys):
    """`models info` on a cache with a garbage ONNX file exits 1 naming it CORRUPT (was a protobuf traceback)."""
    import shutil

    for path in (model_paths.palm_tflite, model_paths.landmark_tflite, model_paths.landmark_onnx):
        shutil.copy(path, tmp_path / path.name)
    (tmp_path / model_paths.palm_onnx.name).write_bytes(b"garbage")
    status = main(["models", "info", "--variant", "full", "--models-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert status == 1
    assert f"{tmp_path / model_paths.palm_onnx.name}  CORRUPT" in out
    assert str(tmp_path / model_paths.landmark_onnx.name) in out  # the good file is still listed after it
