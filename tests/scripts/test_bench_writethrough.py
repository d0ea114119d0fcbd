"""Keeps ``scripts/bench_writethrough.py`` from rotting, and holds what it relies on: every message buffered for a
peer in grace reaches Redis without waiting for a heartbeat, whichever hub it came from, and the hub's counters
say so."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from voicebot.testing import PostgresEngine, RedisEngine

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_writethrough.py"


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_bench_writethrough_tiny_run(redis_server: RedisEngine, postgres_server: PostgresEngine) -> None:
    redis_server.command("FLUSHALL")
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--messages", "8", "--rate", "20", "--json", "-",
         "--redis-url", redis_server.url, "--db-url", postgres_server.new_database("writethrough")],
        capture_output=True, text=True, timeout=110, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout[proc.stdout.index("{"):])
    assert [(r["sender"].split()[0], r["n"]) for r in report["results"]] == [("remote", 8), ("local", 8)]
    assert all(r["p50_ms"] <= r["max_ms"] for r in report["results"])
    assert report["hub_two"]["copied"] >= 16 and report["hub_two"]["copies"] >= 1
    assert report["hub_two"]["inbox_overflow"] == 0
