"""Keeps ``scripts/bench_isolation.py`` from rotting: a tiny real run (serve, attacker and canary processes)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_isolation.py"


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_bench_isolation_tiny_run(tmp_path: Path) -> None:
    out = tmp_path / "iso.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--seconds", "3", "--quiet-seconds", "1", "--rate", "20",
         "--floods", "hashing,big_replies", "--attack-conns", "10", "--json", str(out),
         "--stall-report", str(tmp_path / "stalls.json")],
        capture_output=True, text=True, timeout=80, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "p99 ms" in proc.stdout
    report = json.loads(out.read_text())
    assert set(report["canary"]) == {"quiet", "attack"}
    for phase in report["canary"].values():
        assert phase["sent"] > 0 and phase["received"] + phase["lost"] == phase["sent"]
    assert report["attack"].get("big_replies.lobby_list_sent", 0) > 0  # the attacker really ran
    assert report["server_log"]["tracebacks"] == 0
    stalls = json.loads((tmp_path / "stalls.json").read_text())  # the server ran under the stall probe
    assert sum(stalls["steps_by_cpu_time"].values()) > 0 and stalls["loop_lag_ms"]["n"] > 0
    assert set(stalls["gc_cpu_ms"]) == {"0", "1", "2"}
