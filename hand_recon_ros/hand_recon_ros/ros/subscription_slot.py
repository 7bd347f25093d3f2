"""A subscription the inference worker waits on and takes from itself: no executor wake-up, no thread hop.

With the executor in between, a camera frame went DDS listener -> executor thread (rclpy's Python wait-set
loop, then the callback) -> the worker's condition variable -> the worker, which then had to win the GIL from
the executor thread still finishing its loop: 1.5-2 ms of a 10 Hz frame's latency on a 2-core CPU
(benchmarks/bench_node_latency.py). Here the worker blocks in rcl_wait on the image subscription alone (the
GIL released) and takes the sample when it arrives. The subscription sits in a callback group the executor
never serves, so only the worker takes from it; "latest frame wins" is the reader's depth-1 history: a frame
not taken before the next one arrives is replaced, and counted from the publisher's sequence numbers.
Side subscriptions (CameraInfo) are taken by the same worker before each frame and whenever it wakes, so the
CameraInfo a camera publishes just before its image is the one used with it (through the executor it could
arrive after the image had already been taken).

``SubscriptionSlot`` has LatestFrameSlot's ``take`` / ``close``, so FrameWorker serves either.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from rclpy.callback_groups import CallbackGroup

T = TypeVar("T")


class WorkerTakenGroup(CallbackGroup):
    """A callback group the executor never serves: its subscription is waited on and taken by a worker thread."""

    def can_execute(self, entity: Any) -> bool:
        """Never: the executor leaves the entity out of its wait set."""
        return False

    def beginning_execution(self, entity: Any) -> bool:
        """Never."""
        return False

    def ending_execution(self, entity: Any) -> None:
        """Nothing to release."""


class SubscriptionSlot(Generic[T]):
    """``take`` waits on one subscription (``attach``ed later, possibly) and converts the sample it takes.

    ``convert(message, message_info)`` turns a taken sample into the worker's item, or None to skip it.
    """

    def __init__(self, convert: Callable[[Any, dict[str, Any]], T | None]) -> None:
        self._convert = convert
        self._lock = threading.Lock()
        self._attached = threading.Condition(self._lock)
        self._subscription: Any = None
        self._side: list[tuple[Any, Callable[[Any], None]]] = []
        self._wait_set: Any = None
        self._context: Any = None
        self._closed = False
        # wall clock (time.time()) of the last take's wake-up (its wait returned, or it found a sample waiting) and
        # of the start of its image take, for the latency trace; read by ``convert`` on the same thread
        self.woken_s = 0.0
        self.take_start_s = 0.0

    def attach(self, subscription: Any, context: Any,
               side: Sequence[tuple[Any, Callable[[Any], None]]] = ()) -> None:
        """Serve ``subscription`` (created with a WorkerTakenGroup in ``context``, an rclpy Context) from now on, and
        hand every message of each ``side`` subscription (also WorkerTakenGroup) to its handler."""
        # rclpy's own wait_for_message waits the same way (the wait set has no public class)
        from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy

        with self._attached:
            self._subscription, self._side, self._context = subscription, list(side), context
            self._wait_set = _rclpy.WaitSet(1 + len(self._side), 0, 0, 0, 0, 0, context.handle)
            self._attached.notify_all()

    def detach(self) -> None:
        """Stop serving the subscriptions (before they are destroyed)."""
        with self._attached:
            self._subscription = self._wait_set = None
            self._side = []

    def take(self, timeout_s: float | None = None) -> T | None:
        """The next sample (newest one, depth-1 reader) converted, waiting up to ``timeout_s``; None on timeout,
        when closed, unattached, or when ``convert`` skips it."""
        with self._attached:
            if self._subscription is None and not self._closed:
                self._attached.wait(timeout_s)
            subscription, side, wait_set = self._subscription, self._side, self._wait_set
            if subscription is None or self._closed:
                return None
        timeout_ns = -1 if timeout_s is None else int(timeout_s * 1e9)
        try:
            with contextlib.ExitStack() as handles:
                for entity in (subscription, *(sub for sub, _ in side)):
                    handles.enter_context(entity.handle)
                self.woken_s = time.time()
                _drain(side)
                self.take_start_s = time.time()
                sample = subscription.handle.take_message(subscription.msg_type, subscription.raw)
                if sample is None:
                    wait_set.clear_entities()
                    for entity in (subscription, *(sub for sub, _ in side)):
                        wait_set.add_subscription(entity.handle)
                    wait_set.wait(timeout_ns)
                    self.woken_s = time.time()
                    _drain(side)
                    self.take_start_s = time.time()
                    sample = subscription.handle.take_message(subscription.msg_type, subscription.raw)
        except Exception:  # noqa: BLE001 - destroyed under us (deactivate, shutdown): nothing to take
            context = self._context
            if self._closed or self._subscription is not subscription or (context is not None and not context.ok()):
                return None
            raise
        if sample is None:
            return None
        message, info = sample
        return self._convert(message, info)

    def close(self) -> None:
        """Wake a waiting ``take`` (within its timeout) and refuse further items."""
        with self._attached:
            self._closed = True
            self._attached.notify_all()

    @property
    def closed(self) -> bool:
        """True after ``close``."""
        return self._closed


def _drain(side: Sequence[tuple[Any, Callable[[Any], None]]]) -> None:
    """Take every waiting message of each side subscription and hand it to its handler (never blocks)."""
    for subscription, handle in side:
        while (sample := subscription.handle.take_message(subscription.msg_type, subscription.raw)) is not None:
            handle(sample[0])
