"""A still hand stays still: the real pipeline on one real photo repeated as a video (issue 13, item 5)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from hand_recon_ros.pipeline.config import PipelineConfig
from hand_recon_ros.pipeline.hand_pipeline import HandPipeline

FRAMES = 61
SETTLED_FRAME = 10  # the fit must have converged by this frame ...
STILL_TOLERANCE_M = 0.001  # ... and every joint then stays this close to where it was


@pytest.fixture(scope="module")
def video_pipeline(model_paths):
    pipe = HandPipeline(PipelineConfig(mode="video"))
    yield pipe
    pipe.close()


@pytest.mark.parametrize("stamp_step_s", [1 / 30, 0.0])  # 30 fps stamps, and constant (zero) stamps
def test_repeated_photo_converges_then_stays_within_a_millimetre(video_pipeline, woman_hands_path, stamp_step_s):
    image = cv2.cvtColor(cv2.imread(str(woman_hands_path)), cv2.COLOR_BGR2RGB)
    video_pipeline.reset()
    frames = []
    for k in range(FRAMES):
        result = video_pipeline.process(image, timestamp_s=k * stamp_step_s)
        frames.append({h.detection.track_id: h.joints_3d.astype(np.float64) for h in result.hands
                       if h.joints_3d is not None})
    tracks = sorted(frames[SETTLED_FRAME])
    assert len(tracks) == 2, f"both hands of the photo should be tracked, got tracks {tracks}"
    for k in range(SETTLED_FRAME, FRAMES):
        assert sorted(frames[k]) == tracks, f"frame {k}: tracks {sorted(frames[k])}, expected {tracks}"
        for track in tracks:
            drift = np.linalg.norm(frames[k][track] - frames[SETTLED_FRAME][track], axis=1).max()
            assert drift <= STILL_TOLERANCE_M, f"frame {k}, track {track}: a joint moved {drift * 1e3:.2f} mm"
    assert any(np.abs(frames[0][t] - frames[SETTLED_FRAME][t]).max() > 0 for t in tracks if t in frames[0]), \
        "the first frame's fit should differ (the ROI and bone lengths settle first), else this test proves nothing"
