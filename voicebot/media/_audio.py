"""Audio helpers (numpy / PyAV): the track frame format, tone generation, frequency detection, resampling."""

from __future__ import annotations

import fractions
from collections.abc import Iterator

import av
import numpy as np
import numpy.typing as npt

__all__ = [
    "FRAME_SAMPLES",
    "SAMPLE_RATE",
    "TIME_BASE",
    "FrameConverter",
    "dominant_frequency",
    "frame_to_mono",
    "make_frame",
    "tone_frames",
]

SAMPLE_RATE = 48_000
"""Sample rate of outgoing track frames (Hz); received frames also come at this rate."""
FRAME_SAMPLES = 960
"""Samples per channel in one 20 ms frame at 48 kHz."""
TIME_BASE = fractions.Fraction(1, SAMPLE_RATE)
"""``time_base`` of our frames: pts counts samples."""

Pcm = npt.NDArray[np.int16]


def make_frame(pcm: Pcm, pts: int) -> av.AudioFrame:
    """Wrap ``FRAME_SAMPLES`` mono s16 samples into an ``av.AudioFrame`` at 48 kHz with ``pts`` (in samples)."""
    frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = SAMPLE_RATE
    frame.time_base = TIME_BASE
    frame.pts = pts
    return frame


def tone_frames(frequency: float, *, amplitude: float = 0.3, start_sample: int = 0) -> Iterator[Pcm]:
    """Endless phase-continuous sine tone as 20 ms mono s16 frames (``FRAME_SAMPLES`` each, 48 kHz).

    ``amplitude`` is relative to full scale (0..1).
    """
    if not 0 < amplitude <= 1:
        raise ValueError("amplitude must be in (0, 1]")
    scale = amplitude * 32767
    n = start_sample
    step = np.arange(FRAME_SAMPLES, dtype=np.float64)
    while True:
        t = (n + step) / SAMPLE_RATE
        yield np.round(scale * np.sin(2 * np.pi * frequency * t)).astype(np.int16)
        n += FRAME_SAMPLES


def frame_to_mono(frame: av.AudioFrame) -> npt.NDArray[np.float64]:
    """Samples of a received frame as mono float64 in [-1, 1].

    Handles packed (interleaved, e.g. aiortc's s16 **stereo** 960-sample frames) and planar layouts by
    averaging the channels.
    """
    data = frame.to_ndarray()
    channels = len(frame.layout.channels)
    if frame.format.is_planar:
        mono = data.astype(np.float64).mean(axis=0)
    else:
        mono = data.reshape(-1, channels).astype(np.float64).mean(axis=1)
    if data.dtype == np.int16:
        mono /= 32768.0
    elif data.dtype == np.int32:
        mono /= 2147483648.0
    return np.asarray(mono, dtype=np.float64)


def dominant_frequency(samples: npt.NDArray[np.floating] | npt.NDArray[np.integer], sample_rate: int) -> float:
    """Frequency (Hz) of the strongest FFT bin of ``samples`` (mono), Hann-windowed, with parabolic
    interpolation between bins. Returns 0.0 for silence. Use ≥ 100 ms of audio for ±5 Hz at 48 kHz."""
    x = np.asarray(samples, dtype=np.float64)
    if x.size < 2 or not np.any(x):
        return 0.0
    x = (x - x.mean()) * np.hanning(x.size)
    spectrum = np.abs(np.fft.rfft(x))
    spectrum[0] = 0.0
    k = int(np.argmax(spectrum))
    offset = 0.0
    if 0 < k < spectrum.size - 1:
        a, b, c = np.log(spectrum[k - 1 : k + 2] + 1e-12)
        denom = a - 2 * b + c
        if denom != 0:
            offset = 0.5 * (a - c) / denom
    return float((k + offset) * sample_rate / x.size)


class FrameConverter:
    """Any ``av.AudioFrame`` (rate, layout, format, length) → 20 ms 48 kHz mono s16 frames for an
    :class:`~voicebot.media.AudioSender`, via PyAV's ``AudioResampler`` (keeps its state between calls)."""

    def __init__(self) -> None:
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE, frame_size=FRAME_SAMPLES)

    def convert(self, frame: av.AudioFrame | None) -> list[Pcm]:
        """Feed one frame (``None`` flushes the tail) and return the complete 960-sample frames now ready."""
        return [np.asarray(out.to_ndarray(), dtype=np.int16).reshape(-1) for out in self._resampler.resample(frame)]
