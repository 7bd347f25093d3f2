"""One-Euro filter and the per-track hand output filter (pure numpy)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hand_recon_ros.pipeline.hand_filter import HandOutputFilter
from hand_recon_ros.pipeline.one_euro_filter import MAX_GAP_S, OneEuroFilter, OneEuroSettings, smoothing_factor
from hand_recon_ros.pipeline.types import FrameResult, HandDetection, HandResult, RotatedRect

DT_S = 1.0 / 30.0


def test_off_passes_samples_unchanged() -> None:
    f = OneEuroFilter(OneEuroSettings(min_cutoff_hz=0.0))
    assert not f.settings.enabled
    for k, x in enumerate([0.0, 5.0, -3.0]):
        assert f.filter(np.array([x]), k * DT_S)[0] == x


def test_beta_zero_is_a_first_order_low_pass() -> None:
    """With beta = 0 the step response is the closed form 1 - (1 - alpha)^n of an exponential smoother."""
    settings = OneEuroSettings(min_cutoff_hz=2.0, beta=0.0)
    f = OneEuroFilter(settings)
    f.filter(np.zeros(3), 0.0)
    alpha = smoothing_factor(2.0, DT_S)
    for n in range(1, 20):
        out = f.filter(np.ones(3), n * DT_S)
        np.testing.assert_allclose(out, 1.0 - (1.0 - alpha) ** n, rtol=1e-12)


def test_speed_raises_the_cutoff_so_a_ramp_lags_less() -> None:
    lags = []
    for beta in (0.0, 1.0, 10.0):
        f = OneEuroFilter(OneEuroSettings(min_cutoff_hz=1.0, beta=beta, d_cutoff_hz=1.0))
        speed = 0.5  # m/s
        out = 0.0
        for n in range(90):
            out = f.filter(np.array([speed * n * DT_S]), n * DT_S)[0]
        lags.append((speed * 89 * DT_S - out) / speed)  # seconds behind the ramp
    assert lags[0] > lags[1] > lags[2] > 0.0
    assert lags[0] == pytest.approx(1.0 / (2 * math.pi * 1.0), rel=0.25)  # a 1 Hz low-pass lags ~1/(2 pi fc)


def test_jitter_on_a_still_point_is_reduced() -> None:
    rng = np.random.default_rng(0)
    noise = rng.normal(0.0, 0.002, size=(300, 21, 3))
    f = OneEuroFilter(OneEuroSettings(min_cutoff_hz=1.0, beta=1.0))
    out = np.array([f.filter(noise[n], n * DT_S) for n in range(300)])
    assert out[30:].std() < 0.4 * noise.std()


def test_gaps_time_going_back_and_bad_samples() -> None:
    f = OneEuroFilter(OneEuroSettings(min_cutoff_hz=1.0))
    f.filter(np.zeros(2), 0.0)
    assert f.filter(np.ones(2), DT_S)[0] < 0.5
    assert f.filter(np.full(2, 7.0), DT_S + MAX_GAP_S + 0.1)[0] == 7.0  # a gap restarts
    assert f.filter(np.full(2, 3.0), 0.0)[0] == 3.0  # time going back restarts
    held = f.filter(np.full(2, 3.0), 0.0)
    assert np.all(np.isnan(f.filter(np.array([np.nan, 1.0]), DT_S)[:1]))  # passed through, not filtered
    assert f.filter(np.full(2, 3.0), 2 * DT_S)[0] == pytest.approx(held[0])  # the history survived the NaN


@pytest.mark.parametrize("kwargs", [{"min_cutoff_hz": -1.0}, {"beta": float("nan")}, {"d_cutoff_hz": 0.0}])
def test_invalid_settings_are_named(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        OneEuroSettings(**kwargs)


def _hand(track_id: int, side: str, offset: float, quaternion: np.ndarray) -> HandResult:
    joints = np.full((21, 3), offset, dtype=np.float32)
    detection = HandDetection(side, 0.9, 0.9, np.zeros((21, 2), np.float32), np.zeros(21, np.float32),
                              np.zeros((21, 3), np.float32), RotatedRect(0, 0, 1, 1, 0), track_id)
    return HandResult(detection, joints, np.ones(21, np.float32), joints[0].copy(), quaternion.astype(np.float32))


def test_hand_filter_keeps_one_history_per_track_and_forgets_lost_ones() -> None:
    hand_filter = HandOutputFilter(OneEuroSettings(min_cutoff_hz=1.0))
    q = np.array([0.0, 0.0, 0.0, 1.0])
    hand_filter.apply(FrameResult(10, 10, True, [_hand(0, "left", 0.0, q), _hand(1, "right", 1.0, q)]), 0.0)
    frame = FrameResult(10, 10, True, [_hand(0, "left", 0.1, q), _hand(1, "right", 1.1, q)])
    hand_filter.apply(frame, DT_S)
    left, right = frame.hands
    assert 0.0 < left.joints_3d[0, 0] < 0.05 and 1.0 < right.joints_3d[0, 0] < 1.05  # each follows its own track
    assert left.wrist_position[0] == pytest.approx(left.joints_3d[0, 0], abs=1e-6)
    frame = FrameResult(10, 10, True, [_hand(0, "left", 0.5, q)])
    hand_filter.apply(frame, 2 * DT_S)  # track 1 gone
    frame = FrameResult(10, 10, True, [_hand(1, "right", 3.0, q)])
    hand_filter.apply(frame, 3 * DT_S)
    assert frame.hands[0].joints_3d[0, 0] == pytest.approx(3.0)  # a returning id starts fresh


def test_quaternion_sign_flips_do_not_swing_the_filtered_orientation() -> None:
    hand_filter = HandOutputFilter(OneEuroSettings(min_cutoff_hz=1.0))
    q = np.array([0.1, 0.2, 0.3, 0.9])
    q /= np.linalg.norm(q)
    for n, sign in enumerate([1, -1, 1, -1, -1]):
        frame = FrameResult(10, 10, True, [_hand(0, "left", 0.0, sign * q)])
        hand_filter.apply(frame, n * DT_S)
        out = frame.hands[0].wrist_quaternion
        assert abs(abs(float(np.dot(out, q))) - 1.0) < 1e-5  # the same rotation every frame
        assert np.linalg.norm(out) == pytest.approx(1.0, abs=1e-6)
