"""Media bridge: aiortc running inside Trio through one trio-asyncio loop per process.

- :func:`open_media_loop` (alias :func:`media_runtime`) opens the loop in the caller's nursery and installs
  an exception handler that classifies and counts loop errors (:class:`MediaStats`) instead of tearing the
  loop down.
- :class:`PeerConnection` is a Trio-native peer connection: events as bounded channels, offer/answer/candidate
  coroutines with deadlines, audio out through :class:`AudioSender`, audio in as :class:`IncomingTrack`
  channels, and a shielded, bounded, idempotent close that cannot hang (design.md §2 known bugs 1 and 2).
- :class:`MediaConfig` holds ICE servers (none by default) and the loopback policy.
- Audio helpers: :func:`tone_frames`, :func:`dominant_frequency`, :func:`frame_to_mono`,
  :class:`FrameConverter`.
"""

from ._audio import (
    FRAME_SAMPLES,
    SAMPLE_RATE,
    TIME_BASE,
    FrameConverter,
    dominant_frequency,
    frame_to_mono,
    make_frame,
    tone_frames,
)
from ._config import IceServer, MediaConfig
from ._icepolicy import DEFAULT_ICE_DENY, IcePolicy, parse_networks
from ._peer import PeerConnection
from ._runtime import MediaRuntime, MediaStats, current_media_runtime, media_runtime, open_media_loop
from ._sdp import SessionDescription
from ._tracks import AudioSender, IncomingTrack, OutgoingAudioTrack, TrackStats

__all__ = [
    "DEFAULT_ICE_DENY",
    "FRAME_SAMPLES",
    "SAMPLE_RATE",
    "TIME_BASE",
    "AudioSender",
    "FrameConverter",
    "IcePolicy",
    "IceServer",
    "IncomingTrack",
    "MediaConfig",
    "MediaRuntime",
    "MediaStats",
    "OutgoingAudioTrack",
    "PeerConnection",
    "SessionDescription",
    "TrackStats",
    "current_media_runtime",
    "dominant_frequency",
    "frame_to_mono",
    "make_frame",
    "media_runtime",
    "open_media_loop",
    "parse_networks",
    "tone_frames",
]
