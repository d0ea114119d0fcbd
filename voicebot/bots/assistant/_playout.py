"""The bot's voice: one reply's audio fanned out to every person's outgoing track, with exact "what was heard".

:class:`Playout` holds the outgoing :class:`~voicebot.media.AudioSender` of every connected person (one peer
connection each). A reply's frames are queued to *all* of them at once, paced so that at most ``lead`` frames
(200 ms) wait in any queue: barge-in then only has that little to flush, and the frames handed to aiortc so far
(sent minus still queued, the *most* queued track counting) are what everyone has heard. :meth:`Playout.flush`
discards every queued frame at once (nothing queued keeps playing).

:class:`Speech` is one reply's bookkeeping: sentences in order, their frame counts, and :meth:`Speech.heard` —
the sentences played whole plus the heard words of the interrupted one (:func:`~._text.heard_part`), never text
that was not played. A sentence whose synthesis had not finished when it was cut is measured against an estimate
of its length (``CHARS_PER_SECOND``) no shorter than what was already sent, so the heard fraction is never
overstated by a missing total.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs
import av
import numpy as np
import numpy.typing as npt
import trio

from ...errors import WebRTCError
from ...media import FRAME_SAMPLES, AudioSender, FrameConverter
from ._text import heard_part

__all__ = ["CHARS_PER_SECOND", "FRAME_SECONDS", "Playout", "Speech", "frames_from_chunks"]

Pcm = npt.NDArray[np.int16]
FRAME_SECONDS = FRAME_SAMPLES / 48_000
CHARS_PER_SECOND = 14.0
"""Speaking rate used to estimate a sentence's length before its synthesis finished (TTS voices: 13–16)."""


@attrs.define
class _Sentence:
    text: str
    frames: int = 0
    """Frames synthesised so far."""
    complete: bool = False
    """True once every frame of the sentence was synthesised."""
    sent: int = 0
    """Frames handed to the outgoing queues."""


@attrs.define
class Speech:
    """One reply being spoken (see the module docs)."""

    sentences: list[_Sentence] = attrs.field(factory=list)
    first_audio_at: float | None = None
    """Trio time the first frame of this reply left the queues (≈ sent to aiortc)."""

    def add(self, text: str) -> int:
        """Register the next sentence; returns its index."""
        self.sentences.append(_Sentence(text))
        return len(self.sentences) - 1

    def heard(self, unplayed_frames: int) -> str:
        """The text heard, given that ``unplayed_frames`` of the frames sent are still queued (not played)."""
        played_total = max(0, sum(s.sent for s in self.sentences) - unplayed_frames)
        words: list[str] = []
        for sentence in self.sentences:
            if played_total <= 0:
                break
            played = min(sentence.sent, played_total)
            played_total -= played
            if sentence.complete and played >= sentence.frames:
                words.append(sentence.text)
                continue
            estimate = max(sentence.frames, sentence.sent, int(len(sentence.text) / CHARS_PER_SECOND / FRAME_SECONDS))
            part = heard_part(sentence.text, played / estimate if estimate else 0.0)
            if part:
                words.append(part)
            break
        return " ".join(words)

    @property
    def sent_text(self) -> str:
        """Every sentence at least partly sent (for logs)."""
        return " ".join(s.text for s in self.sentences if s.sent)


def frames_from_chunks(converter: FrameConverter, pcm: Pcm | None, sample_rate: int) -> list[Pcm]:
    """Provider audio (mono s16 at ``sample_rate``; ``None`` flushes) → 20 ms 48 kHz frames (the last padded)."""
    if pcm is None:
        frames = converter.convert(None)
        if frames and frames[-1].shape[0] < FRAME_SAMPLES:
            frames[-1] = np.concatenate([frames[-1], np.zeros(FRAME_SAMPLES - frames[-1].shape[0], np.int16)])
        return frames
    if pcm.size == 0:
        return []
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(pcm, dtype=np.int16).reshape(1, -1), format="s16",
                                       layout="mono")
    frame.sample_rate = sample_rate
    return converter.convert(frame)


class Playout:
    """Every person's outgoing track, fed together (see the module docs)."""

    def __init__(self, lead: int = 10, poll: float = 0.01) -> None:
        self.lead = lead
        """Most frames allowed to wait in any outgoing queue."""
        self.poll = poll
        """Seconds between checks for room while the queues are full."""
        self.outputs: dict[str, AudioSender] = {}
        """Outgoing tracks by the listening person's peer id."""
        self._sent_untracked = 0
        self.frames_sent = 0
        """Frames queued in this bot's life."""
        self.flushed = 0
        """Frames discarded by :meth:`flush`."""

    def attach(self, peer_id: str, sender: AudioSender) -> None:
        """Start sending to ``peer_id``'s track (replaces an older one)."""
        self.outputs[peer_id] = sender

    def detach(self, peer_id: str, sender: AudioSender) -> None:
        """Stop sending to ``sender`` (if it is still ``peer_id``'s current track)."""
        if self.outputs.get(peer_id) is sender:
            del self.outputs[peer_id]

    def queued(self) -> int:
        """Frames still waiting in the fullest outgoing queue."""
        return max((s.queued for s in self.outputs.values()), default=0)

    async def send(self, pcm: Pcm, speech: Speech, index: int, on_first: Callable[[float], None] | None = None
                   ) -> None:
        """Queue one frame of sentence ``index`` to everyone, waiting while a queue holds ``lead`` frames.
        With nobody connected the frame is paced in real time and dropped (nobody hears it)."""
        # The queues drain on aiortc's side (asyncio) with no event to wait on: poll every ``poll`` seconds.
        while self.queued() >= self.lead:  # noqa: ASYNC110
            await trio.sleep(self.poll)
        if not self.outputs:
            await trio.sleep(FRAME_SECONDS)
            return
        ahead = self.queued()
        for peer_id, sender in list(self.outputs.items()):
            try:
                sender.send_nowait(pcm)
            except WebRTCError:  # that person's track just closed: stop feeding it, the others go on
                self.detach(peer_id, sender)
        speech.sentences[index].sent += 1
        self.frames_sent += 1
        if speech.first_audio_at is None:
            speech.first_audio_at = trio.current_time() + ahead * FRAME_SECONDS
            if on_first is not None:
                on_first(speech.first_audio_at)

    async def drain(self) -> None:
        """Wait until every queued frame was handed to aiortc (the reply's end is then really played)."""
        while self.queued() > 0:  # noqa: ASYNC110 - drained on the asyncio side (see send)
            await trio.sleep(self.poll)

    def flush(self) -> int:
        """Discard every queued frame on every track at once (barge-in); returns the most discarded on one."""
        discarded = max((sender.clear() for sender in self.outputs.values()), default=0)
        self.flushed += discarded
        return discarded
