"""The PeerJS server (``peer@1`` from npm, run with node) as a third relay under the same load.

It is installed into a temporary folder (or a given one, reused when it already holds it) with the npm client;
when node or npm is missing or the install fails, :func:`prepare` says why and the run goes on without it.
PeerJS's clients connect to ``/peerjs?key=peerjs&id=ID&token=TOKEN``, get ``{"type": "OPEN"}`` and send
``{"type": "ANSWER", "dst": ID, "payload": {...}}``, which the server relays to ``dst`` with ``src`` added.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

__all__ = ["PEERJS_READY_RE", "peerjs_command", "peerjs_url", "prepare"]

PEERJS_READY_RE = re.compile(r"Started PeerServer on \S+, port: (\d+)")
"""What the server prints once it listens (its port)."""
_BIN = Path("node_modules", "peer", "dist", "bin", "peerjs.js")


def prepare(folder: str | None, timeout: float = 300.0) -> tuple[Path | None, str]:
    """Install ``peer@1`` into ``folder`` (a new temporary folder when None) unless it is there already.

    Returns (the server's entry script, a note); the script is None when PeerJS cannot run here, and the note
    then says why (no node, no npm, npm's error)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        return None, f"PeerJS skipped: {'node' if node is None else 'npm'} not found"
    where = Path(folder) if folder else Path(tempfile.mkdtemp(prefix="bench-peerjs-"))
    where.mkdir(parents=True, exist_ok=True)
    script = where / _BIN
    if script.exists():
        return script, f"PeerJS: {script} (already installed)"
    try:
        done = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--prefix", str(where), "peer@1"],
                              capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return None, f"PeerJS skipped: npm install peer@1 took more than {timeout:g} s"
    if done.returncode != 0 or not script.exists():
        tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
        return None, f"PeerJS skipped: npm install peer@1 failed (exit {done.returncode}): {tail}"
    return script, f"PeerJS: installed peer@1 into {where}"


def peerjs_command(script: Path) -> list[str]:
    """The PeerJS server on a free loopback port (its ``--port 0`` is refused; ``PORT=0`` in the environment is
    not, and ``env`` execs node in its own process); heartbeats are not part of the load, so the dead-peer check
    is pushed beyond any run."""
    node = shutil.which("node") or "node"
    return ["env", "PORT=0", node, str(script), "--host", "127.0.0.1", "--alive_timeout", "3600000",
            "--concurrent_limit", "100000"]


def peerjs_url(port: str) -> str:
    """The WebSocket URL of a PeerJS server on ``port`` (clients add their ``?key=…&id=…&token=…``)."""
    return f"ws://127.0.0.1:{port}/peerjs"
