"""ros.diagnostics: rates, percentiles and the OK/WARN/ERROR rules, on a controllable clock."""

from __future__ import annotations

import pytest

from hand_recon_ros.ros.diagnostics import ERROR, ERROR_HOLD_S, OK, WARN, NodeStats, to_diagnostic_array


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def _run(stats: NodeStats, clock: Clock, frames: int, period_s: float, latency_s: float) -> None:
    for _ in range(frames):
        clock.t += period_s
        stats.record_input()
        stats.record_camera_info()
        stats.record_output(latency_s, 2, True, latency_s / 2)


def test_rates_latency_and_counts() -> None:
    clock = Clock()
    stats = NodeStats(no_image_timeout_s=2.0, clock=clock)
    _run(stats, clock, 50, 0.1, 0.012)
    stats.record_drop(3)
    snap = stats.snapshot()
    assert snap.level == OK, snap.message
    assert float(snap.values["input rate (Hz)"]) == pytest.approx(10.0, rel=0.05)
    assert float(snap.values["latency p50 (ms)"]) == pytest.approx(12.0)
    assert float(snap.values["pipeline time p50 (ms)"]) == pytest.approx(6.0)
    assert snap.values["dropped frames"] == "3" and snap.values["hands per frame"] == "2.00"
    assert snap.values["frames received"] == "50" and snap.values["intrinsics"] == "CameraInfo"


def test_no_image_warns_after_the_timeout() -> None:
    clock = Clock()
    stats = NodeStats(no_image_timeout_s=2.0, clock=clock)
    _run(stats, clock, 5, 0.1, 0.01)
    clock.t += 2.5
    snap = stats.snapshot()
    assert snap.level == WARN and "no image for 2.5 s" in snap.message
    fresh = NodeStats(no_image_timeout_s=2.0, clock=clock)
    clock.t += 3.0
    assert "no image" in fresh.snapshot().message


def test_missing_camera_info_warns() -> None:
    clock = Clock()
    stats = NodeStats(clock=clock)
    stats.record_input()
    stats.record_output(0.01, 1, False)
    snap = stats.snapshot()
    assert snap.level == WARN and "assumed intrinsics" in snap.message and snap.values["intrinsics"] == "assumed"


def test_errors_raise_error_level_for_a_while_and_stay_counted() -> None:
    clock = Clock()
    stats = NodeStats(clock=clock)
    _run(stats, clock, 3, 0.1, 0.01)
    stats.record_error("input", "unsupported image encoding 'bayer_rggb8'")
    snap = stats.snapshot()
    assert snap.level == ERROR and "bayer_rggb8" in snap.message and snap.values["errors (input)"] == "1"
    clock.t += ERROR_HOLD_S + 0.1
    stats.record_input()
    stats.record_output(0.01, 1, True)
    snap = stats.snapshot()
    assert snap.level == OK and snap.values["errors (input)"] == "1" and "bayer" in snap.values["last error"]
    stats.fatal = "pipeline not loaded: model file not found"
    assert stats.snapshot().level == ERROR


def test_diagnostic_array_message() -> None:
    from builtin_interfaces.msg import Time

    clock = Clock()
    stats = NodeStats(clock=clock)
    stats.backend = "onnxruntime-cpu"
    stats.record_error("inference", "boom")
    array = to_diagnostic_array(stats.snapshot(), "node: hand reconstruction", stats.backend, Time(sec=5))
    status = array.status[0]
    assert status.level == bytes([ERROR]) and status.hardware_id == "onnxruntime-cpu"
    assert {kv.key for kv in status.values} >= {"latency p95 (ms)", "dropped frames", "backend"}


def test_standing_warning_holds_until_cleared() -> None:
    """An unsupported CameraInfo model stays a WARN (not an ERROR that fades) until a usable one arrives."""
    clock = Clock()
    stats = NodeStats(clock=clock)
    _run(stats, clock, 5, 0.1, 0.01)
    stats.set_warning("camera_info", "CameraInfo.distortion_model 'x' is not supported")
    clock.t += ERROR_HOLD_S + 1.0
    stats.record_input()
    snap = stats.snapshot()
    assert snap.level == WARN and "distortion_model 'x'" in snap.message
    assert snap.values["warning (camera_info)"].startswith("CameraInfo.distortion_model")
    stats.set_warning("camera_info", None)
    snap = stats.snapshot()
    assert snap.level == OK and "warning (camera_info)" not in snap.values
