"""Audio helpers and the Trio-side queues (no network, except the incoming-drop test)."""

from __future__ import annotations

import av
import numpy as np
import pytest
import trio
from media_helpers import connected_pair, feed_tone

from voicebot.errors import WebRTCError
from voicebot.media import (
    FRAME_SAMPLES,
    TIME_BASE,
    AudioSender,
    FrameConverter,
    IceServer,
    MediaConfig,
    dominant_frequency,
    frame_to_mono,
    make_frame,
    open_media_loop,
    tone_frames,
)
from voicebot.media._sdp import rtc_configuration

pytestmark = pytest.mark.media


@pytest.mark.parametrize("freq", [220.0, 440.0, 880.0, 1234.0])
def test_tone_frames_and_dominant_frequency(freq: float) -> None:
    gen = tone_frames(freq)
    frames = [next(gen) for _ in range(10)]
    assert all(f.dtype == np.int16 and f.shape == (FRAME_SAMPLES,) for f in frames)
    assert abs(dominant_frequency(np.concatenate(frames), 48_000) - freq) < 2
    assert dominant_frequency(np.zeros(960), 48_000) == 0.0


def test_frame_to_mono_reads_interleaved_stereo() -> None:
    mono = next(tone_frames(440.0))
    stereo = np.repeat(mono, 2).reshape(1, -1)  # s16 packed stereo, as aiortc delivers
    frame = av.AudioFrame.from_ndarray(stereo, format="s16", layout="stereo")
    frame.sample_rate = 48_000
    out = frame_to_mono(frame)
    assert out.shape == (FRAME_SAMPLES,)
    assert np.allclose(out, mono / 32768.0)


def test_make_frame_has_pts_and_time_base() -> None:
    frame = make_frame(next(tone_frames(440.0)), 960 * 7)
    assert (frame.samples, frame.sample_rate, frame.pts, frame.time_base) == (960, 48_000, 6720, TIME_BASE)
    assert frame.format.name == "s16"
    assert frame.layout.name == "mono"


def test_frame_converter_resamples_22050_to_track_frames() -> None:
    converter = FrameConverter()
    t = np.arange(22050) / 22050
    pcm = (0.3 * 32767 * np.sin(2 * np.pi * 500 * t)).astype(np.int16).reshape(1, -1)
    src = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
    src.sample_rate = 22050
    src.pts = 0
    out = converter.convert(src) + converter.convert(None)
    assert all(f.shape == (FRAME_SAMPLES,) and f.dtype == np.int16 for f in out)
    assert 48 <= len(out) <= 51
    assert abs(dominant_frequency(np.concatenate(out[5:45]), 48_000) - 500) < 5


async def test_audio_sender_drops_oldest_when_full_and_clears() -> None:
    sender = AudioSender(capacity=3)
    frames = [np.full(FRAME_SAMPLES, i, dtype=np.int16) for i in range(5)]
    results = [sender.send_nowait(f) for f in frames]
    assert results == [True, True, True, False, False]
    assert sender.stats.dropped == 2
    assert sender.queued == 3
    assert [int(sender._drain.receive_nowait()[0]) for _ in range(3)] == [2, 3, 4]  # newest kept
    sender.send_nowait(frames[0])
    assert sender.clear() == 1
    assert sender.queued == 0
    with pytest.raises(ValueError, match="960 int16"):
        sender.send_nowait(np.zeros(480, dtype=np.int16))
    sender.close()
    with pytest.raises(WebRTCError):
        sender.send_nowait(frames[0])


async def test_audio_sender_send_waits_for_room_and_fails_when_closed() -> None:
    sender = AudioSender(capacity=1)
    pcm = np.zeros(FRAME_SAMPLES, dtype=np.int16)
    await sender.send(pcm)
    with trio.move_on_after(0.05) as scope:
        await sender.send(pcm)
    assert scope.cancelled_caught  # full: send waits (backpressure), it does not drop
    outcome: list[str] = []

    async def blocked_send() -> None:
        try:
            await sender.send(pcm)
        except WebRTCError as exc:
            outcome.append(exc.code)

    with trio.fail_after(2):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(blocked_send)
            await trio.sleep(0.01)
            sender.track.stop()  # aiortc ending the track must wake a waiting sender, not leave it hanging
    assert outcome == ["track_closed"]
    with pytest.raises(WebRTCError):
        await sender.send(pcm)


async def test_incoming_frames_drop_oldest_when_consumer_is_slow() -> None:
    config = MediaConfig(allow_loopback=True, incoming_queue_frames=5)
    with trio.fail_after(10):
        async with open_media_loop() as runtime, connected_pair(runtime, config) as (a, b, senders):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(feed_tone, senders[0], 440.0)
                track = await b.incoming_tracks.receive()
                await trio.sleep(0.6)  # not reading: the pump keeps going and drops the oldest frames
                assert track.stats.dropped > 0
                assert track.stats.frames - track.stats.dropped == 5
                first = await track.frames.receive()
                assert first.samples == 960
                assert first.layout.name == "stereo"
                nursery.cancel_scope.cancel()
            assert a.connection_state == "connected"


def test_config_ice_servers_default_and_from_settings() -> None:
    assert rtc_configuration(MediaConfig()).iceServers == []  # never aiortc's default Google STUN
    config = MediaConfig(
        ice_servers=[
            {"urls": "stun:stun.example.org:3478"},
            {"urls": ["turn:turn.example.org:3478"], "username": "u", "credential": "p"},
        ]
    )
    assert config.ice_servers[0] == IceServer(urls=("stun:stun.example.org:3478",))
    rtc = rtc_configuration(config).iceServers
    assert [(s.urls, s.username, s.credential) for s in rtc] == [
        (["stun:stun.example.org:3478"], None, None),
        (["turn:turn.example.org:3478"], "u", "p"),
    ]
    assert not MediaConfig().patches_host_addresses
    assert MediaConfig(allow_loopback=True).patches_host_addresses
    with pytest.raises(ValueError, match="close_timeout"):
        MediaConfig(close_timeout=0)
    with pytest.raises(ValueError, match="url"):
        IceServer(urls=[])
