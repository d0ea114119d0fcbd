"""Back-pressure instead of buffering: what one connection and one address may hold in outboxes.

A client that sends requests but does not read the replies used to make the server buffer replies until the
outbox was full (then close 1008) — and 100 such connections from one address could hold 100 outboxes' worth of
memory, which grows the heap and lengthens the garbage collector's full passes for everyone. Now:

- a connection's reader stops reading the next frame while its outbox is more than half full (messages or
  bytes) and resumes once it has drained to a quarter; the client's own requests then wait in TCP (the kernel's
  buffers, then the client's ``send``), not in the server's memory;
- the same holds for an **address** (all its connections' outboxes together, ``outbox_bytes_per_address``):
  past half of it, every connection of that address stops reading until the total has drained to a quarter;
- a message that would take the address past the whole budget closes the receiving connection 1008 (like its own
  full outbox), unless its outbox is empty — so one address holds at most that budget plus one message per
  connection.

:class:`OutboxLedger` keeps the per-address totals and wakes paused readers (sans-IO apart from ``trio.Event``);
:class:`ReadPausing` is the connection's side: its reader waits here before it reads the next frame.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

import trio

if TYPE_CHECKING:
    from ._hosts import ConnectionHost

__all__ = ["CLOSE_POLICY", "OutboxLedger", "ReadPausing"]

#: Close code for a client that does not read (its outbox, or its address's outboxes, stayed full).
CLOSE_POLICY = 1008


class OutboxLedger:
    """Bytes queued in outboxes per address key, against ``per_address`` (0: no per-address budget)."""

    def __init__(self, per_address: int) -> None:
        self.per_address = per_address
        self.pauses = 0
        """Times a reader paused for back-pressure (own outbox or address), since start."""
        self._bytes: dict[str, int] = {}
        self._waiters: dict[str, trio.Event] = {}

    def total(self, key: str) -> int:
        """Bytes queued for ``key`` now."""
        return self._bytes.get(key, 0)

    def add(self, key: str, size: int) -> None:
        """``size`` bytes were queued for a connection of ``key``."""
        self._bytes[key] = self._bytes.get(key, 0) + size

    def remove(self, key: str, size: int) -> None:
        """``size`` bytes of ``key`` left an outbox (sent or discarded); paused readers of ``key`` re-check."""
        left = self._bytes.get(key, 0) - size
        if left > 0:
            self._bytes[key] = left
        else:
            self._bytes.pop(key, None)
        waiters = self._waiters.pop(key, None)
        if waiters is not None:
            waiters.set()

    def would_overflow(self, key: str, size: int) -> bool:
        """Queuing ``size`` more bytes would take ``key`` past its whole budget."""
        return bool(self.per_address) and self.total(key) + size > self.per_address

    def over_pause_mark(self, key: str) -> bool:
        """``key`` holds more than half its budget: its readers pause."""
        return bool(self.per_address) and self.total(key) > self.per_address // 2

    def over_resume_mark(self, key: str) -> bool:
        """``key`` still holds more than a quarter of its budget: paused readers stay paused."""
        return bool(self.per_address) and self.total(key) > self.per_address // 4

    async def changed(self, key: str) -> None:
        """Wait until some of ``key``'s queued bytes leave an outbox."""
        event = self._waiters.get(key)
        if event is None:
            event = self._waiters[key] = trio.Event()
        await event.wait()


class ReadPausing:
    """A connection's reader side of back-pressure: a mixin of :class:`~voicebot.server._connection.Connection`
    (which holds the state named below)."""

    __slots__ = ("paused",)

    if TYPE_CHECKING:
        server: ConnectionHost
        address: str
        out_bytes: int
        close_decision: tuple[int, str] | None
        _outbox: deque[Any] | None

        def request_close(self, code: int, reason: str, *, flush: bool = True) -> None: ...

    def _must_pause(self, mark: int) -> bool:
        """The outbox holds more than ``1/mark`` of its message or byte cap, or the address is over its mark."""
        s = self.server.settings
        ledger = self.server.quotas.outboxes
        # An empty outbox holds 0 bytes (no message encodes to nothing): the count is read only when it may matter.
        if self.out_bytes and (self.out_bytes > s.outbox_bytes // mark
                               or len(self._outbox or ()) > s.outbox_size // mark):
            return True
        return ledger.over_pause_mark(self.address) if mark == 2 else ledger.over_resume_mark(self.address)

    async def _wait_for_room(self) -> None:
        """Back-pressure: read the next frame only once this connection's outbox and its address's outboxes have
        room (pause past half, resume at a quarter). A connection whose own client stopped reading is closed by
        its writer's send deadline (``2 × heartbeat_interval``, 4002); this wait has a longer deadline of its own
        (``3 × heartbeat_interval``, then 1008) for a connection held up by other connections of its address."""
        if not self._must_pause(2):
            return
        self.paused = True
        self.server.quotas.outboxes.pauses += 1
        timeout = 3 * self.server.settings.heartbeat_interval
        try:
            with trio.move_on_after(timeout):
                while self._must_pause(4):
                    await self.server.quotas.outboxes.changed(self.address)
                return
        finally:
            self.paused = False
        if self.close_decision is None:
            self.server.errors.note_close(CLOSE_POLICY)
        self.request_close(CLOSE_POLICY, f"outbox full: client did not read for {timeout:g} s", flush=False)
