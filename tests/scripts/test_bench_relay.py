"""Keeps ``scripts/bench_relay.py`` from rotting: a tiny real run (4 clients, 1 s) against the hub, the minimal
relay and the echo server."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_relay.py"


@pytest.mark.slow
@pytest.mark.timeout(45)
def test_bench_relay_tiny_run() -> None:
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--clients", "4", "--lobbies", "2", "--duration", "1", "--warmup", "0.5",
         "--drain", "1", "--rate", "10", "--json", "-"],
        capture_output=True, text=True, timeout=40, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    assert time.monotonic() - started < 35
    assert report["parameters"]["clients"] == 4
    assert {r["target"] for r in report["results"]} == {"hub", "relay", "echo"}
    assert set(report["ratios"]["hub_over"]) == {"relay", "echo"}
    for result in report["results"]:
        assert result.get("failed") is None, result
        assert result["connected"] == 4
        assert result["errors"] == {}
        assert result["misrouted"] == 0
        assert result["lost_window"] == 0
        assert result["delivered_window"] > 0
        assert result["latency_ms"]["p50"] is not None
        assert result["server_cpu_pct"] >= 0
    hub = next(r for r in report["results"] if r["target"] == "hub")
    assert hub["other_events"].get("peer.joined") == 2  # one per lobby of two: the first member sees the second


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_bench_relay_peerjs_side_by_side(tmp_path: Path) -> None:
    """``--peerjs DIR``: PeerJS (npm's ``peer@1``) runs the same load and gets its ratio row; without node, npm or
    the registry the run goes on with hub, relay and echo and says why PeerJS was skipped."""
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--clients", "4", "--lobbies", "2", "--duration", "1", "--warmup", "0.5",
         "--drain", "1", "--rate", "10", "--peerjs", str(tmp_path / "peer"), "--json", "-"],
        capture_output=True, text=True, timeout=400, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    targets = {r["target"] for r in report["results"]}
    if report["peerjs"].startswith("PeerJS skipped"):
        assert targets == {"hub", "relay", "echo"}
        return
    assert targets == {"hub", "relay", "echo", "peerjs"}
    peerjs = next(r for r in report["results"] if r["target"] == "peerjs")
    assert peerjs.get("failed") is None, peerjs
    assert peerjs["connected"] == 4
    assert peerjs["errors"] == {} and peerjs["misrouted"] == 0 and peerjs["lost_window"] == 0
    assert peerjs["delivered_window"] > 0
    assert set(report["ratios"]["hub_over"]) == {"relay", "echo", "peerjs"}
    assert "hub / peerjs" in proc.stderr


def test_ratios_are_medians_of_the_hub_over_each_other_target() -> None:
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        from benchmarks.report import ratios  # noqa: PLC0415
    finally:
        sys.path.remove(str(SCRIPT.parent))

    def result(target: str, msgs: float, p99: float, cpu: float) -> dict[str, object]:
        return {"target": target, "throughput_msg_s": msgs, "latency_ms": {"p50": p99 / 2, "p99": p99},
                "server_cpu_us_per_msg": cpu, "server_rss_mb_peak_window": 2.0, "connected": 4}

    out = ratios([result("hub", 900, 30, 200), result("echo", 1000, 20, 100), result("hub", 950, 10, 220),
                  result("echo", 1100, 10, 100), result("hub", 800, 20, 180), result("echo", 900, 30, 100),
                  {"target": "peerjs", "failed": "setup: boom"}])
    assert out["medians"]["hub"]["throughput_msg_s"] == 900
    assert out["medians"]["echo"]["latency_p99"] == 20
    assert out["medians"]["hub"]["rss_kib_per_conn"] == 512
    assert out["hub_over"] == {"echo": {"throughput_msg_s": 0.9, "latency_p50": 1.0, "latency_p99": 1.0,
                                        "server_cpu_us_per_msg": 2.0, "rss_kib_per_conn": 1.0}}
