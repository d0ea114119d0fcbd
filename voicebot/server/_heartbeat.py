"""One timer for every connection's heartbeat, instead of one sleeping task per connection.

Each connection is pinged ``interval`` seconds after it starts and ``interval`` seconds after each pong; a ping
with no pong within ``2 * interval`` of its start closes the connection (4002). The schedule is one heap of
``(due, seq, round, connection)`` entries served by one task: an idle connection holds no task and no Trio
deadline of its own, only the ping task that :meth:`Beating.send_ping` starts for the time a ping is in flight.
Ping times are rounded up to a multiple of ``interval / 64`` (0.23 s for 15 s), so connections that started
close together are pinged in one batch (one wake-up of the timer, and their pongs read in the same few passes
of the event loop) instead of one wake-up each. Entries are removed lazily, when they come due: a connection
has at most three queued (its next ping and the pong deadlines of its last two pings) and those of a
connection that ended are dropped.
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

    def send_ping(self, round_: int) -> bool:
        """Start ping number ``round_`` (it runs in the connection's own nursery and calls
        :meth:`Heartbeats.answered` on its pong); False when the connection no longer runs."""
        ...

    def ping_answered(self, round_: int) -> bool:
        """Whether ping ``round_`` got its pong (or the connection no longer runs)."""
        ...

    def ping_missed(self) -> None:
        """No pong within two intervals: close the connection."""
        ...


_PING = 0  # ``round`` of a ping-due entry; a positive round is the pong deadline of that ping
#: Ping times are rounded up to a multiple of ``interval / BATCHES`` (see the module docs).
BATCHES = 64


class Heartbeats:
    """The shared heartbeat timer of one server; :meth:`run` in a nursery that outlives the connections."""

    def __init__(self, interval: float) -> None:
        if not interval > 0:
            raise ValueError("heartbeat interval must be > 0")
        self.interval = interval
        self._granule = interval / BATCHES
        self._heap: list[tuple[float, int, int, Beating]] = []
        self._seq = itertools.count()
        self._rounds = itertools.count(1)
        self._wakeup = trio.Event()
        self._sleeping_until = math.inf

    def __len__(self) -> int:
        """Entries queued (pings due and pong deadlines), stale ones included."""
        return len(self._heap)

    def start(self, conn: Beating) -> None:
        """Schedule ``conn``'s first ping one interval from now (rounded up to the batch granule)."""
        self._push(self._ping_time(), _PING, conn)

    def answered(self, conn: Beating) -> None:
        """``conn`` got the pong of its ping: the next one goes out one interval from now (rounded up)."""
        self._push(self._ping_time(), _PING, conn)

    def _ping_time(self) -> float:
        slots = (trio.current_time() + self.interval) / self._granule
        return math.ceil(slots - 1e-9) * self._granule  # a time on a multiple (up to float error) stays put

    def _push(self, due: float, round_: int, conn: Beating) -> None:
        heapq.heappush(self._heap, (due, next(self._seq), round_, conn))
        if due < self._sleeping_until:
            self._wakeup.set()

    async def run(self) -> None:
        """Serve the schedule until cancelled."""
        heap = self._heap
        while True:
            now = trio.current_time()
            while heap and heap[0][0] <= now:
                _, _, round_, conn = heapq.heappop(heap)
                if round_ == _PING:
                    round_ = next(self._rounds)
                    if conn.send_ping(round_):
                        self._push(now + 2 * self.interval, round_, conn)
                elif not conn.ping_answered(round_):
                    conn.ping_missed()
            self._sleeping_until = heap[0][0] if heap else math.inf
            if self._wakeup.is_set():
                self._wakeup = trio.Event()
            with trio.move_on_at(self._sleeping_until):
                await self._wakeup.wait()
            self._sleeping_until = -math.inf  # awake: pushes need not wake the loop
