"""ros.subscription_slot over real DDS in one process: the worker takes, the executor never does, sides first."""

from __future__ import annotations

import threading
import time

import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy
from std_msgs.msg import String

from hand_recon_ros.ros.subscription_slot import SubscriptionSlot, WorkerTakenGroup

RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


@pytest.fixture()
def node():
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=117)
    node = rclpy.create_node("subscription_slot_test", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    try:
        yield node
    finally:
        executor.shutdown()
        spinner.join(timeout=5.0)
        node.destroy_node()
        rclpy.try_shutdown(context=context)


def _matched(publisher, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while publisher.get_subscription_count() == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert publisher.get_subscription_count() > 0, "subscription never matched"


def test_the_worker_takes_and_the_executor_never_calls_back(node) -> None:
    executor_calls: list[str] = []
    side_seen: list[str] = []
    main = node.create_subscription(String, "main", lambda m: executor_calls.append(m.data), RELIABLE,
                                    callback_group=WorkerTakenGroup())
    side = node.create_subscription(String, "side", lambda m: executor_calls.append(m.data), RELIABLE,
                                    callback_group=WorkerTakenGroup())
    slot = SubscriptionSlot(lambda msg, info: (msg.data, list(side_seen), info["publication_sequence_number"]))
    slot.attach(main, node.context, [(side, lambda m: side_seen.append(m.data))])
    main_pub = node.create_publisher(String, "main", RELIABLE)
    side_pub = node.create_publisher(String, "side", RELIABLE)
    _matched(main_pub)
    _matched(side_pub)
    assert slot.take(0.05) is None  # nothing published yet: a timeout
    side_pub.publish(String(data="info-1"))
    time.sleep(0.2)  # the side message is delivered first, as a CameraInfo published before its image
    main_pub.publish(String(data="frame-1"))
    item = None
    deadline = time.monotonic() + 5.0
    while item is None and time.monotonic() < deadline:
        item = slot.take(0.1)
    assert item is not None, "the worker never took the sample"
    data, side_before, sequence = item
    assert data == "frame-1" and side_before == ["info-1"] and sequence >= 1
    time.sleep(0.3)
    assert executor_calls == []  # the executor left both subscriptions to the worker


def test_take_returns_none_once_detached_or_closed(node) -> None:
    main = node.create_subscription(String, "main2", lambda m: None, RELIABLE, callback_group=WorkerTakenGroup())
    slot = SubscriptionSlot(lambda msg, info: msg.data)
    assert slot.take(0.01) is None  # not attached yet
    slot.attach(main, node.context)
    slot.detach()
    assert slot.take(0.01) is None
    slot.close()
    assert slot.closed and slot.take(0.01) is None
