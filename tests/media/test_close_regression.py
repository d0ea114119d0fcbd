"""Regression test for the two ``RTCPeerConnection.close()`` hangs under trio-asyncio (a lost
``Task.cancel()``; a close cancelled part-way).

Under trio-asyncio, aiortc's RTP sender can lose its cancellation while it waits in ``run_in_executor``, so a
plain ``RTCPeerConnection.close()`` of busy connections hangs (10 busy pairs: within 3 rounds every time).
Here 10 pairs send audio both ways; one side of every pair (10 busy connections) is closed at once while the
remote sides keep streaming (a remote close would end the RTP loop through DTLS close_notify and hide the bug),
then the other 10. Each
round is bounded by ``trio.fail_after`` and every close must *finish* (no ``close_error``), not merely return
after its own 5 s deadline.
"""

from __future__ import annotations

import time
from contextlib import AsyncExitStack

import pytest
import trio
from media_helpers import LOOPBACK_ONLY, feed_tone, negotiate

from voicebot.media import MediaRuntime, PeerConnection, open_media_loop

pytestmark = pytest.mark.media

PAIRS = 10
ROUNDS = 20
BUSY_SECONDS = 0.25
ROUND_DEADLINE = 12.0
_totals = dict.fromkeys(("frames", "silence", "resyncs", "dropped"), 0)


async def _round(runtime: MediaRuntime) -> tuple[float, float]:
    """One round: connect PAIRS pairs, stream tones, close one side of each at once, then the other side;
    returns (setup s, first close s)."""
    async with AsyncExitStack() as stack:
        peers: list[PeerConnection] = []
        for _ in range(2 * PAIRS):
            peers.append(await stack.enter_async_context(PeerConnection(LOOPBACK_ONLY, runtime=runtime)))
        senders = [await pc.add_audio_sender() for pc in peers]
        start = time.monotonic()
        async with trio.open_nursery() as nursery:
            for i in range(PAIRS):
                nursery.start_soon(negotiate, peers[2 * i], peers[2 * i + 1])
        setup = time.monotonic() - start
        async with trio.open_nursery() as feeders:
            for i, sender in enumerate(senders):
                feeders.start_soon(feed_tone, sender, 300.0 + 20 * i)
            await trio.sleep(BUSY_SECONDS)
            start = time.monotonic()
            # One side of every pair at once, while both sides still stream: the remote peers keep their
            # DTLS up, so nothing but our close order can end these senders' RTP loops.
            async with trio.open_nursery() as closers:
                for pc in peers[::2]:
                    closers.start_soon(pc.aclose)
            closing = time.monotonic() - start
            async with trio.open_nursery() as closers:
                for pc in peers[1::2]:
                    closers.start_soon(pc.aclose)
        for pc in peers:
            assert pc.closed
            assert pc.close_error is None, pc.close_error
        for sender in senders:
            _totals["frames"] += sender.stats.frames
            _totals["silence"] += sender.stats.silence
            _totals["resyncs"] += sender.stats.resyncs
            _totals["dropped"] += sender.stats.dropped
        return setup, closing


async def test_closing_many_busy_connections_never_hangs() -> None:
    setups: list[float] = []
    closes: list[float] = []
    async with open_media_loop() as runtime:
        for _ in range(ROUNDS):
            with trio.fail_after(ROUND_DEADLINE):
                setup, closing = await _round(runtime)
            setups.append(setup)
            closes.append(closing)
        assert runtime.stats.close_timeouts == 0
        assert runtime.stats.peer_connections_closed == ROUNDS * 2 * PAIRS
    print(
        f"\nclose regression: {ROUNDS} rounds x {PAIRS} pairs; setup max {max(setups):.3f}s;"
        f" close mean {sum(closes) / len(closes):.3f}s max {max(closes):.3f}s; outgoing {_totals}"
    )
