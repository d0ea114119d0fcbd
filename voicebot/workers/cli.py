"""``voicebot worker``: connect to a hub, register the built-in bots, run them on demand.

``voicebot worker --server ws://host:8765/ws --token T [--capacity 12] [--processes N] [--allow-loopback]
[--ca-file CA.pem] [--metrics-port N]``. A ``wss://`` hub is verified against the system's trust store, or against
``--ca-file`` (a private CA); ``--metrics-port`` serves this worker's ``/metrics``, ``/healthz`` and ``/readyz``.
The token can also come from ``VOICEBOT_WORKER_TOKEN``. With ``--processes N`` the command starts N worker
processes (each registers separately with ``--capacity`` bots), so the hub spreads bots over N cores. A lost hub
connection is retried with capped exponential backoff (its bots were already removed by the hub).
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import random
import signal
import ssl
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

import trio

from .. import __version__, metrics
from .._gc import tune_gc
from ..errors import VoiceBotError
from ..http import HttpApp, Request, Response, json_response, serve_app
from ..providers import PROVIDER_SETTINGS, ProviderConfig, add_provider_arguments, configure_providers
from ..server._settings import settings_from
from ._worker import Worker, WorkerConfig, url_connector

if TYPE_CHECKING:
    from ..media import MediaConfig

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
    parser.add_argument("--ca-file", default=os.environ.get("VOICEBOT_CA_FILE"),
                        help="PEM CA bundle that verifies a wss:// hub (env VOICEBOT_CA_FILE; default: system store)")
    parser.add_argument("--metrics-port", type=int, default=None,
                        help="serve this worker's /metrics, /healthz and /readyz on this port (0: a free one)")
    parser.add_argument("--metrics-host", default="127.0.0.1", help="address of --metrics-port (default 127.0.0.1)")
    parser.add_argument("--log-level", default=os.environ.get("VOICEBOT_LOG_LEVEL", "info"),
                        choices=("debug", "info", "warning", "error", "critical"))
    add_provider_arguments(parser)  # --stt/--llm/--tts, --openai-base-url, timeouts… (README "AI providers")
    parser.set_defaults(run=_main)


def _main(args: argparse.Namespace) -> int:
    if not args.token:
        print("voicebot worker: --token (or VOICEBOT_WORKER_TOKEN) is required", file=sys.stderr)
        return 2
    if args.capacity < 1 or args.processes < 1:
        print("voicebot worker: --capacity and --processes must be >= 1", file=sys.stderr)
        return 2
    try:
        configure_providers(ProviderConfig.from_settings(settings_from(args)))
    except ValueError as exc:
        print(f"voicebot worker: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        ssl_context = ssl.create_default_context(cafile=args.ca_file) if args.ca_file else None
    except (OSError, ssl.SSLError) as exc:
        print(f"voicebot worker: --ca-file: {exc}", file=sys.stderr)
        return 2
    if args.processes > 1:
        trio.run(_run_processes, args)
        return 0
    from ..media import MediaConfig  # noqa: PLC0415 - the media package loads only in a worker

    config = WorkerConfig(token=args.token, capacity=args.capacity, name=args.name)
    media = MediaConfig(allow_loopback=args.allow_loopback, **(
        {"ice_deny_networks": args.ice_deny_networks} if args.ice_deny_networks is not None else {}))
    tune_gc()
    trio.run(functools.partial(_until_signal, args.server, config, media,
                               ssl_context=ssl_context, metrics_port=args.metrics_port,
                               metrics_host=args.metrics_host))
    return 0


async def _run_processes(args: argparse.Namespace) -> None:
    """Start ``args.processes`` single-process workers and wait; cancelling terminates them (SIGTERM)."""
    base = [sys.executable, "-m", "voicebot.cli", "worker", "--server", args.server,
            "--capacity", str(args.capacity), "--log-level", args.log_level]
    if args.allow_loopback:
        base.append("--allow-loopback")
    if args.ice_deny_networks is not None:
        base += ["--ice-deny-networks", args.ice_deny_networks]
    if args.ca_file:
        base += ["--ca-file", args.ca_file]
    for name in PROVIDER_SETTINGS:  # provider flags go to every child (the key travels in the environment only)
        if getattr(args, name, None) is not None:
            base += ["--" + name.replace("_", "-"), str(getattr(args, name))]
    env = {**os.environ, "VOICEBOT_WORKER_TOKEN": args.token}  # never on the command line (ps shows it)
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:

            async def one(i: int, *extra: str) -> None:
                await trio.run_process([*base, "--name", f"{args.name}.{i}", *extra], env=env, check=False)

            for i in range(args.processes):
                nursery.start_soon(one, i, *_metrics_port_args(args, i))
            async for _ in signals:
                nursery.cancel_scope.cancel()


def _metrics_port_args(args: argparse.Namespace, i: int) -> list[str]:
    """Process ``i`` of ``--processes`` serves its metrics on ``--metrics-port + i`` (0: each picks a free one)."""
    if args.metrics_port is None:
        return []
    port = args.metrics_port + i if args.metrics_port else 0
    return ["--metrics-port", str(port), "--metrics-host", args.metrics_host]


def worker_http_app(registered: Callable[[], bool]) -> HttpApp:
    """An external worker's HTTP surface: ``/metrics`` (the bot-side registry), ``/healthz`` and ``/readyz``
    (200 while registered with its hub, else 503 ``not_registered``)."""
    app = HttpApp()

    async def healthz(request: Request) -> Response:
        return json_response(200, {"status": "ok", "version": __version__})

    async def readyz(request: Request) -> Response:
        if registered():
            return json_response(200, {"status": "ready", "reasons": []})
        return json_response(503, {"status": "not_ready", "reasons": ["not_registered"]})

    async def metrics_page(request: Request) -> Response:
        return Response(200, (("content-type", metrics.CONTENT_TYPE), ("cache-control", "no-store")),
                        metrics.exposition(metrics.BOT_REGISTRY))

    app.route("/healthz", healthz)
    app.route("/readyz", readyz)
    app.route("/metrics", metrics_page)
    return app


async def _until_signal(url: str, config: WorkerConfig, media: MediaConfig, *,
                        ssl_context: ssl.SSLContext | None = None, metrics_port: int | None = None,
                        metrics_host: str = "127.0.0.1") -> None:
    current: list[Worker] = []
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            if metrics_port is not None:
                app = worker_http_app(lambda: bool(current) and current[-1].registered.is_set())
                listeners = await nursery.start(serve_app, app, metrics_port, metrics_host)
                host, port = listeners[0].socket.getsockname()[:2]
                print(f"voicebot worker metrics on http://{host}:{port}/metrics", flush=True)
            nursery.start_soon(functools.partial(run_worker, url, config, media, ssl_context=ssl_context,
                                                 on_worker=current.append))
            async for signum in signals:
                log.info("received %s: stopping", signal.Signals(signum).name)
                nursery.cancel_scope.cancel()


async def run_worker(url: str, config: WorkerConfig, media: MediaConfig | None = None, *,
                     max_delay: float = 30.0, rng: random.Random | None = None,
                     ssl_context: ssl.SSLContext | None = None,
                     on_worker: Callable[[Worker], object] | None = None) -> None:
    """Run a worker for the hub at ``url`` forever, reconnecting with capped exponential backoff (full jitter).

    A ``wss://`` hub is verified with ``ssl_context`` (default: the system's trust store); ``on_worker`` sees
    each new :class:`Worker` (one per connection attempt)."""
    rng = rng if rng is not None else random.Random()
    from ..bots import builtin_bots  # noqa: PLC0415 - media and speech load only when a worker runs
    from ..bots.assistant import AssistantConfig  # noqa: PLC0415

    bots = builtin_bots(media, AssistantConfig.from_settings(settings_from(None)))  # vad/barge-in: VOICEBOT_* env
    failures = 0
    while True:
        worker = Worker(bots, config)
        if on_worker is not None:
            on_worker(worker)
        try:
            await worker.run(url_connector(url, ssl_context))
        except (VoiceBotError, OSError, trio.TooSlowError) as exc:
            log.warning("worker: %s", exc)
        except Exception as exc:  # trio-websocket handshake errors and friends: retry, never crash the worker
            log.warning("worker: connection failed: %r", exc)
        failures = 0 if worker.registered.is_set() else failures + 1
        delay = rng.uniform(0, min(max_delay, 0.5 * 2 ** failures))
        log.info("worker: reconnecting in %.1f s", delay)
        await trio.sleep(delay)
