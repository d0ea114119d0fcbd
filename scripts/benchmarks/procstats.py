"""Process and machine measurements from /proc, and latency percentiles."""

from __future__ import annotations

import math
import resource

from .common import CLK_TCK


# -- process measurements ----------------------------------------------------------------------------------
def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` in seconds (from /proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_memory_mb(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM (peak RSS) of ``pid`` in MiB."""
    out: dict[str, float] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, value = line.split(":", 1)
                out[key] = int(value.split()[0]) / 1024
    return out


def system_busy_seconds() -> float:
    """CPU seconds all CPUs spent busy (not idle or iowait), from /proc/stat."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    return (sum(values[:8]) - values[3] - values[4]) / CLK_TCK


def self_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def percentiles(values: list[int], scale: float = 1e-6) -> dict[str, float | None]:
    """p50/p90/p95/p99/p99.9/max/mean of nanosecond values, in ms (nearest rank)."""
    keys = ("p50", "p90", "p95", "p99", "p999", "max", "mean")
    if not values:
        return dict.fromkeys(keys)
    values = sorted(values)
    n = len(values)

    def rank(q: float) -> float:
        return round(values[min(n - 1, max(0, math.ceil(q * n) - 1))] * scale, 3)

    return {"p50": rank(0.50), "p90": rank(0.90), "p95": rank(0.95), "p99": rank(0.99), "p999": rank(0.999),
            "max": round(values[-1] * scale, 3), "mean": round(sum(values) / n * scale, 3)}
