"""The shared heartbeat timer: one task for all connections, same cadence and 4002 rule as before."""

from __future__ import annotations

import itertools
from contextlib import AsyncExitStack

import attrs
import pytest
import trio
import trio.testing

from voicebot.server import Server
from voicebot.server._heartbeat import Heartbeats
from voicebot.testing import open_client, settings_for_tests
from voicebot.testing._rawws import RawWebSocket, frame


def _tasks_under(nursery: trio.Nursery) -> int:
    count = 0
    for task in nursery.child_tasks:
        count += 1
        for child in task.child_nurseries:
            count += _tasks_under(child)
    return count


async def test_idle_connection_holds_no_heartbeat_task(server: Server, autojump_clock: object) -> None:
    """Between pings a greeted connection runs its reader and trio-websocket's reader: no sleeper, no idle writer,
    and one timer entry each."""
    conns = server._nursery
    assert conns is not None
    async with AsyncExitStack() as stack:
        for i in range(20):
            await stack.enter_async_context(open_client(server, f"c{i}"))
        await trio.sleep(server.settings.heartbeat_interval * 3.5)  # between pings, after several rounds
        # per connection: handle_stream (which runs the connection's reader) and the websocket reader; no writer
        assert _tasks_under(conns) == 20 * 2
        assert len(server.heartbeats) == 20
        assert server.heartbeats.pings >= 20 * 3


@attrs.define(eq=False)
class _Peer:
    """A connection stand-in: records pings, answers them (bytes arrive ``delay`` later) when told to."""

    beats: Heartbeats
    answer: bool = True
    delay: float = 0.05
    running: bool = True
    sent: list[float] = attrs.field(factory=list)
    received: float = attrs.field(factory=trio.current_time)
    missed_at: float | None = None

    @property
    def last_received(self) -> float:
        return self.received if self.received <= trio.current_time() else -1.0

    def send_ping(self) -> bool:
        if not self.running:
            return False
        self.sent.append(trio.current_time())
        if self.answer:
            self.received = trio.current_time() + self.delay
        return True

    def ping_missed(self) -> None:
        self.missed_at = trio.current_time()
        self.running = False


async def test_cadence_and_missed_pong(autojump_clock: trio.testing.MockClock) -> None:
    beats = Heartbeats(12.8)  # checks fall on multiples of 12.8 / 64 = 0.2 s
    async with trio.open_nursery() as nursery:
        nursery.start_soon(beats.run)
        await trio.sleep(100 - trio.current_time())
        start = trio.current_time()
        live = _Peer(beats)
        beats.start(live)
        await trio.sleep(3.05)
        silent, gone = _Peer(beats, answer=False), _Peer(beats)
        beats.start(silent)  # last bytes at 3.05: due at 15.85, pinged at 16.0, the next multiple of 0.2 s
        beats.start(gone)
        await trio.sleep(2)
        gone.running = False  # ended before its first ping: dropped from the schedule
        await trio.sleep(128)
        # each ping one interval after the previous pong (0.05 s later), rounded up to the 0.2 s grid
        assert [round(t - start, 6) for t in live.sent] == [round(12.8 + 13.0 * k, 6) for k in range(10)]
        assert live.missed_at is None
        assert [round(t - start, 6) for t in silent.sent] == [16.0]  # no pong: closed 2 intervals later
        assert silent.missed_at is not None and round(silent.missed_at - start, 6) == 16.0 + 25.6
        assert gone.sent == [] and gone.missed_at is None
        assert len(beats) == 1  # the live peer's next check
        nursery.cancel_scope.cancel()


async def test_traffic_makes_pings_unnecessary(autojump_clock: trio.testing.MockClock) -> None:
    """Bytes from the client count as a sign of life: a client that keeps sending is never pinged, and a late
    pong (after one interval, within two) keeps the connection."""
    beats = Heartbeats(10.0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(beats.run)
        chatty, late = _Peer(beats, answer=False), _Peer(beats, delay=15.0)
        beats.start(chatty)
        beats.start(late)
        for _ in range(20):
            await trio.sleep(5)
            chatty.received = trio.current_time()
        assert chatty.sent == [] and chatty.missed_at is None
        assert late.missed_at is None and len(late.sent) >= 3  # each pong 15 s late: not closed
        late.delay = 20.5  # past two intervals: closed
        await trio.sleep(60)
        assert late.missed_at is not None
        nursery.cancel_scope.cancel()


async def test_many_connections_one_timer(autojump_clock: trio.testing.MockClock) -> None:
    """10,000 connections: every one pinged once per interval by the same task, in a few batches."""
    beats = Heartbeats(15.0)
    peers = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(beats.run)
        for i in range(10_000):
            peers.append(_Peer(beats))
            beats.start(peers[-1])
            if i % 100 == 99:
                await trio.sleep(0.01)  # connections arrive over 1 s: pinged in a few batches, not 10,000
        await trio.sleep(15 * 4 + 1)
        assert {len(p.sent) for p in peers} == {4}
        assert len({t for p in peers for t in p.sent}) <= 4 * 7
        assert len(beats) == 10_000
        assert beats.pings == 40_000
        nursery.cancel_scope.cancel()


async def test_rejects_non_positive_interval() -> None:
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="interval"):
            Heartbeats(bad)


async def test_pings_over_tcp_then_4002_when_unanswered() -> None:
    """Real sockets (pings written straight to the socket by the timer): a client that answers each ping gets the
    next one an interval later; once it stops answering it is closed 4002 two intervals after the last ping."""
    server = Server(settings_for_tests(host="127.0.0.1", heartbeat_interval=0.4))
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        host, port = server.addresses()[0].rsplit(":", 1)
        ws = await RawWebSocket.connect(host, int(port))
        await ws.send_text('{"type":"hello","name":"a"}')
        with trio.fail_after(5):
            got = await ws.read()
            assert got is not None and b"welcome" in got[1]
            pings = []
            while len(pings) < 3:
                got = await ws.read()
                assert got is not None
                if got[0] == 0x9:
                    pings.append(trio.current_time())
                    await ws.send(frame(0xA, got[1]))
        gaps = [b - a for a, b in itertools.pairwise(pings)]
        assert all(0.35 <= gap <= 1.2 for gap in gaps), gaps
        with trio.fail_after(5):
            code, frames = await ws.read_close()  # no more pongs
        assert code == 4002
        assert trio.current_time() - pings[-1] >= 0.8
        assert [op for op, _ in frames] == [0x9]  # the one unanswered ping, then the close
        await ws.aclose()
        server.shutdown()
