"""`hand-recon run` / `bench` end to end with the real models: JSONL contract, bad inputs, intrinsics, video."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from hand_recon_ros.cli import main

REPO_ROOT = Path(__file__).resolve().parents[2]
HAND_KEYS = {"side", "score", "side_score", "track_id", "keypoints_2d", "joints_3d", "world_landmarks", "wrist_pose",
             "fit_residual_px"}


def _run(argv: list[str]) -> int:
    return main(argv)


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def woman_small(woman_hands_path, tmp_path_factory) -> Path:
    """The stock photo at half size (faster), written to a temp folder (never into the repo)."""
    path = tmp_path_factory.mktemp("img") / "woman.png"
    image = cv2.imread(str(woman_hands_path))
    cv2.imwrite(str(path), cv2.resize(image, (320, 480), interpolation=cv2.INTER_AREA))
    return path


def test_bad_inputs_are_reported_and_the_run_continues(model_paths, woman_small, tmp_path):
    bgr = cv2.imread(str(woman_small))
    folder = tmp_path / "inputs"
    folder.mkdir()
    (folder / "a_text.jpg").write_text("not an image at all")
    (folder / "b_empty.png").write_bytes(b"")
    data = woman_small.read_bytes()
    (folder / "c_truncated.png").write_bytes(data[: len(data) // 2])
    cv2.imwrite(str(folder / "d_gray.png"), cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))
    cv2.imwrite(str(folder / "e_rgba.png"), cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA))
    cv2.imwrite(str(folder / "f_16bit.png"), bgr.astype(np.uint16) * 257)
    out = tmp_path / "out.jsonl"
    overlays = tmp_path / "overlays"
    rc = _run(["run", str(folder), str(woman_small), "--output", str(out), "--overlay-dir", str(overlays),
               "--quiet"])
    assert rc == 0
    records = {Path(r["source"]).name: r for r in _records(out)}
    assert len(records) == 7
    assert "not a readable image" in records["a_text.jpg"]["error"]
    assert "empty file" in records["b_empty.png"]["error"]
    assert "truncated PNG" in records["c_truncated.png"]["error"]
    for name in ("d_gray.png", "e_rgba.png", "f_16bit.png", "woman.png"):
        rec = records[name]
        assert "error" not in rec, rec
        assert (rec["width"], rec["height"], rec["intrinsics"]) == (320, 480, "assumed")
        assert sorted(h["side"] for h in rec["hands"]) == ["left", "right"], name
        assert {"total", "palm", "landmarks", "lift"} <= set(rec["timing_ms"])
        for hand in rec["hands"]:
            assert HAND_KEYS <= set(hand)
            assert np.asarray(hand["keypoints_2d"]).shape == (21, 2)
            assert np.asarray(hand["world_landmarks"]).shape == (21, 3)
            assert hand["joints_3d"] is None or np.asarray(hand["joints_3d"]).shape == (21, 3)
    assert sorted(p.name for p in overlays.iterdir()) == ["d_gray.jpg", "e_rgba.jpg", "f_16bit.jpg", "woman.jpg"]


def test_nothing_processed_is_a_failure(model_paths, tmp_path):
    (tmp_path / "x.jpg").write_text("nope")
    out = tmp_path / "out.jsonl"
    assert _run(["run", str(tmp_path / "x.jpg"), str(tmp_path / "missing.png"), "-o", str(out), "--quiet"]) == 1
    errors = [r["error"] for r in _records(out)]
    assert len(errors) == 2 and "x.jpg" in errors[0] and "missing.png" in errors[1]


def test_corrupt_model_file_is_a_clear_error(model_paths, woman_small, tmp_path, caplog):
    bad = tmp_path / "palm.onnx"
    bad.write_bytes(b"\x08\x07garbage that is not a protobuf model")
    out = tmp_path / "out.jsonl"
    rc = _run(["run", str(woman_small), "-o", str(out), "--quiet", "--palm-onnx", str(bad),
               "--landmark-onnx", str(model_paths.landmark_onnx)])
    assert rc == 1
    (record,) = _records(out)
    assert "cannot load the models" in record["error"] and "palm.onnx" in record["error"]
    assert "palm.onnx" in caplog.text


def test_intrinsics_options(model_paths, woman_small, tmp_path):
    other = tmp_path / "other.png"
    other.write_bytes(woman_small.read_bytes())
    out = tmp_path / "a.jsonl"
    assert _run(["run", str(woman_small), "-o", str(out), "--quiet", "--intrinsics", "400,400,159.5,239.5"]) == 0
    (rec,) = _records(out)
    assert rec["intrinsics"] == "given" and all(h["joints_3d"] is not None for h in rec["hands"])

    mapping = tmp_path / "map.json"
    mapping.write_text(json.dumps({"woman.png": [400, 400, 159.5, 239.5]}))
    assert _run(["run", str(woman_small), str(other), "-o", str(out), "--quiet", "--intrinsics-file",
                 str(mapping)]) == 0
    assert [r["intrinsics"] for r in _records(out)] == ["given", "assumed"]

    info = tmp_path / "camera.yaml"
    info.write_text("image_width: 320\nimage_height: 480\ncamera_matrix:\n  rows: 3\n  cols: 3\n"
                    "  data: [400, 0, 159.5, 0, 400, 239.5, 0, 0, 1]\n"
                    "distortion_coefficients:\n  rows: 1\n  cols: 5\n  data: [0.01, 0, 0, 0, 0]\n")
    assert _run(["run", str(woman_small), "-o", str(out), "--quiet", "--camera-info", str(info)]) == 0
    assert _records(out)[0]["intrinsics"] == "given"
    info.write_text(info.read_text().replace("image_width: 320", "image_width: 640"))
    assert _run(["run", str(woman_small), "-o", str(out), "--quiet", "--camera-info", str(info)]) == 1
    assert "camera info is for 640x480" in _records(out)[0]["error"]

    assert _run(["run", str(woman_small), "-o", str(out), "--quiet", "--intrinsics", "400,400,nan"]) == 2
    mapping.write_text("[1, 2]")
    assert _run(["run", str(woman_small), "-o", str(out), "--quiet", "--intrinsics-file", str(mapping)]) == 2


def test_video_is_tracked_with_stable_ids(model_paths, woman_small, tmp_path):
    video = tmp_path / "clip.avi"
    image = cv2.imread(str(woman_small))
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 15.0, (320, 480))
    for shift in range(5):
        writer.write(np.roll(image, 2 * shift, axis=1))
    writer.release()
    out = tmp_path / "v.jsonl"
    assert _run(["run", str(video), "-o", str(out), "--quiet", "--max-hands", "2"]) == 0
    records = _records(out)
    assert [r["frame"] for r in records] == [0, 1, 2, 3, 4]
    ids = [sorted((h["side"], h["track_id"]) for h in r["hands"]) for r in records]
    assert len(ids[0]) == 2 and all(i == ids[0] for i in ids)
    assert all(r["timing_ms"]["palm"] < r["timing_ms"]["total"] for r in records)


def test_bench_json(model_paths, woman_small, capsys):
    assert _run(["bench", str(woman_small), "--repeat", "2", "--warmup", "1", "--json", "--mode", "video"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["mode"] == "video" and info["timed_frames"] == 2 and info["mean_hands"] == 2.0
    for stage in ("palm", "landmarks", "lift", "total"):
        row = info["stages"][stage]
        assert 0 <= row["median_ms"] <= row["p95_ms"] + 1e-9
    assert info["stages"]["total"]["fps"] > 0
    assert "cores" in info["cpu"]


def test_cpu_description_reads_model_cores_and_vector_flags(tmp_path):
    from hand_recon_ros.commands.bench import cpu_description

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Test CPU 9000\nflags\t\t: fpu sse4_2 avx2 fma avx512f\n")
    text = cpu_description(cpuinfo)
    assert text.startswith("Test CPU 9000, ") and text.endswith(", avx2 avx512f")
    assert "cores" in cpu_description(tmp_path / "missing")  # no /proc/cpuinfo (macOS): still a line


def test_bench_needs_a_frame(tmp_path):
    (tmp_path / "x.png").write_bytes(b"")
    assert _run(["bench", str(tmp_path / "x.png"), "--repeat", "1"]) == 1


@pytest.mark.skipif(os.path.exists("/dev/video0"), reason="a camera is present: the demo would use it")
def test_demo_script_says_what_to_pass():
    env = dict(os.environ, INPUT="")
    proc = subprocess.run(["bash", str(REPO_ROOT / "scripts" / "demo.sh")], env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2
    assert "make demo INPUT=" in proc.stderr


def test_rosbag_input_is_tracked(model_paths, woman_small, tmp_path):
    from rosbags import rosbag2, typesys  # a runtime dependency (requirements/runtime.txt): never skipped
    store = typesys.get_typestore(typesys.Stores.ROS2_HUMBLE)
    compressed = store.types["sensor_msgs/msg/CompressedImage"]
    header, stamp = store.types["std_msgs/msg/Header"], store.types["builtin_interfaces/msg/Time"]
    bag = tmp_path / "bag"
    ok, jpeg = cv2.imencode(".jpg", cv2.imread(str(woman_small)))
    assert ok
    with rosbag2.Writer(bag, version=8, storage_plugin=rosbag2.StoragePlugin.MCAP) as writer:
        conn = writer.add_connection("/cam/image/compressed", compressed.__msgtype__, typestore=store)
        for i in range(3):
            msg = compressed(header=header(stamp=stamp(sec=50, nanosec=i * 100_000_000), frame_id="cam"),
                             format="jpeg", data=np.frombuffer(jpeg.tobytes(), np.uint8))
            writer.write(conn, (10 + i) * 10**9, store.serialize_cdr(msg, compressed.__msgtype__))
    out = tmp_path / "bag.jsonl"
    assert _run(["run", str(bag), "-o", str(out), "--quiet"]) == 0
    records = _records(out)
    assert [r["frame"] for r in records] == [0, 1, 2]
    assert all(sorted(h["side"] for h in r["hands"]) == ["left", "right"] for r in records)
    assert len({h["track_id"] for r in records for h in r["hands"]}) == 2  # tracked: the same two ids throughout
    assert _run(["run", str(bag), "-o", str(out), "--quiet", "--topic", "/nope"]) == 1
    assert "/nope" in _records(out)[0]["error"]


def test_mesh_dir_gets_one_mesh_per_hand(model_paths, woman_small, tmp_path):
    from hand_recon_ros.io.mesh_writer import read_mesh

    meshes = tmp_path / "meshes"
    out = tmp_path / "m.jsonl"
    assert _run(["run", str(woman_small), "-o", str(out), "--quiet", "--mesh-dir", str(meshes)]) == 0
    files = sorted(p.name for p in meshes.iterdir())
    assert files == ["woman_0_" + _records(out)[0]["hands"][0]["side"] + ".obj",
                     "woman_1_" + _records(out)[0]["hands"][1]["side"] + ".obj"]
    mesh = read_mesh(meshes / files[0])
    assert mesh.vertices.shape[0] > 100 and np.all(mesh.vertices[:, 2] > 0.1)  # metres, in front of the camera
