"""ros.frame_slot: latest frame wins, drops reported, the worker survives errors and stops on request."""

from __future__ import annotations

import threading

from hand_recon_ros.ros.frame_slot import FrameWorker, LatestFrameSlot

WAIT_S = 5.0


def test_put_replaces_and_reports_the_drop() -> None:
    slot: LatestFrameSlot[int] = LatestFrameSlot()
    assert slot.put(1) is False
    assert slot.put(2) is True
    assert slot.put(3) is True
    assert slot.take(0.0) == 3
    assert slot.take(0.01) is None
    assert slot.put(4) is False


def test_close_wakes_a_waiting_taker_and_refuses_items() -> None:
    slot: LatestFrameSlot[int] = LatestFrameSlot()
    got: list[object] = []
    taker = threading.Thread(target=lambda: got.append(slot.take(WAIT_S)))
    taker.start()
    slot.close()
    taker.join(WAIT_S)
    assert not taker.is_alive() and got == [None]
    assert slot.put(5) is True and slot.take(0.0) is None and slot.closed


def test_worker_handles_newest_items_and_survives_errors() -> None:
    slot: LatestFrameSlot[int] = LatestFrameSlot()
    busy, release = threading.Event(), threading.Event()
    handled: list[int] = []
    errors: list[BaseException] = []
    seen = threading.Condition()

    def handle(item: int) -> None:
        if item == 0:
            busy.set()
            release.wait(WAIT_S)  # busy: later puts pile up in the slot
        if item == 1:
            raise RuntimeError("bad frame")
        with seen:
            handled.append(item)
            seen.notify_all()

    def wait_handled(item: int) -> bool:
        with seen:
            return seen.wait_for(lambda: item in handled, WAIT_S)

    def on_error(exc: BaseException) -> None:
        with seen:
            errors.append(exc)
            seen.notify_all()

    worker: FrameWorker[int] = FrameWorker(slot, handle, on_error)
    worker.start()
    slot.put(0)
    assert busy.wait(WAIT_S)
    assert [slot.put(i) for i in (2, 3, 4)] == [False, True, True]
    release.set()
    assert wait_handled(4)
    slot.put(1)
    with seen:
        assert seen.wait_for(lambda: len(errors) == 1, WAIT_S)
    slot.put(5)
    assert wait_handled(5)
    assert handled == [0, 4, 5]
    assert str(errors[0]) == "bad frame"
    assert worker.stop(WAIT_S) and not worker.alive


def test_on_start_failure_is_reported_and_the_worker_keeps_serving() -> None:
    slot: LatestFrameSlot[str] = LatestFrameSlot()
    errors: list[BaseException] = []
    handled = threading.Event()

    def fail() -> None:
        raise FileNotFoundError("model missing")

    worker: FrameWorker[str] = FrameWorker(slot, lambda item: handled.set(), errors.append, on_start=fail)
    worker.start()
    slot.put("frame")
    assert handled.wait(WAIT_S)
    assert isinstance(errors[0], FileNotFoundError)
    assert worker.stop(WAIT_S)
