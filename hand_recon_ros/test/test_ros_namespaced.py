"""config/hand_recon.yaml applies under any node name and namespace, over DDS; an unknown lens model is WARNed once.

The fake node runs renamed and namespaced (``__ns:=/robot1``, ``__node:=cam_hands``) with a copy of the
shipped parameter file (same top-level key, two values changed); the peer reads the values back through the
node's get_parameters service. The same node gets CameraInfo with an unsupported distortion model: one log
line, a standing WARN on /diagnostics naming it.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import hand_recon_msgs.msg  # noqa: F401 - built by make setup, never skipped
import pytest
import rclpy  # noqa: F401 - required, never skipped
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from test_ros_peer import Peer, first_pixel_image, make_camera_info, start_node, stop_node  # noqa: E402

CONFIG_FILE = Path(__file__).resolve().parents[1] / "config" / "hand_recon.yaml"
# Domain IDs 140-169 belong to this branch's DDS tests.
DOMAIN_ID = 155 + os.getpid() % 5  # 155..159
FULL_NAME = "/robot1/cam_hands"
CHANGED = {"max_hands": 1, "marker_lifetime_s": 2.5, "tf_prefix": "robot1_hand_"}
UNKNOWN_MODEL = "kannala_brandt_custom"
TIMEOUT_S = 20.0


@pytest.fixture(scope="module")
def namespaced_node(tmp_path_factory):
    data = yaml.safe_load(CONFIG_FILE.read_text(encoding="utf-8"))
    (key,) = data  # whatever the shipped file's top-level key is, keep it
    data[key]["ros__parameters"].update(CHANGED)
    params_file = tmp_path_factory.mktemp("params") / "hand_recon.yaml"
    params_file.write_text(yaml.safe_dump(data), encoding="utf-8")
    process = start_node(DOMAIN_ID, {"no_image_timeout_s": 60.0}, extra_args=[
        "--params-file", str(params_file), "-r", "__ns:=/robot1", "-r", "__node:=cam_hands",
        "-r", "image:=/image", "-r", "camera_info:=/camera_info"])
    peer = Peer(DOMAIN_ID)
    try:
        yield process, peer
    finally:
        peer.close()
        if process.poll() is None:
            print(stop_node(process)[1])


def test_parameter_file_applies_to_a_renamed_namespaced_node(namespaced_node) -> None:
    from rcl_interfaces.srv import GetParameters

    _, peer = namespaced_node
    request = GetParameters.Request()
    request.names = list(CHANGED)
    values = peer.call_service(GetParameters, f"{FULL_NAME}/get_parameters", request, TIMEOUT_S).values
    got = {"max_hands": values[0].integer_value, "marker_lifetime_s": values[1].double_value,
           "tf_prefix": values[2].string_value}
    assert got == CHANGED, "config/hand_recon.yaml did not apply under another name/namespace (key it '/**')"


def test_unknown_distortion_model_is_warned_once_and_kept_in_diagnostics(namespaced_node) -> None:
    process, peer = namespaced_node
    assert peer.wait_for(lambda: peer.info_pub.get_subscription_count() > 0, TIMEOUT_S) or \
        peer.info_pub.get_subscription_count() > 0
    deadline = time.monotonic() + TIMEOUT_S
    seen = None
    while time.monotonic() < deadline and seen is None:
        info = make_camera_info(64, 48, "cam")
        info.distortion_model = UNKNOWN_MODEL
        info.d = [0.1, 0.01, 0.001, 0.0001]
        peer.info_pub.publish(info)
        peer.image_pub.publish(make_image(first_pixel_image(1)))
        time.sleep(0.2)
        status = peer.latest_status()
        if status is not None and UNKNOWN_MODEL in status.message:
            seen = status
    assert seen is not None, "no WARN naming the unsupported distortion model"
    assert seen.level in (b"\x01", b"\x02") and "distortion_model" in seen.message
    assert seen.name.startswith("cam_hands:"), seen.name
    code, output = stop_node(process)
    assert code == 0, output
    assert output.count(f"CameraInfo.distortion_model '{UNKNOWN_MODEL}'") == 1, output


def make_image(rgb):
    """An rgb8 Image under a fixed stamp (the fake pipeline answers every one)."""
    from test_ros_peer import make_image_msg

    return make_image_msg(rgb, 10.0, "cam")
