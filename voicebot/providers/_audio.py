"""Resampling of mono s16 audio between provider rates (PyAV's resampler; no hand-written DSP)."""

from __future__ import annotations

import av
import numpy as np
import numpy.typing as npt

__all__ = ["resample_mono"]


def resample_mono(samples: npt.NDArray[np.int16], source: int, target: int) -> npt.NDArray[np.int16]:
    """``samples`` (mono s16 at ``source`` Hz) at ``target`` Hz. CPU work: call it off the event loop for long
    buffers."""
    samples = np.ascontiguousarray(samples, dtype=np.int16).reshape(-1)
    if source == target or samples.size == 0:
        return samples
    frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = source
    resampler = av.AudioResampler(format="s16", layout="mono", rate=target)
    out = [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
    out += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    return np.concatenate(out).astype(np.int16) if out else np.zeros(0, dtype=np.int16)
