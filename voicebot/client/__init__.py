"""A Trio client for the voicebot protocol (used by tests, benchmarks and bots)."""

from ._client import Client, RemoteError, connect, connect_stream

__all__ = ["Client", "RemoteError", "connect", "connect_stream"]
