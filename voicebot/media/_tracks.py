"""Audio between Trio and aiortc: an outgoing track fed from a bounded queue, and pumps for received tracks.

Neither direction ever blocks the asyncio side: the outgoing track plays silence when its queue is empty, and
a received track's pump drops the oldest queued frame (and counts it) when the Trio consumer falls behind.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import attrs
import av
import numpy as np
import trio
from aiortc import AudioStreamTrack
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from voicebot.errors import WebRTCError

from ._audio import FRAME_SAMPLES, SAMPLE_RATE, Pcm, make_frame
from ._channels import DropOldestChannel
from ._runtime import MediaRuntime

__all__ = ["AudioSender", "IncomingTrack", "OutgoingAudioTrack", "TrackStats"]

_MAX_LAG = 0.1
"""Seconds the outgoing clock may fall behind before it resynchronises instead of bursting frames."""


@attrs.define
class TrackStats:
    """Counters of one audio direction of one track."""

    frames: int = 0
    """Frames delivered (outgoing: handed to aiortc incl. silence; incoming: received from aiortc)."""
    silence: int = 0
    """Outgoing only: frames of silence sent because the queue was empty."""
    dropped: int = 0
    """Frames dropped because the queue was full (always the oldest queued frame)."""
    resyncs: int = 0
    """Outgoing only: clock resynchronisations after the loop stalled for more than 100 ms."""


class OutgoingAudioTrack(AudioStreamTrack):
    """aiortc audio track: 20 ms, 48 kHz mono s16 frames taken from a Trio memory channel, silence if empty.

    Paced in real time by its own clock (pts counts samples, ``time_base`` 1/48000). :meth:`stop` wakes a
    pending :meth:`recv`, which then raises ``MediaStreamError`` so aiortc's RTP sender loop ends by itself
    (this is what keeps ``RTCPeerConnection.close()`` from hanging when a ``Task.cancel()`` is lost
    under trio-asyncio).
    """

    def __init__(self, frames: trio.MemoryReceiveChannel[Pcm], stats: TrackStats) -> None:
        super().__init__()
        self._frames = frames
        self._also_close: list[trio.MemoryReceiveChannel[Pcm]] = []
        self._stats = stats
        self._pts = 0
        self._started = False
        self._waiter: asyncio.Future[None] | None = None
        self._silence = np.zeros(FRAME_SAMPLES, dtype=np.int16)

    async def recv(self) -> av.AudioFrame:
        """Next frame, at its real-time slot (raises ``MediaStreamError`` once stopped)."""
        if self.readyState != "live":
            raise MediaStreamError
        now = time.monotonic()
        if not self._started:
            self._started = True
            self._start = now
        else:
            self._pts += FRAME_SAMPLES
            wait = self._start + self._pts / SAMPLE_RATE - now
            if wait < -_MAX_LAG:
                self._start = now - self._pts / SAMPLE_RATE
                self._stats.resyncs += 1
            elif wait > 0:
                await self._sleep(wait)
                if self.readyState != "live":
                    raise MediaStreamError
        try:
            pcm = self._frames.receive_nowait()
        except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
            pcm = self._silence
            self._stats.silence += 1
        self._stats.frames += 1
        return make_frame(pcm, self._pts)

    async def _sleep(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        handle = loop.call_later(seconds, _resolve, waiter)
        self._waiter = waiter
        try:
            await waiter
        finally:
            handle.cancel()
            self._waiter = None

    def stop(self) -> None:
        """End the track and wake a pending ``recv`` (idempotent, never raises)."""
        super().stop()
        if self._waiter is not None:
            _resolve(self._waiter)
        self._frames.close()
        for channel in self._also_close:  # so a Trio sender waiting for room fails instead of hanging
            channel.close()


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class AudioSender:
    """Trio side of an outgoing audio track: queue 20 ms 48 kHz mono s16 frames (``FRAME_SAMPLES`` samples).

    The queue holds ``capacity`` frames. :meth:`send` waits for room (so a producer is paced by playback);
    :meth:`send_nowait` never waits and drops the oldest queued frame when full. :meth:`clear` discards
    everything queued (barge-in). Use :class:`~voicebot.media.FrameConverter` for other formats.
    """

    def __init__(self, capacity: int) -> None:
        self._send, self._receive = trio.open_memory_channel[Pcm](capacity)
        self._drain = self._receive.clone()
        self.stats = TrackStats()
        """Counters of this direction."""
        self.track = OutgoingAudioTrack(self._receive, self.stats)
        """The aiortc track (added to the peer connection)."""
        self.track._also_close.append(self._drain)

    @staticmethod
    def _check(pcm: Pcm) -> Pcm:
        if pcm.dtype != np.int16 or pcm.shape != (FRAME_SAMPLES,):
            raise ValueError(f"expected {FRAME_SAMPLES} int16 mono samples, got {pcm.dtype} {pcm.shape}")
        return pcm

    @property
    def queued(self) -> int:
        """Frames waiting to be played."""
        return self._send.statistics().current_buffer_used

    async def send(self, pcm: Pcm) -> None:
        """Queue one frame, waiting while the queue is full. Raises ``WebRTCError`` once the track stopped."""
        self._check(pcm)
        try:
            await self._send.send(pcm)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise WebRTCError("audio track is closed", code="track_closed") from None

    def send_nowait(self, pcm: Pcm) -> bool:
        """Queue one frame without waiting; when full, drop the oldest queued frame. False if it was full."""
        self._check(pcm)
        try:
            self._send.send_nowait(pcm)
            return True
        except trio.WouldBlock:
            pass
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise WebRTCError("audio track is closed", code="track_closed") from None
        try:
            self._drain.receive_nowait()
            self.stats.dropped += 1
            self._send.send_nowait(pcm)
        except trio.WouldBlock:  # pragma: no cover - a waiting send() took the slot
            self.stats.dropped += 1
        except (trio.ClosedResourceError, trio.EndOfChannel, trio.BrokenResourceError):
            raise WebRTCError("audio track is closed", code="track_closed") from None
        return False

    def clear(self) -> int:
        """Discard all queued frames (e.g. on barge-in); returns how many were discarded."""
        discarded = 0
        while True:
            try:
                self._drain.receive_nowait()
            except (trio.WouldBlock, trio.ClosedResourceError, trio.EndOfChannel):
                return discarded
            discarded += 1

    def close(self) -> None:
        """Stop the track (idempotent). Queued frames are discarded."""
        self.track.stop()
        self._send.close()
        self._drain.close()


class IncomingTrack:
    """A track received from the remote peer, delivered to Trio as a bounded channel of ``av.AudioFrame``.

    Received audio is s16 **stereo** interleaved, 48 kHz, 960 samples per frame (see
    :func:`~voicebot.media.frame_to_mono`). ``frames`` ends (``EndOfChannel``) when the track or the peer
    connection ends. If the consumer falls behind, the oldest queued frame is dropped and counted.
    """

    def __init__(self, track: MediaStreamTrack, capacity: int) -> None:
        self.kind: str = track.kind
        """``"audio"`` or ``"video"``."""
        self.id: str = track.id
        """The track id from the remote SDP."""
        self.stats = TrackStats()
        """Counters (``frames`` received, ``dropped``)."""
        self._track = track
        self._channel = DropOldestChannel[av.AudioFrame](capacity)
        self.frames: trio.MemoryReceiveChannel[av.AudioFrame] = self._channel.receive
        """Received frames; ends when the track ends."""
        self.task: asyncio.Task[None] | None = None
        """The asyncio pump task (owned by the peer connection)."""

    def _deliver(self, frame: Any) -> None:
        self.stats.frames += 1
        if not self._channel.put(frame):
            self.stats.dropped += 1

    async def pump(self, runtime: MediaRuntime) -> None:
        """asyncio task: ``send_nowait(await track.recv())`` until the track ends; never blocks on Trio."""
        try:
            while True:
                frame = await self._track.recv()
                self._deliver(frame)
        except MediaStreamError:
            pass
        except Exception as exc:  # a failing pump ends this track only; recorded, not raised into the loop
            runtime.record_error(exc, track=self.id)
        finally:
            self._channel.close()
