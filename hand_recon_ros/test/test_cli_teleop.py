"""`hand-recon run` teleoperation fields: grasp signals in every hand's JSON and the node's One-Euro options.

The CLI uses the node's core (pipeline/teleop_signals.py); these tests check its output against that core run
by hand on the same joints, so the two cannot drift apart.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import missing

from hand_recon_ros.cli import main
from hand_recon_ros.pipeline.grasp_signals import GraspState, GraspTracker
from hand_recon_ros.pipeline.one_euro_filter import DEFAULT_BETA, DEFAULT_D_CUTOFF_HZ, OneEuroFilter, OneEuroSettings
from hand_recon_ros.pipeline.types import FrameResult, HandDetection, HandResult, RotatedRect

CLIP_FRAMES = 45
CLIP_FPS = 30.0
STATES = {s.name.lower() for s in GraspState}


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def clip(shared_data_dir, tmp_path_factory) -> Path:
    """The first CLIP_FRAMES frames of the shared video at CLIP_FPS (MJPG, a temporary file)."""
    video = shared_data_dir / "video" / "right_hand_motion.mp4"
    if not video.is_file():
        missing(f"{video} not present")
    capture = cv2.VideoCapture(str(video))
    out = tmp_path_factory.mktemp("clip") / "clip.avi"
    writer = None
    for _ in range(CLIP_FRAMES):
        ok, bgr = capture.read()
        assert ok
        if writer is None:
            writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"MJPG"), CLIP_FPS,
                                     (bgr.shape[1], bgr.shape[0]))
        writer.write(bgr)
    capture.release()
    writer.release()
    return out


def _result(hands: list[dict]) -> FrameResult:
    """A FrameResult holding the JSON hands' joints, for running the core by hand."""
    out = []
    for h in hands:
        det = HandDetection(h["side"], 1.0, 1.0, np.zeros((21, 2)), np.zeros(21), np.zeros((21, 3)),
                            RotatedRect(0, 0, 1, 1, 0), track_id=h["track_id"])
        out.append(HandResult(det, np.asarray(h["joints_3d"], np.float32), np.ones(21, np.float32)))
    return FrameResult(1, 1, True, hands=out)


def test_every_hand_has_the_grasp_signals_of_its_joints(clip, model_paths, tmp_path) -> None:
    out = tmp_path / "out.jsonl"
    assert main(["run", str(clip), "-o", str(out), "--quiet"]) == 0
    records = _records(out)
    assert len(records) == CLIP_FRAMES
    tracker = GraspTracker()  # the node's grasp code, fed the JSON joints: the same signals, state by state
    hands = 0
    for record in records:
        expected = tracker.apply(_result(record["hands"]))
        for hand, mine in zip(record["hands"], expected.hands):
            hands += 1
            assert hand["grasp_state"] in STATES
            assert 0.0 <= hand["grasp_strength"] <= 1.0 and 0.0 < hand["pinch_distance_m"] < 0.3
            assert hand["pinch_distance_m"] == pytest.approx(mine.grasp.pinch_distance_m, abs=2e-5)
            assert hand["grasp_strength"] == pytest.approx(mine.grasp.grasp_strength, abs=1e-3)
            assert hand["grasp_state"] == mine.grasp.state.name.lower()
    assert hands >= CLIP_FRAMES


def test_one_euro_options_filter_joints_like_the_node(clip, model_paths, tmp_path) -> None:
    """--one-euro-* as the node's parameters: off by default; on, each track's joints are the One-Euro filter of
    the unfiltered run's (by the video's frame times), smoother, and the grasp signals follow the filtered joints."""
    raw_path, filtered_path = tmp_path / "raw.jsonl", tmp_path / "filtered.jsonl"
    assert main(["run", str(clip), "-o", str(raw_path), "--quiet"]) == 0
    assert main(["run", str(clip), "-o", str(filtered_path), "--quiet", "--one-euro-min-cutoff", "1",
                 "--one-euro-beta", "5", "--one-euro-d-cutoff", str(DEFAULT_D_CUTOFF_HZ)]) == 0
    raw, filtered = _records(raw_path), _records(filtered_path)
    assert len(raw) == len(filtered) == CLIP_FRAMES
    filters: dict[int, OneEuroFilter] = {}
    raw_joints, out_joints = [], []
    for r, f in zip(raw, filtered):
        assert [h["track_id"] for h in r["hands"]] == [h["track_id"] for h in f["hands"]]
        for hr, hf in zip(r["hands"], f["hands"]):
            one_euro = filters.setdefault(hr["track_id"], OneEuroFilter(OneEuroSettings(1.0, 5.0, 1.0)))
            expected = one_euro.filter(np.asarray(hr["joints_3d"]), r["frame"] / CLIP_FPS)
            np.testing.assert_allclose(hf["joints_3d"], expected, atol=2e-4)  # JSON rounding only
            raw_joints.append(hr["joints_3d"])
            out_joints.append(hf["joints_3d"])
    jitter = [np.sqrt(np.mean(np.diff(np.asarray(j), 2, axis=0) ** 2)) for j in (raw_joints, out_joints)]
    assert jitter[1] < 0.7 * jitter[0], jitter
    for hf in filtered[-1]["hands"]:
        mine = GraspTracker().apply(_result([hf])).hands[0].grasp
        assert hf["pinch_distance_m"] == pytest.approx(mine.pinch_distance_m, abs=2e-5)


@pytest.mark.parametrize("argv_tail, message", [
    (["--one-euro-beta", "-1"], "beta must be within 0 .. 10000"),
    (["--one-euro-d-cutoff", "0"], "d_cutoff_hz must be within 0.01 .. 100"),
    (["--one-euro-min-cutoff", "nan"], "min_cutoff_hz must be within 0 .. 100"),
])
def test_bad_one_euro_options_exit_2(tmp_path, argv_tail, message, caplog) -> None:
    image = tmp_path / "x.png"
    cv2.imwrite(str(image), np.zeros((8, 8, 3), np.uint8))
    with caplog.at_level("ERROR"):
        assert main(["run", str(image), "-o", str(tmp_path / "o.jsonl"), *argv_tail]) == 2
    assert message in caplog.text


def test_one_euro_defaults_are_the_nodes() -> None:
    from hand_recon_ros.cli import build_parser
    from hand_recon_ros.ros.parameters import PARAMETERS

    defaults = {p.name: p.default for p in PARAMETERS}
    args = build_parser().parse_args(["run", "x.png"])
    assert (args.one_euro_min_cutoff, args.one_euro_beta, args.one_euro_d_cutoff) == (
        defaults["one_euro_min_cutoff_hz"], defaults["one_euro_beta"], defaults["one_euro_d_cutoff_hz"])
    assert args.one_euro_beta == DEFAULT_BETA and args.one_euro_min_cutoff == 0.0  # off unless asked
