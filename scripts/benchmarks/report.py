"""Machine facts, comparisons and the printed table of a relay benchmark report."""

from __future__ import annotations

import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import trio
import trio_websocket

from .common import ROOT


def machine_info() -> dict[str, Any]:
    cpu_model = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu_model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        pass
    import wsproto  # noqa: PLC0415

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return {
        "cpu_count": os.cpu_count(), "cpus_usable": len(os.sched_getaffinity(0)), "cpu_model": cpu_model,
        "platform": platform.platform(), "python": platform.python_version(), "trio": trio.__version__,
        "trio_websocket": trio_websocket.__version__, "wsproto": wsproto.__version__,
        "nofile_soft": soft, "nofile_hard": hard, "loadavg_before": os.getloadavg(), "voicebot_git": _git_state(),
    }


def _git_state() -> str:
    """``HEAD`` of the checkout and whether voicebot/ has uncommitted changes (the code actually measured)."""
    try:
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=5, check=False).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "voicebot"],
                               capture_output=True, text=True, timeout=5, check=False).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head}{' +uncommitted changes in voicebot/' if dirty else ''}" if head else "unknown"


def fault_point_calls() -> int:
    """How many injection-point calls the server code has outside voicebot/faults (0: nothing to measure)."""
    pattern = re.compile(r"\bfaults\.(point|check|message|record)\(|^\s*(?:await\s+)?(point|check|message)\(")
    total = 0
    for path in (ROOT / "voicebot").rglob("*.py"):
        if "faults" in path.parts:
            continue
        total += sum(1 for line in path.read_text().splitlines() if pattern.search(line))
    return total


def compare(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Median of each metric over the hub / hub-stubbed runs and the relative difference (hub vs stubbed)."""

    def metric(r: dict[str, Any], key: str) -> float | None:
        value = r.get("latency_ms", {}).get(key.removeprefix("latency_")) if key.startswith("latency_") else r.get(key)
        return float(value) if isinstance(value, int | float) else None

    out: dict[str, Any] = {}
    for key in ("throughput_msg_s", "server_cpu_pct", "server_cpu_us_per_msg", "latency_p50", "latency_p99"):
        medians = {}
        for name in ("hub", "hub-stubbed"):
            values = sorted(v for r in results if r["target"] == name and (v := metric(r, key)) is not None)
            medians[name] = round(statistics.median(values), 3) if values else None
        real, stub = medians["hub"], medians["hub-stubbed"]
        diff = round(100 * (real - stub) / stub, 2) if real is not None and stub else None
        out[key] = {"hub": real, "hub-stubbed": stub, "diff_pct": diff}
    return out


_RATIO_METRICS = (("msg/s", "throughput_msg_s"), ("p50 ms", "latency_p50"), ("p99 ms", "latency_p99"),
                  ("CPU us/msg", "server_cpu_us_per_msg"), ("RSS KiB/conn", "rss_kib_per_conn"))


def _metric(r: dict[str, Any], key: str) -> float | None:
    if key.startswith("latency_"):
        value = r.get("latency_ms", {}).get(key.removeprefix("latency_"))
    elif key == "rss_kib_per_conn":  # the whole process over its connections (its idle baseline included)
        rss, conns = r.get("server_rss_mb_peak_window"), r.get("connected")
        value = 1024 * rss / conns if isinstance(rss, int | float) and conns else None
    else:
        value = r.get(key)
    return float(value) if isinstance(value, int | float) else None


def ratios(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians per target (over ``--repeat`` runs) and the hub's ratio to each other target (hub / other)."""
    medians: dict[str, dict[str, float | None]] = {}
    for name in dict.fromkeys(r["target"] for r in results if not r.get("failed")):
        rows = [r for r in results if r["target"] == name and not r.get("failed")]
        medians[name] = {}
        for _, key in _RATIO_METRICS:
            values = [v for r in rows if (v := _metric(r, key)) is not None]
            medians[name][key] = round(statistics.median(values), 2) if values else None
    hub = medians.get("hub")
    out: dict[str, Any] = {"medians": medians, "hub_over": {}}
    for name, other in medians.items():
        if hub is None or name == "hub":
            continue
        out["hub_over"][name] = {key: (round(hub[key] / other[key], 2) if hub[key] is not None and other[key]
                                       else None) for _, key in _RATIO_METRICS}
    return out


def _ratio_lines(report: dict[str, Any]) -> list[str]:
    r = report.get("ratios") or {}
    medians, over = r.get("medians", {}), r.get("hub_over", {})
    if not medians:
        return []
    runs = max(sum(1 for x in report["results"] if x["target"] == name) for name in medians)
    lines = [f"medians{f' of {runs} runs' if runs > 1 else ''} and ratio hub / other (throughput: >= 1 is better, "
             "latency, CPU, RSS: <= 1 is better):",
             f"{'':16}" + "".join(f"{label:>14}" for label, _ in _RATIO_METRICS)]
    for name, values in medians.items():
        lines.append(f"{name:16}" + "".join(f"{values[key]!s:>14}" for _, key in _RATIO_METRICS))
    for name, values in over.items():
        lines.append(f"{'hub / ' + name:16}" + "".join(f"{values[key]!s:>14}" for _, key in _RATIO_METRICS))
    return lines


def _bottleneck(r: dict[str, Any]) -> str:
    """Which process was (nearly) out of CPU: a result is only about the server when the client was not."""
    busy = [name for name, key in (("server", "server_cpu_pct"), ("client", "client_cpu_pct"))
            if (r.get(key) or 0) >= 85]
    if (r.get("other_processes_cpu_pct") or 0) >= 25:  # other work stole CPU: the numbers are not clean
        busy.append("OTHERS")
    return "+".join(busy) if busy else "none"


def column_table(rows: list[tuple[str, Any]], results: list[dict[str, Any]], *, min_width: int) -> list[str]:
    """One column per result (headed by its ``target``), one line per ``(label, getter)`` row."""
    width = max(min_width, *(len(r["target"]) + 2 for r in results))
    lines = [f"{'':20}" + "".join(f"{r['target']:>{width}}" for r in results)]
    lines += [f"{label:20}" + "".join(f"{get(r)!s:>{width}}" for r in results) for label, get in rows]
    return lines


def problems(r: dict[str, Any]) -> list[str]:
    """The lines saying that result ``r`` failed or counted errors (none when it did neither)."""
    lines = []
    if r.get("failed"):
        lines.append(f"{r['target']}: FAILED: {r['failed']}")
    if r.get("errors"):
        lines.append(f"{r['target']} errors: {r['errors']}")
    return lines


def render_table(report: dict[str, Any]) -> str:
    results: list[dict[str, Any]] = report["results"]
    p = report["parameters"]
    m = report["machine"]
    rate = f"sweep {p['sweep']}" if p["sweep"] else p["rate"] or f"max (window {p['window']})"
    head = (f"voicebot relay benchmark: {p['clients']} clients, {p['lobbies']} lobbies, rate "
            f"{rate} msg/s/client, {p['duration']} s "
            f"(+{p['warmup']} s warm-up), ~{p['size']} B frames, seed {p['seed']}\n"
            f"machine: {m['cpus_usable']} cpus ({m['cpu_model']}), python {m['python']}, trio {m['trio']}, "
            f"trio-websocket {m['trio_websocket']}, wsproto {m['wsproto']}, nofile {m['nofile_soft']}\n")

    def lat(r: dict[str, Any], key: str, q: str) -> str:
        v = r.get(key, {}).get(q)
        return "-" if v is None else f"{v:.2f}"

    rows: list[tuple[str, Any]] = [
        ("connected", lambda r: r.get("connected", "-")),
        ("setup s", lambda r: r.get("setup_s", "-")),
        ("offered msg/s", lambda r: r.get("offered_msg_s", "-")),
        ("delivered msg/s", lambda r: r.get("throughput_msg_s", "-")),
        ("undelivered (drain)", lambda r: r.get("lost_window", "-")),
        ("latency p50 ms", lambda r: lat(r, "latency_ms", "p50")),
        ("latency p90 ms", lambda r: lat(r, "latency_ms", "p90")),
        ("latency p99 ms", lambda r: lat(r, "latency_ms", "p99")),
        ("latency max ms", lambda r: lat(r, "latency_ms", "max")),
        ("sched-lat p99 ms", lambda r: lat(r, "latency_from_schedule_ms", "p99")),
        ("send lag p99 ms", lambda r: lat(r, "send_lag_ms", "p99")),
        ("server CPU %", lambda r: r.get("server_cpu_pct", "-")),
        ("server CPU us/msg", lambda r: r.get("server_cpu_us_per_msg", "-")),
        ("server RSS MiB", lambda r: r.get("server_rss_mb_peak_window", "-")),
        ("client CPU %", lambda r: r.get("client_cpu_pct", "-")),
        ("client CPU us/msg", lambda r: r.get("client_cpu_us_per_msg", "-")),
        ("other procs CPU %", lambda r: r.get("other_processes_cpu_pct", "-")),
        ("errors", lambda r: sum(r.get("errors", {}).values()) + r.get("misrouted", 0)),
        ("bottleneck", _bottleneck),
    ]
    lines = [head, *column_table(rows, results, min_width=15)]
    for r in results:
        lines += problems(r)
        for stage in r.get("sweep", []):
            stage_lat = stage["latency_ms"]
            lines.append(f"{r['target']} sweep: rate {stage['rate']:g}/client: offered {stage['offered_msg_s']}, "
                         f"delivered {stage['throughput_msg_s']} msg/s, p50 {stage_lat['p50']} "
                         f"p99 {stage_lat['p99']} ms, server CPU {stage.get('server_cpu_pct')} %, "
                         f"others {stage.get('other_processes_cpu_pct')} % -> "
                         f"{'ok' if stage['sustainable'] else 'NOT sustainable'}")
        if "max_sustainable" in r:
            lines.append(f"{r['target']} max sustainable (p99 <= {p['slo_p99_ms']:g} ms): {r['max_sustainable']}")
        if r.get("teardown_errors"):
            lines.append(f"{r['target']} teardown errors (after the measurement): {r['teardown_errors']}")
        if r.get("server_stderr_lines"):
            lines.append(f"{r['target']} server stderr ({r['server_stderr_lines']} lines), last: "
                         + " | ".join(r["server_stderr_tail"][-3:]))
    if report.get("peerjs"):
        lines.append(report["peerjs"])
    lines += _ratio_lines(report)
    comparison = report.get("fault_point_comparison")
    if comparison:
        lines.append(f"fault points (calls in server code: {report.get('fault_point_calls')}): hub vs hub-stubbed")
        for key, v in comparison.items():
            lines.append(f"  {key:24} {v['hub']!s:>10} {v['hub-stubbed']!s:>12}   diff {v['diff_pct']!s} %")
    return "\n".join(lines)


def emit(report: dict[str, Any], table: str, json_to: str | None) -> int:
    """Print ``table`` (to stderr when the JSON goes to stdout: ``json_to == "-"``), write the report as JSON to
    ``json_to`` if given; the exit status: 1 when any result failed, else 0."""
    if json_to == "-":
        print(table, file=sys.stderr)
        print(json.dumps(report, indent=2))
    else:
        print(table)
        if json_to:
            Path(json_to).write_text(json.dumps(report, indent=2) + "\n")
    return 1 if any(r.get("failed") for r in report["results"]) else 0
