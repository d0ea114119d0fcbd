"""Media bots: one WebRTC peer connection per human member, perfect negotiation, per-peer recovery.

Roles (perfect negotiation): the bot is the **polite** peer and makes the first offer to every human member
(those present when it joins and everyone who joins later). If a human's offer crosses the bot's (glare), the
bot abandons its own offer and answers theirs. aiortc has no rollback and no ICE restart, so "abandon" and
"restart" both mean *rebuild*: close that one peer connection, tell the human ``signal {kind: "bye"}`` (forget
the old connection), and start a fresh one.

Recovery (all per peer; each peer runs in its own task and nursery and never raises into the others):
- ICE failure (``connectionState`` ``failed``/``closed`` or the ``bot.ice`` fault point) → ``restart_ice()``
  → aiortc: ``ice_restart_unsupported`` → rebuild.
- A renegotiation offer from the human that cannot be applied → rebuild.
- Fault-injection points (per human peer id, so a plan can target one peer or all with ``*``):
  ``bot.call.<peer_id>`` before each negotiation, ``bot.ice.<peer_id>`` when a connection is up (raise
  ``WebRTCError(code="ice_failed")`` to simulate ICE failure), ``bot.renegotiate.<peer_id>``.
- ``max_failures`` consecutive failures (a connection that stayed up ``stable_after`` seconds resets the
  count) → the human gets ``signal {kind: "bye"}`` and a chat notice, and the bot drops that peer only.
"""

from __future__ import annotations

import logging
from typing import Any

import attrs
import trio

from .. import faults
from ..errors import WebRTCError, classify, split_passthrough
from ..media import AudioSender, IncomingTrack, MediaConfig, PeerConnection
from ._session import BotSession

__all__ = ["MediaBot", "PeerLink", "PeerStats"]

log = logging.getLogger("voicebot.bots")

INBOX_SIZE = 64
"""Signals queued per peer; beyond that new signals for that peer are dropped and counted (the peer's
negotiation then times out and is rebuilt)."""


@attrs.define(eq=False)
class PeerLink:
    """One connected peer connection between the bot and a human, handed to :meth:`MediaBot.on_peer`."""

    peer_id: str
    """The human's peer id."""
    name: str
    """The human's display name."""
    pc: PeerConnection
    """The peer connection (already ``connected``)."""
    audio_out: AudioSender
    """The bot's outgoing audio to this human (20 ms 48 kHz mono s16 frames)."""
    incoming: trio.MemoryReceiveChannel[IncomingTrack]
    """The human's tracks as they arrive (``audio_in`` waits for the first)."""

    async def audio_in(self, timeout: float = 10.0) -> IncomingTrack:
        """The human's first audio track (raises ``WebRTCError`` if none arrives within ``timeout``)."""
        with trio.move_on_after(timeout):
            async for track in self.incoming:
                if track.kind == "audio":
                    return track
        raise WebRTCError("no audio track from peer", code="no_audio_track", retryable=True)


@attrs.define
class PeerStats:
    """Per-bot counters (all peers together)."""

    connected: int = 0
    rebuilds: int = 0
    dropped_peers: int = 0
    dropped_signals: int = 0
    glare: int = 0
    renegotiations: int = 0


@attrs.define(eq=False)
class _Slot:
    peer_id: str
    send: trio.MemorySendChannel[dict[str, Any]]
    inbox: trio.MemoryReceiveChannel[dict[str, Any]]
    scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)


class _Rebuild(Exception):
    """Internal: leave the current connection and build a new one (answering ``offer`` if given)."""

    def __init__(self, offer: dict[str, Any] | None) -> None:
        super().__init__("rebuild")
        self.offer = offer


class MediaBot:
    """Base class of bots with audio: implement :meth:`on_peer` (runs once per connected peer connection, in
    that peer's nursery; cancelled when the connection ends or is rebuilt)."""

    max_failures: int = 3
    """Consecutive failures after which a peer is dropped."""
    stable_after: float = 10.0
    """Seconds a connection must stay up for its peer's failure count to reset."""
    rebuild_delay: float = 0.2
    """Seconds to wait before a rebuild (doubles per consecutive failure)."""

    def __init__(self, media: MediaConfig | None = None) -> None:
        self.media = media if media is not None else MediaConfig()
        """Peer-connection settings (the worker passes its own)."""
        self.stats = PeerStats()
        """Counters."""
        self.session: BotSession | None = None
        self._slots: dict[str, _Slot] = {}

    async def on_peer(self, link: PeerLink) -> None:
        """Talk to one human over ``link`` (override). The default plays nothing."""
        await trio.sleep_forever()

    async def run(self, session: BotSession) -> None:
        """Keep one peer connection per human member until the session ends."""
        self.session = session
        events = session.subscribe()
        async with trio.open_nursery() as nursery:
            for pid in session.humans():
                self._slot(nursery, pid)
            async for event in events:
                kind = event.get("type")
                if kind == "peer.joined" and event["peer"].get("kind", "user") == "user":
                    self._slot(nursery, event["peer"]["peer_id"])
                elif kind == "peer.left":
                    slot = self._slots.pop(event["peer_id"], None)
                    if slot is not None:
                        slot.scope.cancel()
                elif kind == "signal":
                    self._route(nursery, event)
            nursery.cancel_scope.cancel()

    def _slot(self, nursery: trio.Nursery, peer_id: str) -> _Slot:
        slot = self._slots.get(peer_id)
        if slot is None:
            send, inbox = trio.open_memory_channel[dict[str, Any]](INBOX_SIZE)
            slot = self._slots[peer_id] = _Slot(peer_id, send, inbox)
            nursery.start_soon(self._peer_task, slot, name=f"bot-peer:{peer_id}")
        return slot

    def _route(self, nursery: trio.Nursery, event: dict[str, Any]) -> None:
        sender = str(event.get("from", ""))
        session = self.session
        assert session is not None
        if sender not in self._slots and not (event.get("kind") == "offer" and sender in session.humans()):
            return
        slot = self._slot(nursery, sender)
        try:
            slot.send.send_nowait(event)
        except trio.WouldBlock:
            self.stats.dropped_signals += 1

    # -- one peer -----------------------------------------------------------------------------------
    async def _peer_task(self, slot: _Slot) -> None:
        """Own one human's connection, rebuilding on failure; never raises (except Cancelled)."""
        session = self.session
        assert session is not None
        failures = 0
        offer: dict[str, Any] | None = None
        with slot.scope:
            while True:
                started = trio.current_time()
                try:
                    offer = await self._connection(slot, offer)
                    if offer is None:  # the human said bye: wait until they offer again
                        offer = await self._next_offer(slot)
                    continue
                except _Rebuild as rebuild:  # glare: polite side answers the human's offer on a fresh pc
                    self.stats.glare += 1
                    offer = rebuild.offer
                    continue
                except BaseException as exc:
                    passthrough, failure = split_passthrough(exc)
                    if passthrough is not None:
                        raise
                    error = classify(failure if failure is not None else exc).error
                if trio.current_time() - started >= self.stable_after:
                    failures = 0
                failures += 1
                offer = None
                log.warning("bot %s: peer %s failed (%s, %d/%d)", session.peer_id, slot.peer_id, error.code,
                            failures, self.max_failures)
                await session.signal(slot.peer_id, "bye")
                if failures >= self.max_failures:
                    self.stats.dropped_peers += 1
                    with trio.move_on_after(5.0):
                        await session.chat(f"audio link to {self._name(slot.peer_id)} failed {failures} times;"
                                           " giving up on it")
                    self._slots.pop(slot.peer_id, None)
                    return
                self.stats.rebuilds += 1
                await trio.sleep(self.rebuild_delay * 2 ** (failures - 1))

    def _name(self, peer_id: str) -> str:
        assert self.session is not None
        return str(self.session.peers.get(peer_id, {}).get("name", peer_id))

    async def _next_offer(self, slot: _Slot) -> dict[str, Any]:
        async for msg in slot.inbox:
            if msg.get("kind") == "offer":
                return msg
        raise trio.EndOfChannel

    async def _connection(self, slot: _Slot, offer: dict[str, Any] | None) -> dict[str, Any] | None:
        """Build, negotiate and run one connection. Returns the human's next offer (to answer on a fresh
        connection), or None after ``bye``; raises on failure."""
        session = self.session
        assert session is not None
        peer = slot.peer_id
        async with PeerConnection(self.media) as pc:
            audio_out = await pc.add_audio_sender()
            await faults.point(f"bot.call.{peer}")
            if offer is None:
                local = await pc.create_offer()
                await session.signal(peer, "offer", sdp=local.sdp)
                await self._await_answer(pc, slot)
            else:
                answer = await pc.create_answer({"type": "offer", "sdp": str(offer.get("sdp", ""))})
                await session.signal(peer, "answer", sdp=answer.sdp)
            await pc.wait_connected()
            self.stats.connected += 1
            link = PeerLink(peer, self._name(peer), pc, audio_out, pc.incoming_tracks)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._run_peer, link)
                result = await self._watch(pc, slot)
                nursery.cancel_scope.cancel()
            return result

    async def _run_peer(self, link: PeerLink) -> None:
        try:
            await self.on_peer(link)
        except WebRTCError as exc:
            if exc.code != "track_closed":  # the connection is being torn down: not the bot's failure
                raise
        await trio.sleep_forever()  # a bot that is done with a peer keeps the connection open

    async def _await_answer(self, pc: PeerConnection, slot: _Slot) -> None:
        with trio.fail_after(pc.config.negotiation_timeout):
            async for msg in slot.inbox:
                kind = msg.get("kind")
                if kind == "answer":
                    await pc.set_remote_description({"type": "answer", "sdp": str(msg.get("sdp", ""))})
                    return
                if kind == "offer":  # glare: we are polite
                    raise _Rebuild(msg)
                if kind == "candidate":
                    await pc.add_ice_candidate(msg.get("candidate"))
        raise WebRTCError("signaling ended", code="signaling_closed")

    async def _watch(self, pc: PeerConnection, slot: _Slot) -> dict[str, Any] | None:
        """Follow a connected pc: signals from the human and ICE state. Returns like :meth:`_connection`."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._watch_ice, pc, slot.peer_id)
            async for msg in slot.inbox:
                kind = msg.get("kind")
                if kind == "bye":
                    nursery.cancel_scope.cancel()
                    return None
                if kind == "candidate":
                    await pc.add_ice_candidate(msg.get("candidate"))
                elif kind == "offer":
                    await self._renegotiate(pc, slot.peer_id, msg)
        raise WebRTCError("signaling ended", code="signaling_closed")

    async def _renegotiate(self, pc: PeerConnection, peer: str, offer: dict[str, Any]) -> None:
        assert self.session is not None
        self.stats.renegotiations += 1
        try:
            await faults.point(f"bot.renegotiate.{peer}")
            answer = await pc.create_answer({"type": "offer", "sdp": str(offer.get("sdp", ""))})
        except WebRTCError as exc:
            raise WebRTCError("renegotiation failed; rebuilding the peer connection",
                              code="renegotiation_failed", recovery="rebuild_peer", retryable=True) from exc
        await self.session.signal(peer, "answer", sdp=answer.sdp)

    async def _watch_ice(self, pc: PeerConnection, peer: str) -> None:
        try:
            await faults.point(f"bot.ice.{peer}")
            async for state in pc.connection_states:
                if state in ("failed", "closed"):
                    raise WebRTCError(f"ICE {state}", code="ice_failed", retryable=True)
            raise WebRTCError("ICE closed", code="ice_failed", retryable=True)
        except WebRTCError as exc:
            if exc.code != "ice_failed":
                raise
            await pc.restart_ice()  # aiortc: always raises ice_restart_unsupported (recovery: rebuild_peer)
            raise
