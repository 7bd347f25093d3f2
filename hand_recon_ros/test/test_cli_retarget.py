"""`hand-recon retarget` on JSON lines of hands posed by the project's hand model, real Allegro/LEAP URDFs."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_retargeting import FIST, OPEN, hand, robots_dir  # noqa: E402

from hand_recon_ros.cli import main  # noqa: E402
from hand_recon_ros.retargeting.robot_retargeter import HandRetargeter  # noqa: E402

FRAMES = 12


def write_input(path: Path) -> None:
    """FRAMES frames: a right hand closing from open to fist (and a left hand), then an error record."""
    lines = []
    for n in range(FRAMES):
        angles = OPEN + (FIST - OPEN) * n / (FRAMES - 1)
        hands = [
            {"side": "right", "track_id": 0, "joints_3d": hand("right", angles).tolist()},
            {"side": "left", "track_id": 1, "joints_3d": hand("left", angles, position=(-0.1, 0.0, 0.5)).tolist()},
            {"side": "left", "track_id": 2, "joints_3d": None},
        ]
        lines.append(json.dumps({"source": "clip.mp4", "frame": n, "hands": hands}))
    lines.append(json.dumps({"source": "clip.mp4", "frame": FRAMES, "error": "decode failed", "hands": []}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_retarget_writes_one_object_per_frame_within_limits(tmp_path: Path) -> None:
    robots = robots_dir()
    source, out, stats = tmp_path / "in.jsonl", tmp_path / "out.jsonl", tmp_path / "stats.json"
    write_input(source)
    code = main(["retarget", str(source), "--config", "allegro_hand_right", "--config", "leap_hand_left",
                 "--urdf-dir", str(robots), "-o", str(out), "--stats", str(stats)])
    assert code == 0
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["frame"] for r in records] == list(range(FRAMES + 1))
    assert records[-1]["hands"] == []
    allegro = HandRetargeter("allegro_hand_right", robots, "right")
    leap = HandRetargeter("leap_hand_left", robots, "left")
    for record in records[:-1]:
        assert [h["side"] for h in record["hands"]] == ["right", "left"]  # the left hand without 3D is left out
        for h, robot in zip(record["hands"], (allegro, leap)):
            assert tuple(h["joint_names"]) == robot.joint_names
            q = np.array(h["positions"])
            assert np.all(np.isfinite(q))
            assert np.all(q >= robot.joint_limits[:, 0]) and np.all(q <= robot.joint_limits[:, 1])
    first, last = (np.array(records[k]["hands"][0]["positions"]) for k in (0, FRAMES - 1))
    assert np.abs(last - first).max() > 0.3  # closing the hand moved the robot fingers
    summary = json.loads(stats.read_text(encoding="utf-8"))
    assert summary["frames"] == FRAMES + 1 and summary["sides"]["right"]["retargeted"] == FRAMES
    assert summary["sides"]["left"]["hands"] == 2 * FRAMES and summary["sides"]["left"]["retargeted"] == FRAMES
    assert 0.0 < summary["sides"]["right"]["max_step"] < 1.0
    assert summary["sides"]["right"]["time_ms_median"] > 0.0
    assert summary["failures"] == {"left: no 3D joints": FRAMES}


def test_only_the_configured_side_is_retargeted(tmp_path: Path) -> None:
    source, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_input(source)
    assert main(["retarget", str(source), "--config", "allegro_hand_right", "--urdf-dir", str(robots_dir()),
                 "-o", str(out)]) == 0
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert all([h["side"] for h in r["hands"]] == ["right"] for r in records[:-1])


def test_bad_lines_are_named_and_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    source, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_input(source)
    with source.open("a", encoding="utf-8") as fh:
        fh.write("{not json\n[1, 2]\n")
    with caplog.at_level(logging.ERROR):
        assert main(["retarget", str(source), "--config", "allegro_hand_right", "--urdf-dir", str(robots_dir()),
                     "-o", str(out)]) == 0
    assert f"{source} line {FRAMES + 2}:" in caplog.text and f"{source} line {FRAMES + 3}:" in caplog.text
    assert len(out.read_text(encoding="utf-8").splitlines()) == FRAMES + 1


@pytest.mark.parametrize("options, message", [
    (["--config", "allegro_hand_middle"], "unknown retargeting config 'allegro_hand_middle'"),
    (["--config", "missing_right.yml"], "retargeting config missing_right.yml does not exist"),
])
def test_unloadable_config_exits_2_naming_it(tmp_path: Path, caplog: pytest.LogCaptureFixture, options: list[str],
                                             message: str) -> None:
    source = tmp_path / "in.jsonl"
    write_input(source)
    with caplog.at_level(logging.ERROR):
        assert main(["retarget", str(source), *options, "--urdf-dir", str(robots_dir())]) == 2
    assert message in caplog.text


def test_missing_urdf_and_input_exit_2(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    source = tmp_path / "in.jsonl"
    write_input(source)
    with caplog.at_level(logging.ERROR):
        assert main(["retarget", str(source), "--config", "leap_hand_right", "--urdf-dir", str(tmp_path)]) == 2
        assert main(["retarget", str(tmp_path / "none.jsonl"), "--config", "leap_hand_right",
                     "--urdf-dir", str(tmp_path)]) == 2
    assert f"tried {tmp_path}/leap_hand/leap_hand_right.urdf" in caplog.text
    assert f"input {tmp_path / 'none.jsonl'} does not exist" in caplog.text


def test_input_with_no_frame_exits_1(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text("garbage\n", encoding="utf-8")
    assert main(["retarget", str(source), "--config", "allegro_hand_right", "--urdf-dir", str(robots_dir()),
                 "-o", str(tmp_path / "out.jsonl")]) == 1
