"""Retargeting on the real video ../shared/data/video/right_hand_motion.mp4 (real pipeline, real URDFs): every
output finite and inside the URDF's joint limits, for Allegro and LEAP. The numbers (largest frame-to-frame step,
time per hand) are reported by benchmarks/bench_retargeting.py, not asserted here."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from conftest import missing
from test_retargeting import robots_dir  # noqa: E402

from hand_recon_ros.io.image_source import iter_frames  # noqa: E402
from hand_recon_ros.pipeline.config import PipelineConfig  # noqa: E402
from hand_recon_ros.pipeline.hand_pipeline import HandPipeline  # noqa: E402
from hand_recon_ros.retargeting.robot_retargeter import HandRetargeter  # noqa: E402

FPS = 30.0


@pytest.fixture(scope="module")
def video_right_hands(shared_data_dir: Path, model_paths) -> list[np.ndarray | None]:
    path = shared_data_dir / "video" / "right_hand_motion.mp4"
    if not path.is_file():
        missing(f"{path} not present")
    pipeline = HandPipeline(PipelineConfig(mode="video"))
    hands = []
    for frame in iter_frames([str(path)]):
        assert frame.image is not None, frame.error
        result = pipeline.process(frame.image, None, frame.index / FPS)
        right = [h.joints_3d for h in result.hands if h.side == "right" and h.joints_3d is not None]
        hands.append(right[0] if right else None)
    pipeline.close()
    return hands


@pytest.mark.parametrize("config", ["allegro_hand_right", "leap_hand_right"])
def test_every_frame_is_retargeted_finite_and_within_limits(video_right_hands: list, config: str) -> None:
    retargeter = HandRetargeter(config, robots_dir(), "right")
    low, high = retargeter.joint_limits.T
    present = [j for j in video_right_hands if j is not None]
    assert len(present) >= 0.9 * len(video_right_hands), "the right hand is missing from too many frames"
    outputs = [retargeter.retarget(j) for j in present]
    assert retargeter.failures == {}, retargeter.failures
    q = np.array([o.positions for o in outputs])
    assert np.all(np.isfinite(q))
    assert np.all(q >= low) and np.all(q <= high)
    steps = np.abs(np.diff(q, axis=0)).max()
    assert 0.0 < steps < np.pi  # the hand moves; no joint jumps across a half turn between two frames
    assert np.ptp(q, axis=0).max() > 0.2, "the robot hand barely moved over the whole video"
