"""Helpers for cluster tests: several real ``voicebot serve --cluster`` processes on one Redis and one database."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import trio

from voicebot.client import Client, connect
from voicebot.testing import PostgresEngine, RedisEngine, serve_process

#: The process of each running hub by its URL (for kill -9).
HUBS: dict[str, subprocess.Popen[str]] = {}
#: The ``voicebot serve`` arguments of the running :func:`hubs` (to start one more hub).
HUB_ARGS: list[str] = []


@contextmanager
def hubs(redis: RedisEngine, postgres: PostgresEngine, *extra: str, count: int = 2,
         grace: float = 2.0) -> Iterator[list[str]]:
    """``count`` hubs on one Redis and one database (started one after the other: migrations run once)."""
    redis.command("FLUSHALL")
    db = postgres.new_database("cluster")
    args = ("--cluster", redis.url, "--db", db, "--local-worker", "0", "--resume-grace", str(grace),
            "--admin-token", "cluster-admin", *extra)
    HUB_ARGS[:] = args
    with ExitStack() as stack:
        urls = []
        for _ in range(count):
            proc, url = stack.enter_context(serve_process(*args))
            HUBS[url] = proc
            urls.append(url)
        try:
            yield urls
        finally:
            for url in urls:
                HUBS.pop(url, None)


def two_hubs(redis: RedisEngine, postgres: PostgresEngine, *extra: str) -> Any:
    """Two hubs (resume grace 2 s)."""
    return hubs(redis, postgres, *extra)


async def wait_for(predicate: Any, timeout: float = 20.0) -> None:
    """Poll ``predicate()`` (run in a thread) until true."""
    with trio.fail_after(timeout):
        while not await trio.to_thread.run_sync(predicate):  # noqa: ASYNC110 - polling another process
            await trio.sleep(0.2)


#: Lift the per-connection and per-address request budgets: senders send as fast as the hubs take them.
UNLIMITED = ("--request-rate", "100000", "--request-burst", "100000", "--request-rate-per-address", "0")


async def kill_hub(url: str) -> None:
    """kill -9 the hub at ``url`` and wait until its process is gone."""
    HUBS[url].kill()
    await trio.to_thread.run_sync(HUBS[url].wait, 10)


async def in_grace(url: str, name: str, lobby_id: str) -> tuple[str, str]:
    """A peer ``name`` joins ``lobby_id`` through the hub at ``url`` and disconnects; once this returns its hub
    has seen the socket close (it is in its resume grace there). Returns its resume token and peer id."""
    async with connect(url) as client:
        await client.hello(name)
        await client.join(lobby_id)
        token, peer_id = client.resume_token, client.peer_id
    await trio.sleep(0.5)
    return token, peer_id


async def drain(client: Client) -> None:
    """Read and drop ``client``'s events until cancelled; none may be an error."""
    while True:
        event = await client.next_event(timeout=60)
        assert event.get("type") != "error", event


async def chatter(client: Client, every: float = 0.002) -> None:
    """Chat ``busy {i}`` every ``every`` seconds until cancelled (keeps the hub's publisher busy with forwards
    when the lobby has members on other hubs)."""
    i = 0
    while True:
        await client.chat(f"busy {i}")
        i += 1
        await trio.sleep(every)
