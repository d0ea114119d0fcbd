"""PeerConnection over loopback: tones both ways, events, close semantics, loop error handling."""

from __future__ import annotations

import asyncio

import pytest
import trio
from aiortc.exceptions import InvalidStateError
from media_helpers import LOOPBACK, LOOPBACK_ONLY, connected_pair, feed_tone, negotiate, received_frequency

from voicebot.errors import WebRTCError
from voicebot.media import MediaConfig, PeerConnection, current_media_runtime, open_media_loop

pytestmark = pytest.mark.media


@pytest.mark.parametrize("config", [LOOPBACK, LOOPBACK_ONLY], ids=["allow_loopback", "loopback_only_host"])
async def test_two_peers_exchange_tones(config: MediaConfig) -> None:
    with trio.fail_after(15):
        async with open_media_loop() as runtime, connected_pair(runtime, config) as (a, b, senders):
            assert a.setup_time is not None
            assert a.setup_time < 5
            results: dict[str, float] = {}

            async def listen(name: str, pc: PeerConnection) -> None:
                track = await pc.incoming_tracks.receive()
                assert track.kind == "audio"
                results[name] = await received_frequency(track)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(feed_tone, senders[0], 440.0)
                nursery.start_soon(feed_tone, senders[1], 880.0)
                async with trio.open_nursery() as listeners:
                    listeners.start_soon(listen, "a", a)
                    listeners.start_soon(listen, "b", b)
                nursery.cancel_scope.cancel()
            assert abs(results["b"] - 440.0) <= 15, results  # b hears a
            assert abs(results["a"] - 880.0) <= 15, results  # a hears b
            assert senders[0].stats.dropped == 0
        assert a.closed
        assert b.closed
        assert a.close_error is None
        assert b.close_error is None
        assert runtime.stats.loop_errors == 0


async def test_connection_state_events_reach_connected_and_closed() -> None:
    with trio.fail_after(10):
        async with open_media_loop() as runtime:
            async with connected_pair(runtime) as (a, _b, _):
                assert a.connection_state == "connected"
            states = [state async for state in a.connection_states]  # channel ends after the close
            assert "connected" in states
            assert states[-1] == "closed"
            assert states.index("connected") < states.index("closed")
            ice = [state async for state in a.ice_states]
            assert "completed" in ice or "connected" in ice


async def test_close_is_idempotent_and_concurrent_closes_agree() -> None:
    with trio.fail_after(10):
        async with open_media_loop() as runtime, connected_pair(runtime) as (a, b, senders):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(feed_tone, senders[0], 440.0)
                nursery.start_soon(a.aclose)
                nursery.start_soon(a.aclose)
            await a.aclose()
            assert a.closed
            assert a.close_error is None
            assert a.connection_state == "closed"
            with pytest.raises(WebRTCError) as info:
                await senders[0].send(next(iter([senders[0].track._silence])))
            assert info.value.code == "track_closed"
            with pytest.raises(WebRTCError) as info:
                await a.create_offer()
            assert info.value.code == "peer_closed"
            await b.wait_connected() if b.connection_state == "connected" else None
        assert runtime.stats.close_timeouts == 0


async def test_close_while_create_offer_in_flight() -> None:
    with trio.fail_after(10):
        async with open_media_loop() as runtime:
            for delay in (0.0, 0.001, 0.005):
                outcome: list[object] = []
                async with PeerConnection(LOOPBACK, runtime=runtime) as pc:
                    await pc.add_audio_sender()

                    async def offer(pc: PeerConnection = pc, outcome: list[object] = outcome) -> None:
                        try:
                            outcome.append(await pc.create_offer())
                        except WebRTCError as exc:
                            outcome.append(exc)

                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(offer)
                        await trio.sleep(delay)
                        await pc.aclose()
                    assert pc.closed
                    assert pc.close_error is None
                assert len(outcome) == 1
                assert not isinstance(outcome[0], WebRTCError) or outcome[0].code == "peer_closed"
            assert runtime.stats.close_timeouts == 0


async def test_cancelled_offer_propagates_and_connection_still_closes() -> None:
    with trio.fail_after(10):
        async with open_media_loop() as runtime, PeerConnection(LOOPBACK, runtime=runtime) as pc:
            with trio.CancelScope() as scope:
                scope.cancel()
                await pc.create_offer()  # Cancelled must escape to the scope, not become a WebRTCError
            assert scope.cancelled_caught
            await pc.aclose()
            assert pc.closed


async def test_loop_exception_is_classified_counted_and_loop_survives() -> None:
    def raise_aiortc_error() -> None:
        raise InvalidStateError("boom from an asyncio callback")

    async def failing_task() -> None:
        raise ZeroDivisionError("boom from a forgotten task")

    with trio.fail_after(10):
        async with open_media_loop() as runtime:
            assert current_media_runtime() is runtime
            runtime.loop.call_soon(raise_aiortc_error)
            runtime.loop.call_soon(lambda: 1 / 0)
            await trio.sleep(0.05)
            assert runtime.stats.loop_errors == 2
            assert runtime.stats.loop_errors_by_code["webrtc_error"] == 1
            assert runtime.stats.loop_errors_by_code["internal_error"] == 1
            assert runtime.stats.recent_errors[0].context["exception"].endswith("InvalidStateError")
            # An asyncio task nobody awaits: its error is retrieved quietly, the loop keeps running.
            task = asyncio.ensure_future(failing_task(), loop=runtime.loop)
            await trio.sleep(0.05)
            assert task.done()
            # The loop still runs aiortc: a full negotiation works afterwards.
            async with connected_pair(runtime) as (a, _b, _):
                assert a.connection_state == "connected"


async def test_runtime_required() -> None:
    with pytest.raises(WebRTCError) as info:
        async with PeerConnection(LOOPBACK):
            pass  # pragma: no cover
    assert info.value.code == "media_runtime_missing"


async def test_invalid_remote_description_is_classified() -> None:
    with trio.fail_after(10):
        async with open_media_loop() as runtime, PeerConnection(LOOPBACK, runtime=runtime) as pc:
            with pytest.raises(WebRTCError) as info:
                await pc.set_remote_description({"type": "answer", "sdp": "v=0\r\n"})  # answer without offer
            assert info.value.category == "webrtc"
            with pytest.raises(WebRTCError) as info:
                await pc.set_remote_description({"sdp": "v=0"})
            assert info.value.code == "invalid_sdp"
            with pytest.raises(WebRTCError) as info:
                await pc.restart_ice()
            assert info.value.code == "ice_restart_unsupported"
            assert info.value.recovery == "rebuild_peer"


async def test_trickled_candidates_connect() -> None:
    """Strip the answerer's candidates from its SDP and trickle them through ``add_ice_candidate``."""
    with trio.fail_after(10):
        async with (
            open_media_loop() as runtime,
            PeerConnection(LOOPBACK_ONLY, runtime=runtime) as a,
            PeerConnection(LOOPBACK_ONLY, runtime=runtime) as b,
        ):
            await a.add_audio_sender()
            answer = await b.create_answer(await a.create_offer())
            lines = answer.sdp.split("\r\n")
            candidates = [line[2:] for line in lines if line.startswith("a=candidate:")]
            assert candidates
            stripped = "\r\n".join(
                line for line in lines if not line.startswith(("a=candidate:", "a=end-of-candidates"))
            )
            await a.set_remote_description({"type": "answer", "sdp": stripped})
            for text in candidates:
                await a.add_ice_candidate({"candidate": text, "sdpMid": "0", "sdpMLineIndex": 0})
            await a.add_ice_candidate(None)
            await a.wait_connected()
            with pytest.raises(WebRTCError) as info:
                await a.add_ice_candidate({"candidate": "candidate:garbage", "sdpMid": "0"})
            assert info.value.code == "invalid_candidate"


async def test_wait_connected_times_out_with_classified_error() -> None:
    with trio.fail_after(10):
        async with (
            open_media_loop() as runtime,
            PeerConnection(MediaConfig(allow_loopback=True, negotiation_timeout=0.2), runtime=runtime) as pc,
        ):
            with pytest.raises(WebRTCError) as info:
                await pc.wait_connected()
            assert info.value.code == "connect_timeout"


async def test_negotiate_helper_reports_setup_time() -> None:
    with trio.fail_after(10):
        async with (
            open_media_loop() as runtime,
            PeerConnection(LOOPBACK, runtime=runtime) as a,
            PeerConnection(LOOPBACK, runtime=runtime) as b,
        ):
            await a.add_audio_sender()
            seconds = await negotiate(a, b)
            assert 0 < seconds < 5
            assert b.setup_time is not None


def _candidate_addresses(sdp: str) -> set[str]:
    return {line.split()[4] for line in sdp.split("\r\n") if line.startswith("a=candidate:")}


async def test_loopback_policy_applies_only_to_connections_that_ask_for_it() -> None:
    """The aioice hook is per operation (context variable): concurrent default offers never get 127.0.0.1."""
    with trio.fail_after(10):
        async with open_media_loop() as runtime:
            offers: dict[str, set[str]] = {}

            async def offer(name: str, config: MediaConfig) -> None:
                async with PeerConnection(config, runtime=runtime) as pc:
                    await pc.add_audio_sender()
                    offers[name] = _candidate_addresses((await pc.create_offer()).sdp)

            async with trio.open_nursery() as nursery:
                for i in range(3):
                    nursery.start_soon(offer, f"default{i}", MediaConfig())
                    nursery.start_soon(offer, f"loopback{i}", LOOPBACK)
                    nursery.start_soon(offer, f"only{i}", LOOPBACK_ONLY)
            for i in range(3):
                assert "127.0.0.1" not in offers[f"default{i}"]
                assert "127.0.0.1" in offers[f"loopback{i}"]
                assert offers[f"only{i}"] == {"127.0.0.1"}
                assert offers[f"loopback{i}"] - {"127.0.0.1"} == offers[f"default{i}"]
