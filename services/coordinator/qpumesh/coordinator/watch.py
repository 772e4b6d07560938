"""What WatchJob streams need on the asyncio server: wake-ups per job, and a bound on open streams.

A stream is a coroutine on the coordinator's event loop, not a thread: it reads the
job's new events, then waits for ``JobChanges`` to wake it (the job store calls
``notify`` with the job id after every write that added an event, from whatever thread
wrote it). Thousands of idle streams therefore cost memory, not threads, and unary
calls keep being answered however many streams are open. ``StreamLimit`` still bounds
them (``--max-streams``, default ``DEFAULT_MAX_STREAMS``): one more is refused with
RESOURCE_EXHAUSTED naming the bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import defaultdict
from collections.abc import Iterator

DEFAULT_MAX_STREAMS = 1000
"""WatchJob streams open at once, by default."""
IDLE_WAKE_SECONDS = 5.0
"""A waiting stream looks at its job again after this long even without a wake-up."""


class JobChanges:
    """Wakes the streams of a job when it gets events.

    Args:
        loop: the event loop the streams run on.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._waiters: defaultdict[str, set[asyncio.Event]] = defaultdict(set)

    def notify(self, job_id: str) -> None:
        """Wake the streams of ``job_id``; callable from any thread."""
        self._call(self._wake, job_id)

    def notify_all(self) -> None:
        """Wake every stream (a shutdown); callable from any thread."""
        self._call(self._wake_all)

    def _call(self, function: object, *args: str) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is already closed
            self._loop.call_soon_threadsafe(function, *args)  # type: ignore[arg-type]

    def _wake(self, job_id: str) -> None:
        for event in self._waiters.get(job_id, ()):
            event.set()

    def _wake_all(self) -> None:
        for events in self._waiters.values():
            for event in events:
                event.set()

    @contextlib.contextmanager
    def waiter(self, job_id: str) -> Iterator[asyncio.Event]:
        """Yield an event set at the next change of ``job_id`` (register it before reading)."""
        event = asyncio.Event()
        self._waiters[job_id].add(event)
        try:
            yield event
        finally:
            waiters = self._waiters.get(job_id)
            if waiters is not None:
                waiters.discard(event)
                if not waiters:
                    del self._waiters[job_id]

    @staticmethod
    async def wait(event: asyncio.Event, timeout: float = IDLE_WAKE_SECONDS) -> None:
        """Wait until ``event`` is set or ``timeout`` passes."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout)


class StreamLimit:
    """Counts open streams; ``acquire`` fails once ``limit`` are open.

    Args:
        limit: the most streams open at once.
    """

    def __init__(self, limit: int = DEFAULT_MAX_STREAMS) -> None:
        if limit < 1:
            raise ValueError(f"the stream limit must be >= 1, got {limit}")
        self.limit = limit
        self.open = 0
        self._lock = threading.Lock()

    def acquire(self) -> bool:
        """Take a slot; False when ``limit`` streams are open."""
        with self._lock:
            if self.open >= self.limit:
                return False
            self.open += 1
            return True

    def release(self) -> None:
        """Give a slot back."""
        with self._lock:
            self.open = max(0, self.open - 1)
