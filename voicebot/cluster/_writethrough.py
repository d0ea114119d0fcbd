"""Cluster mode, write-through: what a hub buffers for its peers in grace is in Redis within milliseconds, and its
inbox is trimmed only once what it brought is safe.

A peer in grace here (its socket closed, its session waiting for a resume) gets its messages in the hub's memory.
If this hub dies, they must reach the peer when it resumes on another hub, so every message the hub core puts in
such a buffer is announced (:class:`~voicebot.hub.Buffered`) and copied to the peer's kept messages in Redis
(``buf:{peer}``, see :mod:`._move_scripts`) by the next copy: one script call per wake-up of the publisher task,
for every peer whose buffer grew since, in order with the rest of this hub's queued work (a hand-over queued
after a copy lands after it; a session resumed here discards its copy after it).

The same script trims this hub's inbox up to the last entry the reader had taken when the copy was prepared, so
an entry leaves the inbox only once the messages it brought for peers in grace are in Redis: whenever this hub
dies, each message is either still in its inbox (salvaged for its receivers) or copied, never neither and never
both. While no copy is due, the trimmer task drops what the reader took (one trim in flight). An entry whose
message waits in memory elsewhere is *pinned* (:meth:`WriteThrough.pin`) and stays until it is passed on: relayed
to the hub a peer moved to (until the publisher sent it), held for a peer whose takeover here is not finished or
behind another hub's fence (until delivered or buffered), or in a buffer being handed over (until handed).

Left open: an entry delivered to a live socket here and not trimmed yet when this hub dies is salvaged too, so
that peer may get it again when it resumes elsewhere (at-least-once for the milliseconds a trim takes; a message
in a socket's outbox is not safe either until the client has it).
"""

from __future__ import annotations

import collections
import functools
import json
from typing import TYPE_CHECKING, Any

import trio

from ..errors import VoiceBotError

if TYPE_CHECKING:
    from ._cluster import Cluster

__all__ = ["WriteThrough"]


class WriteThrough:
    """Copies of grace buffers and trims of the inbox of a :class:`~voicebot.cluster.Cluster` (``cluster.copies``).

    Invariant: the inbox is trimmed past an entry only after every message it brought for a peer in grace here
    is in Redis (the trim and the copy run in one script), or when nothing was buffered from it.
    """

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.copied: dict[str, int] = {}
        """Peer id → how many of its buffered messages (in grace here) are already copied to Redis."""
        self.copies = 0
        """Copy scripts run (each for every peer whose buffer grew since the last one)."""
        self.messages = 0
        """Messages copied to Redis."""
        self._pending: set[str] = set()
        self._queued = False  # a copy waits in the publisher's queue
        self._busy = False  # a copy is being carried out
        self._read_to: str | None = None  # the reader took this hub's inbox up to here (exclusive)
        self._safe_to: str | None = None  # the trimmer may drop entries up to here
        self._trimmed_to: str | None = None
        self._trim_wake = trio.Event()
        self._pins: collections.Counter[str] = collections.Counter()  # entry id → messages of it held in memory

    # -- what the hub buffered ------------------------------------------------------------------------
    def buffered(self, peer_ids: tuple[str, ...] | list[str]) -> None:
        """The hub core added messages to the buffers of ``peer_ids`` (in grace here): copy them soon."""
        self._pending.update(peer_ids)
        self._soon()

    def _soon(self) -> None:
        if not self._queued:  # a full queue: the next announcement or heartbeat asks again
            self._queued = self.cluster.enqueue("copy", None)

    def backstop(self) -> None:
        """Each heartbeat: anything buffered for peers in grace and not copied yet (a failed copy, a session
        adopted here that did not resume) is copied; a trim that nothing carried is made."""
        cluster = self.cluster
        adopting = cluster.sessions.adopting
        for session in cluster.hub.sessions.values():
            if (session.home is None and session.conn is None and session.buffer
                    and len(session.buffer) > self.copied.get(session.peer_id, 0)
                    and session.peer_id not in adopting):
                self._pending.add(session.peer_id)
        if self._pending:
            self._soon()
        elif not (self._queued or self._busy):
            self._trim_soon()

    def resumed_here(self, peer_id: str) -> None:
        """A session resumed (or ended) here: its buffer was delivered (or dropped) here, so its copy goes."""
        if self.copied.pop(peer_id, None) is not None:
            self.cluster.enqueue("discard", peer_id)

    def handed(self, peer_id: str) -> int:
        """A session is handed over to another hub: how many of its buffered messages are in Redis already
        (the rest goes with the hand-over, queued after every copy)."""
        self._pending.discard(peer_id)
        return self.copied.pop(peer_id, 0)

    async def discard(self, peer_id: str) -> None:
        """Drop the kept messages of ``peer_id`` (delivered here)."""
        await self.cluster.link.script("drain", peer_id)

    # -- the inbox ------------------------------------------------------------------------------------
    def read(self, after: str) -> None:
        """The reader took this hub's inbox up to ``after`` (exclusive) and handed every entry to the hub: trim
        it now, or with the copy that carries what those entries buffered."""
        self._read_to = after
        if self._pending:
            self._soon()
        if not (self._queued or self._busy or self._pending):
            self._trim_soon()

    def pin(self, entry_id: str | None) -> str | None:
        """A message of entry ``entry_id`` of this hub's inbox waits in memory (not in a peer's buffer): the
        entry and every later one stay in the inbox until :meth:`unpin` (lost with this hub, they are salvaged
        or claimed for their peers). ``None`` (not from this hub's inbox) pins nothing. Returns ``entry_id``."""
        if entry_id is not None:
            self._pins[entry_id] += 1
        return entry_id

    def pin_untrimmed(self) -> str:
        """Pin every entry still in this hub's inbox (see :meth:`pin`): for what a hand-over carries, which came
        from entries a copy may trim meanwhile. Returns the pin, for :meth:`unpin`."""
        return self.pin(self._trimmed_to or "0-0") or "0-0"

    def unpin(self, entry_id: str | None) -> None:
        """The message :meth:`pin` was for was passed on (sent, delivered, buffered, handed or dropped)."""
        if entry_id is None:
            return
        self._pins[entry_id] -= 1
        if self._pins[entry_id] <= 0:
            del self._pins[entry_id]
        if not (self._queued or self._busy or self._pending):
            self._trim_soon()

    def _trim_point(self) -> str | None:
        """Where a trim may stop now: after what the reader took, but before the first entry still pinned."""
        if self._pins:
            return min(self._pins, key=_order)
        return self._read_to

    def _trim_soon(self) -> None:
        point = self._trim_point()
        if point is not None and point != self._trimmed_to:
            self._safe_to = point
            self._trim_wake.set()

    async def trimmer(self) -> None:
        """Drop the entries of this hub's inbox the reader took while no copy was due (one trim in flight; a
        failed one is covered by the next)."""
        cluster = self.cluster
        inbox = cluster.link.inbox(cluster.hub_id)
        while True:
            await self._trim_wake.wait()
            self._trim_wake = trio.Event()
            minimum = self._safe_to
            if minimum is None or minimum == self._trimmed_to:
                continue
            try:
                await cluster.link.call("xtrim", functools.partial(_trim, inbox, minimum))
            except VoiceBotError as exc:
                cluster.errors.handle(exc, cluster.error_context.request(None))
                continue
            self._trimmed(minimum)

    def _trimmed(self, minimum: str) -> None:
        if self._trimmed_to is None or _after(minimum, self._trimmed_to):
            self._trimmed_to = minimum

    # -- the copy -------------------------------------------------------------------------------------
    async def copy(self) -> None:
        """The publisher's part: copy what was buffered since the last copy for every pending peer still in
        grace here, and trim the inbox up to what the reader had taken by now, in one script."""
        self._queued = False
        cluster = self.cluster
        hub = cluster.hub
        adopting = cluster.sessions.adopting
        args: list[Any] = []
        undo: list[tuple[str, int, int]] = []
        for peer_id in sorted(self._pending):
            session = hub.sessions.get(peer_id)
            if (session is None or session.home is not None or session.conn is not None
                    or peer_id in adopting):  # resumed, ended, handed over or being adopted: nothing to copy
                continue
            done, upto = self.copied.get(peer_id, 0), len(session.buffer)
            if upto > done:
                args += [peer_id, upto - done, *[json.dumps(m, separators=(",", ":")) for m in session.buffer[done:]]]
                undo.append((peer_id, done, upto))
                self.copied[peer_id] = upto
        self._pending.clear()
        point = self._trim_point()
        trim = point if point != self._trimmed_to else None
        if not undo and trim is None:
            return
        config = hub.config
        self._busy = True
        try:
            await cluster.link.script("copy", cluster.hub_id, trim or "", config.resume_buffer,
                                      config.resume_buffer_bytes, *args)
        except BaseException:
            for peer_id, done, upto in undo:  # copied again by the next copy (a heartbeat asks for one)
                if self.copied.get(peer_id) == upto:
                    self.copied[peer_id] = done
                    self._pending.add(peer_id)
            raise
        finally:
            self._busy = False
        self.copies += 1
        self.messages += sum(upto - done for _, done, upto in undo)
        if trim is not None:
            self._trimmed(trim)
        if not (self._queued or self._pending):  # read after this copy was prepared, with nothing buffered since
            self._trim_soon()

    def snapshot(self) -> dict[str, int]:
        """Counters for ``admin.stats``."""
        return {"copies": self.copies, "copied": self.messages}


def _order(entry_id: str) -> tuple[int, int]:
    """A stream id as comparable numbers."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def _after(a: str, b: str) -> bool:
    """Whether stream id ``a`` comes after ``b``."""
    return _order(a) > _order(b)


def _trim(inbox: str, minimum: str, client: Any) -> Any:
    from coredis.tokens import PureToken  # noqa: PLC0415 - only cluster mode loads coredis

    return client.xtrim(inbox, PureToken.MINID, minimum)
