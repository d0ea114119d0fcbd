"""``voicebot worker``: connect to a hub, register the built-in bots, run them on demand.

``voicebot worker --server ws://host:8765/ws --token T [--capacity 12] [--processes N] [--allow-loopback]``.
The token can also come from ``VOICEBOT_WORKER_TOKEN``. With ``--processes N`` the command starts N worker
processes (each registers separately with ``--capacity`` bots), so the hub spreads bots over N cores. A lost hub
connection is retried with capped exponential backoff (its bots were already removed by the hub).
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import signal
import sys

import trio

from ..bots import builtin_bots
from ..errors import VoiceBotError
from ..media import MediaConfig
from ._worker import Worker, WorkerConfig, url_connector

__all__ = ["add_worker_subcommand", "run_worker"]

log = logging.getLogger("voicebot.workers")


def add_worker_subcommand(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``worker`` to the ``voicebot`` command (an entry of ``voicebot.cli.SUBCOMMANDS``)."""
    parser = sub.add_parser("worker", help="run bots for a hub", description=__doc__)
    parser.add_argument("--server", default=os.environ.get("VOICEBOT_SERVER", "ws://127.0.0.1:8765/ws"),
                        help="hub URL (env VOICEBOT_SERVER; default ws://127.0.0.1:8765/ws)")
    parser.add_argument("--token", default=os.environ.get("VOICEBOT_WORKER_TOKEN"),
                        help="the hub's worker token (env VOICEBOT_WORKER_TOKEN)")
    parser.add_argument("--capacity", type=int, default=12, help="bots per process (default 12)")
    parser.add_argument("--processes", type=int, default=1, help="worker processes to start (default 1)")
    parser.add_argument("--name", default=f"worker-{os.getpid()}", help="name shown in the hub's logs")
    parser.add_argument("--allow-loopback", action="store_true",
                        help="also offer 127.0.0.1 as an ICE host candidate (tests, loopback-only hosts)")
    parser.add_argument("--ice-deny-networks", default=os.environ.get("VOICEBOT_ICE_DENY_NETWORKS"),
                        help="networks (comma list of CIDRs) bots never send ICE checks to (env "
                             "VOICEBOT_ICE_DENY_NETWORKS; default: link-local, multicast, 0.0.0.0/8, broadcast; "
                             "loopback is added unless --allow-loopback)")
    parser.add_argument("--log-level", default=os.environ.get("VOICEBOT_LOG_LEVEL", "info"),
                        choices=("debug", "info", "warning", "error", "critical"))
    parser.set_defaults(run=_main)


def _main(args: argparse.Namespace) -> int:
    if not args.token:
        print("voicebot worker: --token (or VOICEBOT_WORKER_TOKEN) is required", file=sys.stderr)
        return 2
    if args.capacity < 1 or args.processes < 1:
        print("voicebot worker: --capacity and --processes must be >= 1", file=sys.stderr)
        return 2
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if args.processes > 1:
        trio.run(_run_processes, args)
    else:
        config = WorkerConfig(token=args.token, capacity=args.capacity, name=args.name)
        media = MediaConfig(allow_loopback=args.allow_loopback, **(
            {"ice_deny_networks": args.ice_deny_networks} if args.ice_deny_networks is not None else {}))
        trio.run(_until_signal, args.server, config, media)
    return 0


async def _run_processes(args: argparse.Namespace) -> None:
    """Start ``args.processes`` single-process workers and wait; cancelling terminates them (SIGTERM)."""
    base = [sys.executable, "-m", "voicebot.cli", "worker", "--server", args.server,
            "--capacity", str(args.capacity), "--log-level", args.log_level]
    if args.allow_loopback:
        base.append("--allow-loopback")
    if args.ice_deny_networks is not None:
        base += ["--ice-deny-networks", args.ice_deny_networks]
    env = {**os.environ, "VOICEBOT_WORKER_TOKEN": args.token}  # never on the command line (ps shows it)
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:

            async def one(i: int) -> None:
                await trio.run_process([*base, "--name", f"{args.name}.{i}"], env=env, check=False)

            for i in range(args.processes):
                nursery.start_soon(one, i)
            async for _ in signals:
                nursery.cancel_scope.cancel()


async def _until_signal(url: str, config: WorkerConfig, media: MediaConfig) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run_worker, url, config, media)
            async for signum in signals:
                log.info("received %s: stopping", signal.Signals(signum).name)
                nursery.cancel_scope.cancel()


async def run_worker(url: str, config: WorkerConfig, media: MediaConfig | None = None, *,
                     max_delay: float = 30.0, rng: random.Random | None = None) -> None:
    """Run a worker for the hub at ``url`` forever, reconnecting with capped exponential backoff (full jitter)."""
    rng = rng if rng is not None else random.Random()
    bots = builtin_bots(media)
    failures = 0
    while True:
        worker = Worker(bots, config)
        try:
            await worker.run(url_connector(url))
        except (VoiceBotError, OSError, trio.TooSlowError) as exc:
            log.warning("worker: %s", exc)
        except Exception as exc:  # trio-websocket handshake errors and friends: retry, never crash the worker
            log.warning("worker: connection failed: %r", exc)
        failures = 0 if worker.registered.is_set() else failures + 1
        delay = rng.uniform(0, min(max_delay, 0.5 * 2 ** failures))
        log.info("worker: reconnecting in %.1f s", delay)
        await trio.sleep(delay)
