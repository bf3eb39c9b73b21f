"""A bounded queue between the app's threads and the sender thread.

``put`` never blocks on I/O and holds a lock only for a deque operation: the
app's logging call must stay fast even while the gateway is down. When the
queue is full the *oldest* item is dropped (the newest logs are usually the
ones that explain the current state) and the drop is counted.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class DropOldestQueue(Generic[T]):
    def __init__(self, maxsize: int, *, wake_at: int) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self.maxsize = maxsize
        self.wake_at = max(1, min(wake_at, maxsize))
        self._reset()

    def _reset(self) -> None:
        self._items: deque[T] = deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self.put_count = 0
        self.dropped = 0

    def reset_after_fork(self) -> None:
        """In a forked child: forget the parent's items (the parent sends them) and
        replace the lock, which another parent thread may have held at fork time."""
        self._reset()

    def put(self, item: T) -> None:
        with self._lock:
            if len(self._items) >= self.maxsize:
                self._items.popleft()
                self.dropped += 1
            self._items.append(item)
            self.put_count += 1
            size = len(self._items)
        # Wake the sender only when a full batch is waiting; otherwise its timer does it.
        if size >= self.wake_at and not self._wake.is_set():
            self._wake.set()

    def take(self, limit: int) -> list[T]:
        with self._lock:
            count = min(limit, len(self._items))
            return [self._items.popleft() for _ in range(count)]

    def wait(self, timeout: float) -> None:
        """Sleep until a batch is ready, :meth:`wake` is called, or ``timeout`` passes."""
        if len(self._items) < self.wake_at:
            self._wake.wait(timeout)
        self._wake.clear()

    def wake(self) -> None:
        self._wake.set()

    def __len__(self) -> int:
        return len(self._items)
