"""Cluster mode, delivery: this hub's one publisher task and the reader of its inbox.

Order: one task carries out what this hub queued for Redis (forwards to other hubs' peers, session records,
leaves, control messages) in order, and each hub reads its inbox (a Redis stream, :mod:`._inbox`) in order, so
per sender → receiver order holds. Forwards are batched: what is queued when the publisher wakes up goes out as
one envelope (one inbox entry) per target hub, its messages in queue order, up to the first item that is not a
plain forward (a ``peer.left`` frees its place in Redis first, session work must happen between the messages
around it). The reader keeps the id of the last entry it read (in memory): after a failed read it continues
from there, so what was sent while its connection was down is read once, in order; what it has read is trimmed
from the inbox once what it brought for peers in grace here is copied to Redis (:mod:`._writethrough`), so what
is left when the hub is lost is what it did not pass on yet (salvaged for its peers).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import trio

from ..errors import VoiceBotError
from ..hub import Action, Forward
from ._inbox import decode_entry, encode_envelope, next_id
from ._mirror import add_remote, local_members, remove_remote, track_signal

if TYPE_CHECKING:
    from ._cluster import Cluster

__all__ = ["INBOX_ENTRIES", "OUTBOX", "Delivery"]

log = logging.getLogger("voicebot.cluster")

#: Items waiting for the publisher; when full, new ones are dropped and counted (``dropped``).
OUTBOX = 10_000
#: Most queued items one batch takes (one envelope per target hub).
BATCH = 256
#: Most entries a hub's inbox keeps unread (each an envelope of up to ``BATCH`` messages): beyond, the oldest
#: goes, counted in the hub's ``inbox_overflow``.
INBOX_ENTRIES = 10_000
#: First pause after a failed read of the inbox (doubling up to a heartbeat).
_BACKOFF = 0.05


class Delivery:
    """The publisher and the inbox reader of a :class:`~voicebot.cluster.Cluster` (``cluster.delivery``)."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self._send, self._recv = trio.open_memory_channel[tuple[str, Any]](OUTBOX)
        self.subscribed = trio.Event()
        """Set once this hub's inbox was read for the first time."""
        self.read_at: float | None = None
        """When the last read of this hub's inbox succeeded (Trio clock)."""
        self.read_failures = 0
        """Reads of this hub's inbox that failed (each retried from the last entry read)."""
        self.batches = 0
        """Envelopes of forwards published (each one inbox entry carrying one or more messages)."""
        self.reading: str | None = None
        """Id of the entry of this hub's inbox being received (None for the inbox every hub reads)."""
        self.inbox_overflow = 0
        """Entries of this hub's inbox dropped unread by its bound (:data:`INBOX_ENTRIES`), as of the last
        heartbeat."""

    # -- outbound -----------------------------------------------------------------------------------
    def enqueue(self, kind: str, item: Any) -> bool:
        """Queue work for the publisher task (in order with this hub's messages); False (counted in
        ``dropped``) when the queue is full."""
        try:
            self._send.send_nowait((kind, item))
        except trio.WouldBlock:
            self.cluster.dropped += 1
            return False
        return True

    async def send_to(self, hub_id: str, envelope: dict[str, Any]) -> int:
        """Append ``envelope`` to hub ``hub_id``'s inbox now (``*``: every hub's); 1, or 0 when that hub is gone
        (its unread inbox is then kept for its peers, see :mod:`._inbox`)."""
        cluster = self.cluster
        config = cluster.hub.config
        sent: int = await cluster.link.script(
            "send", hub_id, self.inbox_ttl_ms, INBOX_ENTRIES, config.resume_buffer, config.resume_buffer_bytes,
            *encode_envelope(envelope))
        return sent

    @property
    def inbox_ttl_ms(self) -> int:
        """How long an inbox outlives the last refresh by its hub or the last entry sent to it: a lost hub's
        unread entries are salvaged within the resume grace."""
        cluster = self.cluster
        return int((cluster.hub_ttl + cluster.hub.config.resume_grace) * 1000)

    async def publisher(self) -> None:
        """Carry out the queue in order, forwards batched per target hub (see the module docstring)."""
        pending: tuple[str, Any] | None = None
        while True:
            kind, item = pending if pending is not None else await self._recv.receive()
            pending = None
            if kind == "publish" and item.message.get("type") != "peer.left":
                batch: list[Forward] = [item]
                while len(batch) < BATCH:
                    try:
                        nxt = self._recv.receive_nowait()
                    except trio.WouldBlock:
                        break
                    if nxt[0] != "publish" or nxt[1].message.get("type") == "peer.left":
                        pending = nxt
                        break
                    batch.append(nxt[1])
                await self._guarded("publish", len(batch), None, self._publish(batch))
                continue
            leave: tuple[str, str] | None = item if kind == "leave" else None
            if kind == "publish":  # a peer.left: free the place before anyone hears of the leave
                leave = (item.message["lobby_id"], item.message["peer_id"])
            await self._guarded(kind, 1, leave, self._one(kind, item, leave))

    async def _guarded(self, kind: str, count: int, leave: tuple[str, str] | None, work: Any) -> None:
        try:
            await work
        except VoiceBotError as exc:
            cluster = self.cluster
            cluster.available = False
            if kind == "publish":
                cluster.dropped += count
            if leave is not None:  # retried by the first heartbeat that reaches Redis again
                cluster.unsynced_leaves.add(leave)
            cluster.errors.handle(exc, cluster.error_context.request(None))

    async def _one(self, kind: str, item: Any, leave: tuple[str, str] | None) -> None:
        cluster = self.cluster
        if leave is not None:
            await cluster.leave(*leave)
        if kind == "publish":
            await self._publish([item])
        elif kind == "send":
            try:
                await self.send_to(*item)
            finally:
                if "at" in item[1]:  # a relay of an entry of this hub's inbox, which may go now
                    cluster.copies.unpin(str(item[1]["at"]))
        elif kind == "copy":
            await cluster.copies.copy()
        elif kind == "discard":
            await cluster.copies.discard(item)
        elif kind in ("save", "forget", "handoff", "fence"):
            await cluster.sessions.work(kind, item)
        elif kind == "botfree":
            await cluster.bots.freed(*item)
        elif kind == "finish":
            await cluster.lobbies.finish(item)
        elif kind == "barrier":
            item.set()

    async def _publish(self, forwards: list[Forward]) -> None:
        """One envelope per target hub, its messages in order; messages for a hub that is gone are kept for its
        peers (see :meth:`~._sessions.SessionShare.keep`)."""
        cluster = self.cluster
        by_hub: dict[str, list[Forward]] = {}
        for forward in forwards:
            by_hub.setdefault(forward.home, []).append(forward)
        for home, group in by_hub.items():
            envelope = {"from": cluster.hub_id, "batch": [[list(f.peer_ids), f.message] for f in group]}
            sent = await self.send_to(home, envelope)
            self.batches += 1
            cluster.published += len(group)
            if not sent:
                for forward in group:
                    if not await cluster.sessions.keep(forward):
                        cluster.unreceived += 1  # that hub is gone and so are its peers' sessions

    async def flush(self) -> None:
        """Wait (within a call deadline) until what this hub queued for Redis so far has been carried out."""
        done = trio.Event()
        if self.enqueue("barrier", done):
            with trio.move_on_after(self.cluster.link.call_timeout):
                await done.wait()

    # -- inbound ------------------------------------------------------------------------------------
    async def reader(self) -> None:
        """Read this hub's inbox and the one every hub reads, in order, from the last entry read (a failed read
        is retried after a short back-off; the heartbeat reports an inbox not read for too long)."""
        cluster = self.cluster
        link = cluster.link
        mine, everyone = link.inbox(cluster.hub_id), link.inbox("*")
        after: dict[str, str] = {mine: "0-0"}  # this hub's id is new: all of its inbox is for it
        backoff = _BACKOFF
        while True:
            try:
                if everyone not in after:  # announcements made before this hub started are not for it
                    latest = await link.call("xrevrange", lambda r: r.xrevrange(everyone, count=1))
                    after[everyone] = str(latest[0].identifier) if latest else "0-0"
                entries = await link.read(after, wait=self.subscribed.is_set())  # the first one: at once
            except VoiceBotError as exc:
                self.read_failures += 1
                cluster.errors.handle(exc, cluster.error_context.request(None))
                await trio.sleep(backoff)
                backoff = min(backoff * 2, cluster.heartbeat)
                continue
            backoff = _BACKOFF
            self.read_at = trio.current_time()
            self.subscribed.set()
            taken: str | None = None
            for stream, entry_id, fields in entries:
                after[stream] = entry_id
                if stream == mine:
                    taken = next_id(entry_id)
                self.reading = entry_id if stream == mine else None
                try:
                    self.receive(decode_entry(fields))
                except Exception as exc:  # one bad entry is reported; the inbox goes on
                    cluster.errors.handle(exc, cluster.error_context.request(None))
            self.reading = None
            if taken is not None:  # trimmed once what it buffered for peers in grace is copied
                cluster.copies.read(taken)

    def receive(self, envelope: dict[str, Any]) -> None:
        """One envelope from this hub's inbox: a control message, or messages for this hub's peers."""
        cluster = self.cluster
        if (cluster.sessions.on_control(envelope) or cluster.admin.on_control(envelope)
                or cluster.lobbies.on_control(envelope) or cluster.bots.on_control(envelope, cluster.nursery)):
            return
        if "name" in envelope:
            if envelope["from"] != cluster.hub_id and cluster.on_name is not None and cluster.nursery is not None:
                cluster.nursery.start_soon(cluster.on_name, str(envelope["name"]))
            return
        home: str = envelope["from"]
        items: Iterable[tuple[list[str], dict[str, Any]]] = (
            envelope["batch"] if "batch" in envelope else [(envelope["to"], envelope["msg"])])
        actions: list[Action] = []
        now = trio.current_time()
        relayed = "via" in envelope
        for to, message in items:  # the hub decides message by message; what it decided is carried out at once
            # What this hub claimed from a relaying hub's inbox already is not delivered again.
            receivers = cluster.sessions.untaken(envelope["via"], envelope.get("at"), to) if relayed else to
            if receivers or not to:
                actions += self._deliver(home, receivers, message, now, relayed=relayed)
        if actions:
            cluster.apply(actions)

    def _deliver(self, home: str, to: list[str], message: dict[str, Any], now: float, *,
                 relayed: bool = False) -> list[Action]:
        cluster = self.cluster
        hub = cluster.hub
        cluster.received += 1
        lobby = hub.lobbies.get(message.get("lobby_id") or "")
        kind = message.get("type")
        if lobby is not None and kind in ("peer.joined", "peer.left"):
            cluster.bump(lobby.id)
            if kind == "peer.joined":
                peer_id = message["peer"]["peer_id"]
                announced = cluster.lobbies.announced(lobby.id, peer_id)  # known quietly until now
                if peer_id in lobby.members and not announced:
                    return []  # already known (from the admit result or a heartbeat)
                add_remote(hub, lobby, peer_id, message["peer"], home)
            elif not remove_remote(hub, lobby, message["peer_id"]):
                return []  # not a member here (already reconciled away)
        elif lobby is not None and kind == "signal" and to:
            track_signal(lobby, message["from"], to[0], message["kind"])
        if not relayed:  # relayed by the hub a peer moved from: older than anything held for it
            to = cluster.sessions.relay(home, to, message)
        targets = local_members(hub, to)
        if len(targets) < len(to):  # sent here for a peer not (yet) here: maybe being taken over
            for pid in set(to) - set(targets):
                cluster.sessions.arrived(pid, message, cluster.copies.pin(self.reading))
        if message.get("lobby_id") is not None:
            # A receiver may have left or switched lobbies while the message was on its way: members only.
            targets = [pid for pid in targets if hub.sessions[pid].lobby_id == message.get("lobby_id")]
        actions = hub.deliver(targets, message, now)
        if lobby is not None and kind == "peer.left":
            cluster.drop_if_unused(lobby)
        return actions

