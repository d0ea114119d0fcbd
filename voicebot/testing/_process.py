"""Run the real ``voicebot serve`` command as a subprocess (for end-to-end tests on the real clock)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

__all__ = ["child_pids", "readyz_reasons", "serve_process"]


@contextmanager
def serve_process(
    *args: str, env: Mapping[str, str] | None = None, start_timeout: float = 30.0
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """Start ``voicebot serve --port 0 *args``; yield ``(process, ws_url)``; kill it on exit if still running.

    The URL is read from the server's first stdout line. ``env`` is added to this process's environment.
    """
    proc = subprocess.Popen(
        [sys.executable, "-m", "voicebot.cli", "serve", "--port", "0", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})},
    )
    try:
        assert proc.stdout is not None
        line = _first_line(proc, start_timeout)
        match = re.search(r"ws://\S+/ws", line)
        if not match:
            proc.kill()
            stderr = proc.stderr.read() if proc.stderr else ""
            raise RuntimeError(f"voicebot serve did not start: {line!r}\n{stderr[-2000:]}")
        yield proc, match.group(0)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


def _first_line(proc: subprocess.Popen[str], timeout: float) -> str:
    import selectors  # noqa: PLC0415 - only needed here

    assert proc.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            proc.kill()
            raise RuntimeError(f"voicebot serve printed nothing within {timeout} s")
    return proc.stdout.readline()


def readyz_reasons(ws_url: str) -> list[str]:
    """The reasons a running hub's ``/readyz`` gives for not being ready (``[]`` when ready); ``ws_url`` is its
    WebSocket URL (``ws://host:port/ws``). Blocking (urllib, 5 s timeout): call it from a thread in async code."""
    url = ws_url.replace("ws://", "http://").removesuffix("/ws") + "/readyz"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            body = response.read()
    except urllib.error.HTTPError as exc:  # 503 when not ready: the body still says why
        body = exc.read()
    reasons: list[str] = json.loads(body).get("reasons", [])
    return reasons


def child_pids(pid: int) -> list[int]:
    """Direct children of process ``pid`` (Linux ``/proc``), e.g. ``voicebot serve``'s local worker process. Every
    thread lists the children it spawned, and Trio may spawn from a worker thread, so all threads are read."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(p) for p in (task / "children").read_text().split()]
        except OSError:  # the thread (or the process) ended meanwhile
            continue
    return found

