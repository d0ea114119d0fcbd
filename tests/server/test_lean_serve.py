"""``voicebot serve --local-worker 0``, started and idle, has not loaded what only a later request, another
subcommand or a bot needs, nor built a pydantic validator (each costs resident memory in every idle server)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

#: Password hashing and its thread pool (first password), fault-plan files and their schema (chaos), the provider
#: chains (a bot's first turn), what only some HTTP responses need (status phrases, gzip, guessed content types),
#: the other subcommands and the bot worker (and its supervisor).
NOT_AT_IDLE = ("argon2", "concurrent.futures", "tomllib", "voicebot.faults._planfile", "shlex",
               "voicebot.providers._facade", "voicebot.providers._chain", "http", "gzip", "mimetypes",
               "voicebot.chaos", "voicebot.workers.cli", "voicebot.workers._worker",
               "voicebot.resilience._supervisor", "voicebot.client",
               "voicebot.bots._session", "numpy", "aiortc", "av", "_pytest")

PROGRAM = f"""
import json, signal, sys
import pydantic
from voicebot.cli import main

def built(cls):
    for sub in cls.__subclasses__():
        if sub.__pydantic_complete__:
            yield sub.__module__ + "." + sub.__qualname__
        yield from built(sub)

def report(signum, frame):
    loaded = [m for m in {NOT_AT_IDLE!r} if m in sys.modules]
    print(json.dumps(sorted(loaded + list(built(pydantic.BaseModel)))), flush=True)

signal.signal(signal.SIGUSR1, report)
sys.exit(main(["serve", "--host", "127.0.0.1", "--port", "0", "--db", ":memory:", "--local-worker", "0",
               "--log-level", "warning"]))
"""


def test_idle_serve_has_not_loaded_what_it_does_not_need() -> None:
    proc = subprocess.Popen([sys.executable, "-c", PROGRAM], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "listening on" in line, line + (proc.stderr.read() if proc.stderr else "")
        proc.send_signal(signal.SIGUSR1)
        line = proc.stdout.readline()
        while line and not line.startswith("["):  # e.g. the generated admin token
            line = proc.stdout.readline()
        loaded = json.loads(line)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
        proc.wait()
    assert loaded == []
