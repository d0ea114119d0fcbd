"""Per-connection request rate limit (token bucket on Trio's clock)."""

from __future__ import annotations

import pytest
import trio

from voicebot.client import RemoteError
from voicebot.server._ratelimit import TokenBucket
from voicebot.testing import open_client, open_test_server, settings_for_tests


def test_token_bucket_exact() -> None:
    bucket = TokenBucket(rate=2.0, burst=3, now=0.0)
    assert [bucket.take(0.0) for _ in range(3)] == [None, None, None]
    assert bucket.take(0.0) == pytest.approx(0.5)
    assert bucket.take(0.5) is None
    assert bucket.take(10.0) is None and bucket.take(10.0) is None and bucket.take(10.0) is None
    assert bucket.take(10.0) is not None  # never more than the burst saved up
    with pytest.raises(ValueError, match="rate"):
        TokenBucket(0, 1, 0.0)


async def test_flooding_client_is_rate_limited_and_neighbours_are_not(autojump_clock: object) -> None:
    settings = settings_for_tests(request_rate=10.0, request_burst=20)
    async with open_test_server(settings) as server, open_client(server, "flood") as a, \
            open_client(server, "calm") as b:
        for _ in range(19):  # hello took one token
            await a.request("ping")
        with pytest.raises(RemoteError) as info:
            await a.request("ping")
        assert (info.value.code, info.value.category, info.value.retryable) == ("rate_limited", "rate_limit", True)
        assert info.value.retry_after == pytest.approx(0.1)
        assert (await b.request("ping"))["type"] == "pong"
        await trio.sleep(info.value.retry_after)
        assert (await a.request("ping"))["type"] == "pong"
