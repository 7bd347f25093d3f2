"""Depth messages -> metres, colour/depth pairing by stamp, and the depth lines of /diagnostics (ROS-free)."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest

from hand_recon_ros.pipeline.depth_fusion import DepthError
from hand_recon_ros.ros.depth_image import depth_fields_to_metres
from hand_recon_ros.ros.depth_pairing import DepthPairer
from hand_recon_ros.ros.diagnostics import WARN, NodeStats


def test_16uc1_and_32fc1_decode_to_metres_with_step_and_endianness() -> None:
    mm = np.array([[0, 500, 1000], [65535, 1, 2]], np.uint16)
    padded = np.zeros((2, 4), np.uint16)
    padded[:, :3] = mm
    got = depth_fields_to_metres(2, 3, "16UC1", 8, False, padded.tobytes(), 0.001)
    assert got.dtype == np.float32 and np.allclose(got, mm * 0.001)
    big = depth_fields_to_metres(2, 3, "16UC1", 6, True, mm.astype(">u2").tobytes(), 0.0001)
    assert np.allclose(big, mm * 0.0001)
    metres = np.array([[0.5, np.nan, 1.25]], np.float32)
    got = depth_fields_to_metres(1, 3, "32FC1", 12, False, metres.tobytes(), 0.001)  # scale ignored for 32FC1
    assert got[0, 0] == pytest.approx(0.5) and np.isnan(got[0, 1]) and got[0, 2] == pytest.approx(1.25)


@pytest.mark.parametrize("fields, message", [
    ((2, 2, "rgb8", 6, False, bytes(12)), "unsupported depth encoding 'rgb8'"),
    ((2, 2, "16UC1", 2, False, bytes(8)), "step 2 is smaller"),
    ((2, 2, "16UC1", 4, False, bytes(6)), "has 6 bytes, expected"),
    ((0, 2, "32FC1", 8, False, b""), "size 2x0"),
])
def test_bad_depth_messages_are_refused_with_the_field_named(fields: tuple, message: str) -> None:
    with pytest.raises(DepthError, match=message):
        depth_fields_to_metres(*fields, 0.001)


def test_pairing_takes_the_nearest_stamp_and_refuses_stale_and_future_frames() -> None:
    pairer = DepthPairer(max_age_s=0.05)
    assert pairer.pair(1.0).problem == "no depth frame received"
    for stamp in (1.0, 1.033, 1.066):
        pairer.put(stamp, f"d{stamp}")
    got = pairer.pair(1.04)
    assert got.msg == "d1.033" and got.age_s == pytest.approx(0.007)
    stale = pairer.pair(1.2)
    assert stale.msg is None and "too old: 134 ms" in stale.problem
    future = pairer.pair(0.9)
    assert future.msg is None and "from the future: 100 ms" in future.problem


def test_pairing_waits_for_the_depth_of_the_colour_frame() -> None:
    pairer = DepthPairer(max_age_s=0.1, wait_s=1.0)
    pairer.put(1.0, "old")
    threading.Timer(0.1, pairer.put, args=(1.033, "new")).start()
    start = time.monotonic()
    got = pairer.pair(1.033)
    assert got.msg == "new" and time.monotonic() - start < 0.9
    start = time.monotonic()
    stalled = pairer.pair(10.0)  # the depth stream stopped 9 s ago: no waiting for it
    assert stalled.msg is None and "too old" in stalled.problem and time.monotonic() - start < 0.5


def test_diagnostics_count_depth_use_and_warn_in_on_mode() -> None:
    clock = SimpleNamespace(t=100.0)
    stats = NodeStats(clock=lambda: clock.t)
    stats.depth_mode = "on"
    stats.record_input()
    stats.record_camera_info()
    stats.record_output(0.01, 2, True)
    stats.record_depth("", 0.004, hands_by_depth=2)
    snap = stats.snapshot()
    assert snap.values["depth frames used"] == "1" and snap.values["depth age p50 (ms)"] == "4.0"
    assert snap.values["hands placed by depth"] == "2" and snap.level != WARN
    clock.t += 0.1
    stats.record_depth("depth frame too old: 200 ms")
    snap = stats.snapshot()
    assert snap.level == WARN and "depth not used: depth frame too old" in snap.message
    assert snap.values["depth fallbacks"] == "1" and snap.values["last depth fallback"].startswith("depth frame")
    clock.t += 0.1
    stats.record_depth("", 0.0)
    assert stats.snapshot().level != WARN, "depth used again: no WARN"
    off = NodeStats()
    assert "depth frames used" not in off.snapshot().values


def test_use_depth_on_and_off_survive_yaml_booleans() -> None:
    """`use_depth: on` in a params file (or -p use_depth:=on) reaches the node as a bool (YAML 1.1)."""
    from hand_recon_ros.ros.parameters import PARAMETERS_BY_NAME, ParameterValueError, descriptor, validate_value

    assert validate_value("use_depth", True) == "on"
    assert validate_value("use_depth", False) == "off"
    assert validate_value("use_depth", "auto") == "auto"
    with pytest.raises(ParameterValueError, match="use_depth must be one of auto, on, off"):
        validate_value("use_depth", "sometimes")
    assert descriptor(PARAMETERS_BY_NAME["use_depth"]).dynamic_typing
    with pytest.raises(ParameterValueError, match="mirrored must be true or false"):
        validate_value("mirrored", "on")  # only string parameters with on/off choices map booleans
