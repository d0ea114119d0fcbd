"""The human side of the bot convention, in Python (tests, benchmarks, command-line clients).

Bots offer; a :class:`HumanPeer` answers every offer on a fresh peer connection (replacing any earlier one with
that bot: after a ``bye`` or a rebuild the bot always starts over with a new offer), sends a tone (or
silence) and exposes what it receives.
"""

from __future__ import annotations

import collections
import logging
from typing import Any

import numpy as np
import trio

from ..client import Client
from ..errors import WebRTCError, split_passthrough
from ..media import FRAME_SAMPLES, AudioSender, IncomingTrack, MediaConfig, PeerConnection, tone_frames

__all__ = ["HumanPeer"]

log = logging.getLogger("voicebot.bots")


class HumanPeer:
    """Answer bots' offers on ``client`` (already in a lobby); ``async with trio.open_nursery() as n:
    n.start_soon(human.run)``. ``tone`` (Hz) is sent to every bot; None sends silence."""

    def __init__(self, client: Client, media: MediaConfig | None = None, *, tone: float | None = None) -> None:
        self.client = client
        self.media = media if media is not None else MediaConfig()
        self.tone = tone
        self.connections: collections.Counter[str] = collections.Counter()
        """Offers answered, per bot peer id (more than 1 means the bot rebuilt)."""
        self.byes: collections.Counter[str] = collections.Counter()
        """``bye`` signals received, per bot peer id."""
        self.events: collections.deque[dict[str, Any]] = collections.deque(maxlen=256)
        """The last 256 non-signal events (``peer.joined``, ``chat``...)."""
        self.setup_times: list[float] = []
        """Seconds from receiving an offer to ``connected``, per answered offer."""
        self.errors: list[BaseException] = []
        """Failures of individual connections (each only ends that connection)."""
        self._tracks: dict[str, IncomingTrack] = {}
        self._senders: dict[str, AudioSender] = {}
        self._scopes: dict[str, trio.CancelScope] = {}
        self._changed = trio.Event()

    async def run(self) -> None:
        """Serve signals until the client's events end."""
        async with trio.open_nursery() as nursery:
            async for event in self.client.events:
                if event.get("type") != "signal":
                    self.events.append(event)
                    self._notify()
                    continue
                sender, kind = str(event.get("from")), event.get("kind")
                if kind == "offer":
                    self._cancel(sender)
                    scope = self._scopes[sender] = trio.CancelScope()
                    nursery.start_soon(self._connection, sender, str(event.get("sdp")), scope)
                elif kind == "bye":
                    self.byes[sender] += 1
                    self._cancel(sender)
                    self._notify()
            nursery.cancel_scope.cancel()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    def _cancel(self, peer: str) -> None:
        scope = self._scopes.pop(peer, None)
        if scope is not None:
            scope.cancel()
        self._tracks.pop(peer, None)

    async def _connection(self, peer: str, sdp: str, scope: trio.CancelScope) -> None:
        start = trio.current_time()
        with scope:
            try:
                async with PeerConnection(self.media) as pc:
                    sender = await pc.add_audio_sender()
                    self._senders[peer] = sender
                    answer = await pc.create_answer({"type": "offer", "sdp": sdp})
                    with trio.fail_after(5):
                        await self.client.signal(peer, "answer", sdp=answer.sdp)
                    self.connections[peer] += 1
                    self._notify()
                    await pc.wait_connected()
                    self.setup_times.append(trio.current_time() - start)
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(self._feed, sender)
                        async for track in pc.incoming_tracks:
                            if track.kind == "audio":
                                self._tracks[peer] = track
                                self._notify()
            except BaseException as exc:
                passthrough, failure = split_passthrough(exc)
                if passthrough is not None:
                    raise
                self.errors.append(exc)
                log.info("human %s: connection with %s failed: %r", self.client.peer_id, peer, failure)

    async def _feed(self, sender: AudioSender) -> None:
        if self.tone is None:
            await trio.sleep_forever()
        try:
            for pcm in tone_frames(self.tone):
                await sender.send(pcm)
        except WebRTCError as exc:
            if exc.code != "track_closed":
                raise

    async def say(self, peer: str, samples: Any, *, timeout: float = 15.0) -> float:
        """Speak ``samples`` (48 kHz mono s16, e.g. from :func:`~voicebot.bots.synthesize`) to bot ``peer`` in real
        time (paced by the outgoing queue); returns once the last frame is queued, with the Trio time at which it
        will have been sent (the queue drains at 50 frames/s). Waits for the connection."""
        with trio.fail_after(timeout):
            while peer not in self._tracks:
                await self._changed.wait()
        sender = self._senders[peer]
        pad = (-len(samples)) % FRAME_SAMPLES
        padded = np.concatenate([np.asarray(samples, dtype=np.int16), np.zeros(pad, dtype=np.int16)])
        for frame in padded.reshape(-1, FRAME_SAMPLES):
            await sender.send(np.ascontiguousarray(frame))
        return trio.current_time() + sender.queued * FRAME_SAMPLES / 48_000

    async def track_from(self, peer: str, *, timeout: float = 15.0, newer_than: IncomingTrack | None = None
                         ) -> IncomingTrack:
        """The current audio track received from bot ``peer`` (waits for one, or for one other than
        ``newer_than``)."""
        with trio.fail_after(timeout):
            while True:
                track = self._tracks.get(peer)
                if track is not None and track is not newer_than:
                    return track
                await self._changed.wait()

    async def wait_for(self, predicate: Any, *, timeout: float = 15.0) -> None:
        """Wait until ``predicate()`` is true (re-checked on every event/track change)."""
        with trio.fail_after(timeout):
            while not predicate():
                await self._changed.wait()
