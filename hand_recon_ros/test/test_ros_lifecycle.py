"""hand_recon_lifecycle_node over real DDS: every transition driven by a peer through the lifecycle services.

The node runs in its own process (fake pipeline where the pipeline is not the subject; the real one for
"configure loads models" and the failing configure). The test process is the peer: it calls
<node>/change_state and <node>/get_state and watches the topics.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import hand_recon_msgs.msg  # noqa: F401 - built by make setup, never skipped
import pytest
import rclpy  # noqa: F401 - required, never skipped

sys.path.insert(0, str(Path(__file__).parent))
from lifecycle_msgs.msg import State, Transition  # noqa: E402
from lifecycle_msgs.srv import ChangeState, GetState  # noqa: E402
from test_ros_peer import (  # noqa: E402
    FAKE_CLOSED_BANNER,
    PROBE_STAMP_S,
    Peer,
    first_pixel_image,
    start_node,
    stop_node,
)

# Domain IDs 140-169 belong to this branch's DDS tests; the pid spreads parallel runs over them.
FAKE_DOMAIN_ID = 140 + os.getpid() % 5  # 140..144
REAL_DOMAIN_ID = 145 + os.getpid() % 5  # 145..149
NODE_NAME = "hand_recon_node"
SERVICE_TIMEOUT_S = 30.0
RECEIVE_TIMEOUT_S = 10.0
# How long the peer listens to be sure an inactive node sends nothing (s).
QUIET_WINDOW_S = 1.5
EXIT_TIMEOUT_S = 15.0


def change_state(peer: Peer, transition_id: int) -> bool:
    """Ask the node for a transition through its change_state service; its ``success``."""
    request = ChangeState.Request()
    request.transition.id = transition_id
    return bool(peer.call_service(ChangeState, f"/{NODE_NAME}/change_state", request, SERVICE_TIMEOUT_S).success)


def current_state(peer: Peer) -> int:
    """The node's primary state id (lifecycle_msgs/State)."""
    return int(peer.call_service(GetState, f"/{NODE_NAME}/get_state", GetState.Request(), SERVICE_TIMEOUT_S)
               .current_state.id)


def answers_frames(peer: Peer, first_stamp_s: float, count: int = 30) -> bool:
    """Send probe frames until one comes back as a HandArray (True) or ``count`` went unanswered."""
    for i in range(count):
        stamp_s = first_stamp_s + i
        peer.send(first_pixel_image(3), stamp_s)
        if peer.wait_for(lambda s=stamp_s: bool(peer.hands_with_stamp(s)), 0.3):
            return True
    return False


def wait_until(predicate: Any, timeout_s: float) -> bool:
    """Poll ``predicate`` until it holds or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return bool(predicate())


def wait_for_exit(process: Any, timeout_s: float = EXIT_TIMEOUT_S) -> tuple[int, str]:
    """The exit code and output of a node that should end by itself (finalized); SIGINT if it does not."""
    try:
        process.wait(timeout=timeout_s)
    except Exception:  # noqa: BLE001 - not exited: stop it and fail on the code below
        return -1, stop_node(process)[1]
    output = process.stdout.read() if process.stdout else ""
    return process.returncode, output


@pytest.fixture()
def fake_lifecycle():
    process = start_node(FAKE_DOMAIN_ID, {"no_image_timeout_s": 30.0}, lifecycle=True)
    peer = Peer(FAKE_DOMAIN_ID)
    try:
        assert current_state(peer) == State.PRIMARY_STATE_UNCONFIGURED
        yield process, peer
    finally:
        peer.close()
        if process.poll() is None:
            print(stop_node(process)[1])


def test_every_transition_over_dds(fake_lifecycle) -> None:
    process, peer = fake_lifecycle
    # unconfigured: no outputs, no subscriptions
    assert peer.node.count_publishers("hands") == 0
    assert peer.node.count_subscribers("image") == 0

    assert change_state(peer, Transition.TRANSITION_CONFIGURE)
    assert current_state(peer) == State.PRIMARY_STATE_INACTIVE
    assert wait_until(lambda: peer.node.count_publishers("hands") > 0, RECEIVE_TIMEOUT_S)
    assert peer.node.count_subscribers("image") == 0, "inactive node must not subscribe"

    assert change_state(peer, Transition.TRANSITION_ACTIVATE)
    assert current_state(peer) == State.PRIMARY_STATE_ACTIVE
    assert wait_until(lambda: peer.image_pub.get_subscription_count() > 0, RECEIVE_TIMEOUT_S)
    assert answers_frames(peer, PROBE_STAMP_S + 100), "active node did not answer"

    assert change_state(peer, Transition.TRANSITION_DEACTIVATE)
    assert current_state(peer) == State.PRIMARY_STATE_INACTIVE
    assert wait_until(lambda: peer.image_pub.get_subscription_count() == 0, RECEIVE_TIMEOUT_S)
    with peer.lock:
        answered = len(peer.hands)
    for i in range(10):
        peer.send(first_pixel_image(3), PROBE_STAMP_S + 200 + i)
        time.sleep(QUIET_WINDOW_S / 10)
    with peer.lock:
        assert len(peer.hands) == answered, "an inactive node published HandArray"

    assert change_state(peer, Transition.TRANSITION_ACTIVATE), "re-activation failed"
    assert answers_frames(peer, PROBE_STAMP_S + 300), "re-activated node did not answer"
    assert change_state(peer, Transition.TRANSITION_DEACTIVATE)

    assert change_state(peer, Transition.TRANSITION_CLEANUP)
    assert current_state(peer) == State.PRIMARY_STATE_UNCONFIGURED
    assert wait_until(lambda: peer.node.count_publishers("hands") == 0, RECEIVE_TIMEOUT_S)

    assert change_state(peer, Transition.TRANSITION_CONFIGURE), "configure after cleanup failed"
    assert change_state(peer, Transition.TRANSITION_INACTIVE_SHUTDOWN)
    code, output = wait_for_exit(process)
    assert code == 0, output
    assert output.count(FAKE_CLOSED_BANNER) == 2, f"cleanup and shutdown should each close the pipeline:\n{output}"
    assert "Traceback" not in output, output


@pytest.mark.parametrize("reach", ["unconfigured", "active"])
def test_shutdown_from_any_state_exits_cleanly(fake_lifecycle, reach: str) -> None:
    process, peer = fake_lifecycle
    shutdown = Transition.TRANSITION_UNCONFIGURED_SHUTDOWN
    if reach == "active":
        assert change_state(peer, Transition.TRANSITION_CONFIGURE)
        assert change_state(peer, Transition.TRANSITION_ACTIVATE)
        assert answers_frames(peer, PROBE_STAMP_S + 100)
        shutdown = Transition.TRANSITION_ACTIVE_SHUTDOWN
    assert change_state(peer, shutdown)
    code, output = wait_for_exit(process)
    assert code == 0, output
    assert "Traceback" not in output and "did not stop in time" not in output, output
    assert output.count(FAKE_CLOSED_BANNER) == (1 if reach == "active" else 0), output


def test_sigint_while_active_exits_cleanly(fake_lifecycle) -> None:
    process, peer = fake_lifecycle
    assert change_state(peer, Transition.TRANSITION_CONFIGURE)
    assert change_state(peer, Transition.TRANSITION_ACTIVATE)
    assert answers_frames(peer, PROBE_STAMP_S + 100)
    code, output = stop_node(process)
    assert code == 0, output
    assert FAKE_CLOSED_BANNER in output and "Traceback" not in output, output


def test_failing_configure_returns_failure_and_the_node_stays_valid() -> None:
    """The real node with an empty model folder: configure fails naming the fix, the node keeps serving."""
    with tempfile.TemporaryDirectory() as empty_cache:
        process = start_node(REAL_DOMAIN_ID, {"engine_cache_dir": empty_cache}, fake=False, lifecycle=True,
                             env={"PIP_INDEX_URL": "http://127.0.0.1:9/simple", "PIP_NO_INDEX": "1"})
        peer = Peer(REAL_DOMAIN_ID)
        try:
            assert current_state(peer) == State.PRIMARY_STATE_UNCONFIGURED
            assert not change_state(peer, Transition.TRANSITION_CONFIGURE)
            assert current_state(peer) == State.PRIMARY_STATE_UNCONFIGURED
            assert peer.wait_for(lambda: (s := peer.latest_status()) is not None and
                                 "hand-recon models fetch" in s.message, RECEIVE_TIMEOUT_S)
            status = peer.latest_status()
            assert status.level == b"\x02" and "configure failed" in status.message, status.message
            assert "fetch_models" in status.message, status.message
            assert not os.listdir(empty_cache), "a refused configure must not download anything"
            assert not change_state(peer, Transition.TRANSITION_CONFIGURE), "second try must fail the same way"
            assert change_state(peer, Transition.TRANSITION_UNCONFIGURED_SHUTDOWN)
            code, output = wait_for_exit(process)
        finally:
            peer.close()
            if process.poll() is None:
                print(stop_node(process)[1])
    assert code == 0, output
    assert "hand-recon models fetch" in output, output


def test_configure_loads_the_real_models_and_activate_answers(woman_hands_path: Path, model_paths) -> None:
    """Real HandPipeline: configure loads it, activate answers a real photo with two hands, cleanup closes it."""
    import cv2
    import numpy as np

    rgb = cv2.cvtColor(cv2.imread(str(woman_hands_path)), cv2.COLOR_BGR2RGB)
    process = start_node(REAL_DOMAIN_ID, {"no_image_timeout_s": 60.0}, fake=False, lifecycle=True)
    peer = Peer(REAL_DOMAIN_ID)
    try:
        assert change_state(peer, Transition.TRANSITION_CONFIGURE)
        assert peer.wait_for(lambda: (s := peer.latest_status()) is not None and "palm:" in
                             {kv.key: kv.value for kv in s.values}.get("backend", ""), RECEIVE_TIMEOUT_S)
        assert change_state(peer, Transition.TRANSITION_ACTIVATE)
        assert wait_until(lambda: peer.image_pub.get_subscription_count() > 0, RECEIVE_TIMEOUT_S)
        assert wait_until(lambda: peer.node.count_publishers("hands") > 0, RECEIVE_TIMEOUT_S)
        got = None
        for i in range(20):
            stamp_s = 500.0 + i
            peer.send(np.ascontiguousarray(rgb), stamp_s)
            if peer.wait_for(lambda s=stamp_s: bool(peer.hands_with_stamp(s)), 2.0):
                got = peer.hands_with_stamp(stamp_s)[-1]
                break
        assert got is not None, "no HandArray for the real photo"
        assert len(got.hands) == 2, [h.side for h in got.hands]
        peer.send(np.zeros((1, 1, 3), np.uint8), 600.0, with_info=False)  # decodes, but too small to process
        assert peer.wait_for(lambda: (s := peer.latest_status()) is not None and
                             "errors (input)" in {kv.key for kv in s.values}, RECEIVE_TIMEOUT_S)
        values = {kv.key: kv.value for kv in peer.latest_status().values}
        assert "errors (inference)" not in values and "must have shape" in values["last error"], values
        assert change_state(peer, Transition.TRANSITION_DEACTIVATE)
        assert change_state(peer, Transition.TRANSITION_CLEANUP)
        assert change_state(peer, Transition.TRANSITION_UNCONFIGURED_SHUTDOWN)
        code, output = wait_for_exit(process)
    finally:
        peer.close()
        if process.poll() is None:
            print(stop_node(process)[1])
    assert code == 0, output
    assert "pipeline closed" in output and "pipeline ready" in output, output
