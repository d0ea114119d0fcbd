"""A cancelled client does not sit out the close-reply wait that its cancelled reader can never end."""

from __future__ import annotations

import trio
import trio.testing

from voicebot.client._client import CANCELLED_CLOSE_WAIT, CLOSE_WAIT
from voicebot.testing import open_client, open_test_server


async def test_a_cancelled_client_leaves_without_the_full_close_wait(autojump_clock: trio.testing.MockClock) -> None:
    async with open_test_server() as server:
        with trio.CancelScope() as scope:
            async with open_client(server, "a") as a:
                assert (await a.request("ping"))["type"] == "pong"
                started = trio.current_time()
                scope.cancel()
                await trio.sleep_forever()
        assert trio.current_time() - started <= CANCELLED_CLOSE_WAIT + 0.01 < CLOSE_WAIT


async def test_a_client_leaving_normally_still_completes_the_close_handshake(
        autojump_clock: trio.testing.MockClock) -> None:
    async with open_test_server() as server:
        async with open_client(server, "a") as a:
            conn = next(iter(server.connections.values()))
        assert a.ws.closed is not None and a.ws.closed.code == 1000  # the handshake finished, not cut short
        with trio.fail_after(5):
            await conn.finished.wait()
