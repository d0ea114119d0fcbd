"""Running a benchmark script of ``scripts/`` the way a user does, for the tests that keep them from rotting."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from voicebot.testing import PostgresEngine, RedisEngine

#: The project's ``scripts/`` folder.
SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def run_report(script: str, *args: str, timeout: float = 110) -> dict[str, Any]:
    """Run ``scripts/<script>`` with ``args`` in a process of its own; it must succeed. Its JSON report (the
    first ``{`` of its stdout on: the table may come first)."""
    proc = subprocess.run([sys.executable, str(SCRIPTS / script), *args], capture_output=True, text=True,
                          timeout=timeout, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report: dict[str, Any] = json.loads(proc.stdout[proc.stdout.index("{"):])
    return report


def engines(redis: RedisEngine, postgres: PostgresEngine, database: str) -> tuple[str, ...]:
    """``--redis-url`` (flushed first) and ``--db-url`` (a fresh database) for a script that uses the session's
    engines instead of starting its own."""
    redis.command("FLUSHALL")
    return ("--redis-url", redis.url, "--db-url", postgres.new_database(database))
