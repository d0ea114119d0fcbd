"""Helpers for cluster tests: several real ``voicebot serve --cluster`` processes on one Redis and one database."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import trio

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
