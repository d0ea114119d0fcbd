"""Keeps ``scripts/bench_writethrough.py`` from rotting, and holds what it relies on: every message buffered for a
peer in grace reaches Redis without waiting for a heartbeat, whichever hub it came from, and the hub's counters
say so."""

from __future__ import annotations

import pytest

from voicebot.testing import PostgresEngine, RedisEngine

from ._run import engines, run_report


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_bench_writethrough_tiny_run(redis_server: RedisEngine, postgres_server: PostgresEngine) -> None:
    report = run_report("bench_writethrough.py", "--messages", "8", "--rate", "20", "--json", "-",
                        *engines(redis_server, postgres_server, "writethrough"))
    assert [(r["sender"].split()[0], r["n"]) for r in report["results"]] == [("remote", 8), ("local", 8)]
    assert all(r["p50_ms"] <= r["max_ms"] for r in report["results"])
    assert report["hub_two"]["copied"] >= 16 and report["hub_two"]["copies"] >= 1
    assert report["hub_two"]["inbox_overflow"] == 0
