"""In-process servers and simulated clients for tests (run them under ``MockClock(autojump_threshold=0)``)."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import attrs
import trio
import trio.testing

from ..client import Client, connect_stream
from ..server import Server, Settings

__all__ = ["FakePasswordHasher", "FreezableStream", "open_client", "open_test_server"]


class FakePasswordHasher:
    """A hasher that does no thread work (keeps autojump-clock tests deterministic). Never use in production."""

    async def hash(self, password: str, *, key: str | None = None) -> str:
        """Return a reversible fake digest."""
        return "fake$" + password[::-1]

    async def verify(self, digest: str, password: str, *, key: str | None = None) -> bool:
        """Compare against :meth:`hash`'s output."""
        return digest == "fake$" + password[::-1]


class FreezableStream(trio.abc.Stream):
    """Wraps a stream; while :attr:`frozen`, reads stall (a client that stopped reading or a dead network)."""

    def __init__(self, inner: trio.abc.Stream) -> None:
        self.inner = inner
        self._thaw = trio.Event()
        self._thaw.set()

    @property
    def frozen(self) -> bool:
        """True while reads stall."""
        return not self._thaw.is_set()

    def freeze(self) -> None:
        """Stall reads from now on."""
        if not self.frozen:
            self._thaw = trio.Event()

    def thaw(self) -> None:
        """Let reads continue."""
        self._thaw.set()

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Forward to the inner stream."""
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        """Forward to the inner stream."""
        await self.inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        """Wait while frozen, then read from the inner stream."""
        await self._thaw.wait()
        return await self.inner.receive_some(max_bytes)

    async def aclose(self) -> None:
        """Close the inner stream."""
        await self.inner.aclose()


def settings_for_tests(**overrides: Any) -> Settings:
    """Settings for in-process tests (``:memory:`` database); ``overrides`` replace fields."""
    return attrs.evolve(Settings(db=":memory:", port=0), **overrides)


@asynccontextmanager
async def open_test_server(
    settings: Settings | None = None, *, seed: int = 0, server_factory: Callable[..., Server] = Server, **kwargs: Any
) -> AsyncIterator[Server]:
    """Run a server without a listener (clients connect through in-memory streams); shut it down on exit.

    ``server_factory`` builds the server (a :class:`Server` subclass, e.g. the chaos runner's checking server);
    it receives the settings and the keyword arguments ``rng``, ``listen``, ``passwords`` and ``kwargs``.
    """
    server = server_factory(
        settings if settings is not None else settings_for_tests(), rng=random.Random(seed), listen=False,
        passwords=kwargs.pop("passwords", FakePasswordHasher()), **kwargs,
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        try:
            yield server
        finally:
            server.shutdown()


@asynccontextmanager
async def open_client(
    server: Server,
    name: str | None = None,
    *,
    lockstep: bool = False,
    remote: str = "memory",
    wrap: Callable[[trio.abc.Stream], trio.abc.Stream] | None = None,
    **hello: Any,
) -> AsyncIterator[Client]:
    """Connect a simulated client over an in-memory stream (``lockstep`` gives real backpressure).

    With ``name`` the client says hello first. ``wrap`` wraps the client's end (e.g. :class:`FreezableStream`).
    """
    client_end, server_end = trio.testing.lockstep_stream_pair() if lockstep else trio.testing.memory_stream_pair()
    server.connect_stream(server_end, remote)
    stream: trio.abc.Stream = wrap(client_end) if wrap is not None else client_end
    async with connect_stream(stream) as client:
        if name is not None:
            await client.hello(name, **hello)
        yield client
