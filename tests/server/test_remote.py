"""Remote addresses: the port is stripped for per-address login throttling (IPv4 and bracketed IPv6)."""

from __future__ import annotations

import pytest

from voicebot.server._auth import _host


@pytest.mark.parametrize(("remote", "host"), [
    ("127.0.0.1:5555", "127.0.0.1"), ("[::1]:5555", "::1"), ("[fd00::2]:80", "fd00::2"), ("memory", "memory"),
])
def test_host_of_remote(remote: str, host: str) -> None:
    assert _host(remote) == host
