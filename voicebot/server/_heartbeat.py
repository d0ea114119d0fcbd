"""One timer for every connection's heartbeat, instead of one sleeping task per connection.

A connection is alive while bytes arrive from its client. One ``interval`` after the last bytes arrived (or after
it started) it is pinged; a ping with no bytes received within ``2 * interval`` of its start closes the connection
(4002). A pong is bytes received, and so is any other frame: a connection whose client keeps sending is never
pinged. An idle client is pinged about once per interval, each ping one interval after the previous pong.

The schedule is one heap of ``(due, seq, ping_sent_at, connection)`` entries served by one task, one entry per
connection: an idle connection holds no task and no Trio deadline of its own, and sending a ping is a call
(:meth:`Beating.send_ping`) that normally writes the frame at once. Due times are rounded up to a multiple of
``interval / 64`` (0.23 s for 15 s), so connections that started close together are pinged in one batch (one
wake-up of the timer) instead of one wake-up each. Entries of a connection that ended are dropped when they come
due.
"""

from __future__ import annotations

import heapq
import itertools
import math
from typing import Protocol

import trio

__all__ = ["Beating", "Heartbeats"]


class Beating(Protocol):
    """What the timer needs from a connection."""

    @property
    def last_received(self) -> float:
        """Trio time at which bytes last arrived from the client (the connection's start before any)."""
        ...

    def send_ping(self) -> bool:
        """Send a ping frame now (or as soon as the socket allows); False when the connection no longer runs."""
        ...

    def ping_missed(self) -> None:
        """No bytes within two intervals of a ping: close the connection."""
        ...


#: Due times are rounded up to a multiple of ``interval / BATCHES`` (see the module docs).
BATCHES = 64


class Heartbeats:
    """The shared heartbeat timer of one server; :meth:`run` in a nursery that outlives the connections."""

    def __init__(self, interval: float) -> None:
        if not interval > 0:
            raise ValueError("heartbeat interval must be > 0")
        self.interval = interval
        self._granule = interval / BATCHES
        self._heap: list[tuple[float, int, float | None, Beating]] = []
        self._seq = itertools.count()
        self._wakeup = trio.Event()
        self._sleeping_until = math.inf
        self.pings = 0
        """Pings sent so far (for tests and statistics)."""

    def __len__(self) -> int:
        """Entries queued (one per running connection, and those of ended connections not yet due)."""
        return len(self._heap)

    def start(self, conn: Beating) -> None:
        """Schedule ``conn``'s first check one interval after its last received bytes (rounded up)."""
        self._push(self._round_up(conn.last_received + self.interval), None, conn)

    def _round_up(self, t: float) -> float:
        return math.ceil(t / self._granule - 1e-9) * self._granule  # a time on a multiple (up to float error) stays

    def _push(self, due: float, ping_sent_at: float | None, conn: Beating) -> None:
        heapq.heappush(self._heap, (due, next(self._seq), ping_sent_at, conn))
        if due < self._sleeping_until:
            self._wakeup.set()

    def _beat(self, now: float, ping_sent_at: float | None, conn: Beating) -> None:
        """One due entry: wait on, ping, or close; re-queue unless the connection is done."""
        received = conn.last_received
        if ping_sent_at is not None and received < ping_sent_at:  # the ping is not answered yet
            deadline = ping_sent_at + 2 * self.interval
            if now >= deadline:
                conn.ping_missed()
            else:
                self._push(deadline, ping_sent_at, conn)
            return
        due = self._round_up(received + self.interval)
        if due > now:  # bytes arrived recently: nothing to ask yet
            self._push(due, None, conn)
        elif conn.send_ping():
            self.pings += 1
            # The pong normally arrives within one granule: the next ping is due one interval after it.
            self._push(now + self.interval + self._granule, now, conn)

    async def run(self) -> None:
        """Serve the schedule until cancelled."""
        heap = self._heap
        while True:
            now = trio.current_time()
            while heap and heap[0][0] <= now:
                _, _, ping_sent_at, conn = heapq.heappop(heap)
                self._beat(now, ping_sent_at, conn)
            self._sleeping_until = heap[0][0] if heap else math.inf
            if self._wakeup.is_set():
                self._wakeup = trio.Event()
            with trio.move_on_at(self._sleeping_until):
                await self._wakeup.wait()
            self._sleeping_until = -math.inf  # awake: pushes need not wake the loop
