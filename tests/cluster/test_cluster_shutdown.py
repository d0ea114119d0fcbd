"""A hub in cluster mode stops cleanly: on graceful shutdown and when its tasks are cancelled (the in-process
form of losing the hub), nothing but the cancellation leaves it (coredis' subscription cleanup used to raise
``ClosedResourceError`` out of the server)."""

from __future__ import annotations

import pytest
import trio

from voicebot.testing import PostgresEngine, RedisEngine, open_test_server, settings_for_tests

pytestmark = pytest.mark.slow


async def test_graceful_shutdown_and_cancellation_raise_nothing(redis_server: RedisEngine,
                                                                postgres_server: PostgresEngine) -> None:
    settings = settings_for_tests(cluster=redis_server.url, db=postgres_server.new_database("stop"))
    for _ in range(2):
        async with open_test_server(settings) as server:
            assert server.cluster is not None
            with trio.fail_after(10):
                while server.cluster.status() != "available":  # noqa: ASYNC110 - polling the subscription
                    await trio.sleep(0.05)
        assert server.stopped.is_set()
    with trio.CancelScope() as scope:
        async with open_test_server(settings) as server:
            await trio.sleep(0.5)
            scope.cancel()
            await trio.sleep_forever()
    assert scope.cancelled_caught and server.stopped.is_set()
