#!/usr/bin/env python3
"""Per-frame cost of hub metrics: plain counters + scrape-time collector vs prometheus_client children.

``bench_metrics.py [--frames 200000] [--repeat 5] [--json out.json]`` counts one received frame (type and request
duration) and one sent message per iteration, both ways, and prints nanoseconds per frame (best of ``--repeat``),
plus the time one ``/metrics`` exposition takes with 20 message types populated.
"""

from __future__ import annotations

import argparse
import json
import sys
import timeit

from prometheus_client import CollectorRegistry, Counter, Histogram

from voicebot.metrics import REQUEST_BUCKETS, HubCounters, HubState, exposition, new_registry


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)

    counters = HubCounters()
    registry = CollectorRegistry()
    received = Counter("r_total", "r", ["type"], registry=registry)
    sent = Counter("s_total", "s", ["type"], registry=registry)
    durations = Histogram("d_seconds", "d", ["type"], registry=registry, buckets=REQUEST_BUCKETS)

    def baseline() -> None:
        pass

    def plain() -> None:
        counters.frame("signal", 0.0003)
        counters.count_sent("signal")

    def children() -> None:
        received.labels(type="signal").inc()
        durations.labels(type="signal").observe(0.0003)
        sent.labels(type="signal").inc()

    results: dict[str, float] = {}
    for name, fn in (("empty call", baseline), ("plain counters (used)", plain),
                     ("prometheus_client children", children)):
        best = min(timeit.repeat(fn, number=args.frames, repeat=args.repeat))
        results[name] = best / args.frames * 1e9
    for i in range(20):
        counters.frame(f"t{i}", 0.001)
    hub = new_registry(counters, HubState(connections=lambda: 1000, sessions=lambda: 1000, lobbies=lambda: 100,
                                          breakers=lambda: [("persistence", "closed")], bots=dict,
                                          workers=lambda: 1))
    scrape = min(timeit.repeat(lambda: exposition(hub), number=50, repeat=args.repeat)) / 50 * 1e6
    print(f"{'per frame (received + sent)':32} {'ns':>10}")
    for name, ns in results.items():
        print(f"{name:32} {ns:10.0f}")
    print(f"{'one /metrics exposition (us)':32} {scrape:10.0f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"ns_per_frame": results, "scrape_us": scrape}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
