"""hand_recon_node over real DDS, node in its own process with the fake pipeline (see test_ros_peer.py).

Covers: header propagation, HandArray for every frame, marker rules on the wire, live and refused
parameters, malformed input, the burst behaviour (latest frame wins, drops counted) and SIGINT shutdown.
"""

from __future__ import annotations

import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_ros_peer import (  # noqa: E402
    FAKE_PROCESS_MS,
    START_DELAY_ENV,
    STARTING_BANNER,
    TRACK_IDS_PER_RESET,
    Peer,
    first_pixel_image,
    make_camera_info,
    start_node,
    status_values,
    stop_node,
)

DOMAIN_ID = 215 + os.getpid() % 9  # 215..223; other DDS test modules use other ranges
RECEIVE_TIMEOUT_S = 10.0
NODE_NAME = "hand_recon_node"
DIAGNOSTICS_WAIT_S = 1.0


@pytest.fixture(scope="module")
def node_and_peer():
    process = start_node(DOMAIN_ID, {"marker_lifetime_s": 2.0, "no_image_timeout_s": 30.0})
    peer = Peer(DOMAIN_ID)
    try:
        peer.wait_for_node()
        yield process, peer
    finally:
        peer.close()
        code, output = stop_node(process)
        print(output)


def _send_and_wait(peer: Peer, red: int, stamp_s: float, frame_id: str = "camera_optical_frame", **kwargs):
    peer.send(first_pixel_image(red, **kwargs), stamp_s, frame_id)
    assert peer.wait_for(lambda: peer.hands_with_stamp(stamp_s), RECEIVE_TIMEOUT_S), f"no HandArray for {stamp_s}"
    assert peer.wait_for(lambda: peer.markers_with_stamp(stamp_s), RECEIVE_TIMEOUT_S), f"no markers for {stamp_s}"
    return peer.hands_with_stamp(stamp_s)[-1], peer.markers_with_stamp(stamp_s)[-1]


def _by_ns_side(marker_array) -> dict[tuple[str, int], object]:
    return {(m.ns, m.id): m for m in marker_array.markers}


def _assert_finite_markers(marker_array) -> None:
    for m in marker_array.markers:
        for p in m.points:
            assert math.isfinite(p.x) and math.isfinite(p.y) and math.isfinite(p.z), f"{m.ns}/{m.id} has NaN/Inf"
        if m.type == m.TRIANGLE_LIST:
            assert len(m.points) % 3 == 0


def test_outputs_carry_input_stamp_and_frame(node_and_peer) -> None:
    _, peer = node_and_peer
    hands, markers = _send_and_wait(peer, 3, 1234.5, "test_camera_optical_frame")
    assert hands.header.frame_id == "test_camera_optical_frame"
    assert (hands.header.stamp.sec, hands.header.stamp.nanosec) == (1234, 500_000_000)
    assert hands.intrinsics_known is True
    assert sorted(h.side for h in hands.hands) == [0, 1]
    left = next(h for h in hands.hands if h.side == 0)
    assert left.joints[0].x == pytest.approx(-0.1) and left.joints[0].z == pytest.approx(0.5)
    for m in markers.markers:
        assert m.header.frame_id == "test_camera_optical_frame"
        assert (m.header.stamp.sec, m.header.stamp.nanosec) == (1234, 500_000_000)
        assert m.lifetime.sec == 2
    parts = _by_ns_side(markers)
    assert set(parts) == {("joints", 0), ("joints", 1), ("bones", 0), ("bones", 1)}
    assert len(parts[("joints", 0)].points) == 21 and len(parts[("bones", 1)].points) == 40
    _assert_finite_markers(markers)


def test_empty_frame_still_publishes_and_deletes_markers(node_and_peer) -> None:
    _, peer = node_and_peer
    _send_and_wait(peer, 3, 2000.0)
    hands, markers = _send_and_wait(peer, 1, 2001.0)  # left only: the right hand's markers must go
    assert [h.side for h in hands.hands] == [0]
    parts = _by_ns_side(markers)
    assert parts[("joints", 0)].action == parts[("joints", 0)].ADD
    assert parts[("joints", 1)].action == parts[("joints", 1)].DELETE
    assert parts[("bones", 1)].action == parts[("bones", 1)].DELETE
    hands, markers = _send_and_wait(peer, 0, 2002.0)  # no hand: HandArray still published, left deleted
    assert hands.hands == []
    assert {(m.ns, m.id) for m in markers.markers if m.action == m.DELETE} == {("joints", 0), ("bones", 0)}
    peer.send(first_pixel_image(0), 2003.0)
    assert peer.wait_for(lambda: peer.hands_with_stamp(2003.0), RECEIVE_TIMEOUT_S)
    time.sleep(0.3)
    assert not [m for a in peer.markers_with_stamp(2003.0) for m in a.markers], "nothing left to delete"


def test_mesh_toggles_live_with_fixed_triangle_count(node_and_peer) -> None:
    _, peer = node_and_peer
    results = peer.set_parameters(NODE_NAME, {"mesh": True})
    assert results[0].successful, results[0].reason
    hands, markers = _send_and_wait(peer, 3, 3000.0)
    parts = _by_ns_side(markers)
    for side in (0, 1):
        mesh = parts[("mesh", side)]
        assert mesh.type == mesh.TRIANGLE_LIST and len(mesh.points) == 36
    assert all(len(h.mesh.triangles) == 12 and len(h.mesh.vertices) == 8 for h in hands.hands)
    _assert_finite_markers(markers)
    assert peer.set_parameters(NODE_NAME, {"mesh": False})[0].successful
    _, markers = _send_and_wait(peer, 3, 3001.0)
    parts = _by_ns_side(markers)
    assert parts[("mesh", 0)].action == parts[("mesh", 0)].DELETE
    assert parts[("joints", 0)].action == parts[("joints", 0)].ADD


def test_max_hands_changes_live(node_and_peer) -> None:
    _, peer = node_and_peer
    assert peer.set_parameters(NODE_NAME, {"max_hands": 1})[0].successful
    hands, _ = _send_and_wait(peer, 3, 3100.0)
    assert len(hands.hands) == 1
    assert peer.set_parameters(NODE_NAME, {"max_hands": 2})[0].successful
    hands, _ = _send_and_wait(peer, 3, 3101.0)
    assert len(hands.hands) == 2


def test_stamp_going_back_resets_tracking(node_and_peer) -> None:
    _, peer = node_and_peer
    before, _ = _send_and_wait(peer, 3, 9000.0)
    after, _ = _send_and_wait(peer, 3, 8999.0)  # a bag loop or camera restart
    same, _ = _send_and_wait(peer, 3, 8999.5)
    ids = [sorted(h.track_id for h in msg.hands) for msg in (before, after, same)]
    assert ids[1] == [i + TRACK_IDS_PER_RESET for i in ids[0]]
    assert ids[2] == ids[1]


def test_declared_parameters_match_the_table_and_the_launch_file(node_and_peer) -> None:
    """What the running node declares (over the parameter services) is what the launch file and docs rely on."""
    import ast

    from rcl_interfaces.msg import ParameterType
    from rcl_interfaces.srv import DescribeParameters, ListParameters

    from hand_recon_ros.ros.parameters import PARAMETERS_BY_NAME

    _, peer = node_and_peer
    listed = peer.call_service(ListParameters, f"/{NODE_NAME}/list_parameters", ListParameters.Request())
    declared = set(listed.result.names) - {"use_sim_time", "start_type_description_service"}
    assert declared == set(PARAMETERS_BY_NAME)
    described = peer.call_service(DescribeParameters, f"/{NODE_NAME}/describe_parameters",
                                  DescribeParameters.Request(names=sorted(declared)))
    by_name = {d.name: d for d in described.descriptors}
    score = by_name["min_detection_score"]
    assert score.type == ParameterType.PARAMETER_DOUBLE and score.floating_point_range[0].to_value == 1.0
    assert by_name["backend"].read_only and not by_name["max_hands"].read_only
    assert all(d.description for d in described.descriptors)
    launch = Path(__file__).resolve().parents[1] / "launch" / "hand_recon.launch.py"
    tree = ast.parse(launch.read_text(encoding="utf-8"))
    arguments = next(ast.literal_eval(n.value) for n in tree.body
                     if isinstance(n, ast.AnnAssign) and getattr(n.target, "id", "") == "PARAMETER_ARGUMENTS")
    assert {name for name, _ in arguments} <= declared


def test_camera_info_of_another_size_is_not_used(node_and_peer) -> None:
    _, peer = node_and_peer
    peer.info_pub.publish(make_camera_info(640, 480, "camera_optical_frame"))
    time.sleep(0.2)
    peer.send(first_pixel_image(3), 9500.0, with_info=False)  # a 64x48 image
    assert peer.wait_for(lambda: peer.hands_with_stamp(9500.0), RECEIVE_TIMEOUT_S)
    assert peer.hands_with_stamp(9500.0)[-1].intrinsics_known is False
    hands, _ = _send_and_wait(peer, 3, 9501.0)  # matching CameraInfo again
    assert hands.intrinsics_known is True


def test_invalid_and_read_only_parameters_are_refused(node_and_peer) -> None:
    _, peer = node_and_peer
    refused = peer.set_parameters(NODE_NAME, {"min_detection_score": 1.5})[0]
    assert not refused.successful and "1.5" in refused.reason
    refused = peer.set_parameters(NODE_NAME, {"max_hands": 0})[0]
    assert not refused.successful and "0" in refused.reason
    refused = peer.set_parameters(NODE_NAME, {"backend": "tensorrt"})[0]
    assert not refused.successful
    refused = peer.set_parameters(NODE_NAME, {"mode": "fast"})[0]
    assert not refused.successful and "fast" in refused.reason


def test_malformed_messages_leave_node_alive_with_errors_in_diagnostics(node_and_peer) -> None:
    process, peer = node_and_peer
    from sensor_msgs.msg import Image

    def wait_error(text: str) -> None:
        def seen() -> bool:
            for array in peer.diagnostics[-5:]:
                for status in array.status:
                    if status.level == b"\x02" and text in status.message:
                        return True
            return False

        assert peer.wait_for(seen, 5.0), f"no ERROR mentioning {text!r} in /diagnostics"

    bad = Image()
    bad.header.frame_id = "camera_optical_frame"
    bad.height, bad.width, bad.encoding, bad.step = 4, 4, "bayer_rggb8", 4
    bad.data = bytes(16)
    peer.image_pub.publish(bad)
    wait_error("bayer_rggb8")

    short = Image()
    short.height, short.width, short.encoding, short.step = 48, 64, "rgb8", 192
    short.data = bytes(100)
    peer.image_pub.publish(short)
    wait_error("expected step*height")

    empty = Image()
    empty.encoding = "rgb8"
    peer.image_pub.publish(empty)
    wait_error("zero size")

    info = make_camera_info(64, 48, "camera_optical_frame")
    info.k = [float("nan")] + list(info.k)[1:]
    peer.info_pub.publish(info)
    wait_error("non-finite")

    peer.send(first_pixel_image(3, green=255), 4000.0)  # the fake pipeline raises
    wait_error("fake inference failure")

    assert process.poll() is None, "node died on malformed input"
    hands, _ = _send_and_wait(peer, 3, 4001.0)
    assert len(hands.hands) == 2
    values = status_values(peer.latest_status())
    assert int(values["errors (input)"]) >= 3 and int(values["errors (camera_info)"]) >= 1


def test_burst_keeps_latency_bounded_and_counts_drops(node_and_peer) -> None:
    """10x the processing rate for 2 s: frames are dropped (counted), not queued; the lag (in frames) stays bounded."""
    _, peer = node_and_peer
    process_rate_hz = 1e3 / FAKE_PROCESS_MS
    burst_hz, burst_s = 10 * process_rate_hz, 2.0
    first_stamp = 5000.0
    n_frames = int(burst_hz * burst_s)
    with peer.lock:
        received_before = len(peer.hands)
    image = first_pixel_image(3)
    start = time.monotonic()
    sent_at: dict[int, float] = {}
    for i in range(n_frames):
        target = start + i / burst_hz
        while time.monotonic() < target:
            time.sleep(0.0005)
        sent_at[i] = time.time()
        peer.send(image, first_stamp + i * 1e-3, with_info=(i % 10 == 0))
    last_stamp = first_stamp + (n_frames - 1) * 1e-3
    assert peer.wait_for(lambda: peer.hands_with_stamp(last_stamp), RECEIVE_TIMEOUT_S), "newest frame never done"
    time.sleep(2.5 * DIAGNOSTICS_WAIT_S)
    with peer.lock:
        burst = [(t, m) for t, m in peer.hands[received_before:] if m.header.stamp.sec >= int(first_stamp)]
    processed = len(burst)
    assert processed < n_frames / 3, f"{processed} of {n_frames} processed: frames were queued, not dropped"
    assert processed >= 0.25 * process_rate_hz * burst_s, f"only {processed} outputs: the worker stalled"
    # Lag in frames, not seconds (no wall-clock threshold): when the output for frame j arrives, how many newer
    # frames had been sent. Latest-wins lags by about one processing time's worth of frames (~10 here); a
    # queueing node's lag would grow through the burst towards n_frames - processed.
    send_times = np.array([sent_at[i] for i in range(n_frames)])
    lags = []
    for received_t, msg in burst:
        index = round((msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9 - first_stamp) * 1e3)
        lags.append(int(np.searchsorted(send_times, received_t, side="right")) - 1 - index)
    assert max(lags) < n_frames / 4, f"the output fell behind under the burst: lag up to {max(lags)} frames"
    half = len(lags) // 2
    assert np.median(lags[half:]) < 2 * np.median(lags[:half]) + 20, f"lag grew through the burst: {lags}"
    values = status_values(peer.latest_status())
    assert int(values["dropped frames"]) >= n_frames // 4, values


def test_sigint_shuts_down_cleanly() -> None:
    domain = DOMAIN_ID  # own node process; the module's node is on the same domain but has another name
    process = start_node(domain, extra_args=["-r", "__node:=hand_recon_sigint_test"])
    peer = Peer(domain, node_name="sigint_peer", image_topic="unused_image")
    try:
        deadline = time.monotonic() + 20.0
        while time.monotonic() < deadline and "hand_recon_sigint_test" not in peer.node.get_node_names():
            time.sleep(0.1)
        assert "hand_recon_sigint_test" in peer.node.get_node_names(), "node never came up"
    finally:
        peer.close()
    code, output = stop_node(process)
    assert code == 0, output
    assert "terminate called" not in output and "Traceback" not in output, output


def test_sigint_during_start_up_exits_cleanly() -> None:
    # A Ctrl-C while the node is still starting (loading models on a robot) must not print a traceback.
    process = start_node(DOMAIN_ID, env={START_DELAY_ENV: "30"})
    deadline = time.monotonic() + 20.0
    seen = []
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        seen.append(line)
        if STARTING_BANNER in line or not line:
            break
    assert any(STARTING_BANNER in line for line in seen), "".join(seen)
    code, output = stop_node(process)
    assert code == 0, output
    assert "interrupted during start-up" in output, output
    assert "Traceback" not in output and "KeyboardInterrupt" not in output, output


def test_compressed_transport_and_undecodable_data() -> None:
    import cv2
    from sensor_msgs.msg import CompressedImage

    domain = DOMAIN_ID
    process = start_node(domain, {"image_transport": "compressed"},
                         extra_args=["-r", "__node:=hand_recon_compressed_test", "-r", "image:=cam"])
    peer = Peer(domain, node_name="compressed_peer", image_topic="cam/compressed")
    try:
        deadline = time.monotonic() + 20.0
        while time.monotonic() < deadline and not peer.image_pub.get_subscription_count():
            time.sleep(0.05)
        ok, png = cv2.imencode(".png", cv2.cvtColor(first_pixel_image(3), cv2.COLOR_RGB2BGR))
        assert ok
        stamp = 7000.0
        while time.monotonic() < deadline and not peer.hands_with_stamp(stamp):
            stamp += 1.0
            msg = CompressedImage(format="png", data=png.tobytes())
            msg.header.stamp.sec, msg.header.frame_id = int(stamp), "cam_optical"
            peer.image_pub.publish(msg)
            peer.wait_for(lambda s=stamp: bool(peer.hands_with_stamp(s)), 0.5)
        hands = peer.hands_with_stamp(stamp)
        assert hands and len(hands[-1].hands) == 2 and hands[-1].header.frame_id == "cam_optical"
        assert hands[-1].intrinsics_known is False  # no CameraInfo sent: assumed intrinsics
        peer.image_pub.publish(CompressedImage(format="jpeg", data=b"\xff\xd8 definitely not a jpeg"))

        def decode_error() -> bool:
            status = peer.latest_status()
            return status is not None and "could not be decoded" in status.message

        assert peer.wait_for(decode_error, 5.0)
        assert "assumed intrinsics" in peer.latest_status().message
        assert process.poll() is None
    finally:
        peer.close()
        code, output = stop_node(process)
    assert code == 0, output
    assert "/cam/compressed (compressed)" in output


def test_a_sigint_while_the_node_is_built_is_a_clean_exit() -> None:
    """rclpy's SIGINT handler shuts the context down; the half-built node's next rcl call fails: exit 0."""
    import rclpy

    from hand_recon_ros.ros.node import build_and_spin

    def interrupted() -> object:
        rclpy.shutdown()  # what rclpy does on SIGINT, before Python sees the signal
        raise RuntimeError("Failed to create publisher: rcl node's context is invalid")

    def broken() -> object:
        raise RuntimeError("a real fault")

    rclpy.init(domain_id=170)
    assert build_and_spin(interrupted) == 0
    rclpy.init(domain_id=170)
    try:
        with pytest.raises(RuntimeError, match="a real fault"):  # with the context alive it is a fault
            build_and_spin(broken)
    finally:
        rclpy.try_shutdown()
