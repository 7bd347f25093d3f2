"""Latest-frame-wins hand-off between a subscription callback and one worker thread.

The callback ``put``s and never waits; an item still in the slot when a newer one arrives is dropped (and
counted by the caller from ``put``'s return value), so output lags by at most one frame of processing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")

# How often the worker re-checks for a stop request while the slot is empty (seconds).
POLL_INTERVAL_S = 0.1


class LatestFrameSlot(Generic[T]):
    """A one-item mailbox: ``put`` replaces, ``take`` waits for an item and empties the slot."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._item: T | None = None
        self._has_item = False
        self._closed = False

    def put(self, item: T) -> bool:
        """Store ``item``; True when it replaced one the worker had not taken yet (a dropped frame)."""
        with self._condition:
            if self._closed:
                return True
            dropped = self._has_item
            self._item, self._has_item = item, True
            self._condition.notify()
            return dropped

    def take(self, timeout_s: float | None = None) -> T | None:
        """The newest item, waiting up to ``timeout_s``; None on timeout or once closed."""
        with self._condition:
            if not self._has_item and not self._closed:
                self._condition.wait(timeout_s)
            if not self._has_item or self._closed:
                return None
            item, self._item, self._has_item = self._item, None, False
            return item

    def close(self) -> None:
        """Wake any waiter and refuse further items."""
        with self._condition:
            self._closed = True
            self._item, self._has_item = None, False
            self._condition.notify_all()

    @property
    def closed(self) -> bool:
        """True after ``close``."""
        return self._closed


class FrameWorker(Generic[T]):
    """One thread taking items from a LatestFrameSlot and handing them to ``handle``; errors go to ``on_error``."""

    def __init__(
        self,
        slot: LatestFrameSlot[T],
        handle: Callable[[T], None],
        on_error: Callable[[BaseException], None],
        name: str = "hand_recon_worker",
        on_start: Callable[[], None] | None = None,
    ) -> None:
        self._slot = slot
        self._handle = handle
        self._on_error = on_error
        self._on_start = on_start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def _run(self) -> None:
        if self._on_start is not None:
            try:
                self._on_start()
            except Exception as exc:  # noqa: BLE001 - reported, the worker keeps serving
                self._on_error(exc)
        while not self._stop.is_set():
            item = self._slot.take(POLL_INTERVAL_S)
            if item is None or self._stop.is_set():
                continue
            try:
                self._handle(item)
            except Exception as exc:  # noqa: BLE001 - one bad frame must not end the worker
                self._on_error(exc)

    def stop(self, timeout_s: float = 5.0) -> bool:
        """Ask the thread to finish its current item and exit; True when it has exited within ``timeout_s``."""
        self._stop.set()
        self._slot.close()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        return not self._thread.is_alive()

    @property
    def alive(self) -> bool:
        """True while the thread runs."""
        return self._thread.is_alive()
