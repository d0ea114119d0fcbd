"""The ``voicebot`` command: ``voicebot serve`` runs the hub server."""

from __future__ import annotations

import argparse
import functools
import logging
import signal
import sys
from collections.abc import Callable, Sequence

import trio

from . import __version__
from ._gc import GC_THRESHOLDS, tune_gc
from .providers import ProviderConfig, configure_providers
from .server import Server, Settings, add_arguments, settings_from
from .workers import BotHubSettings, WorkerProcessFailed, install_bot_hub

__all__ = ["GC_THRESHOLDS", "main", "serve", "tune_gc"]

log = logging.getLogger("voicebot")


def _add_serve(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("serve", help="run the WebSocket hub server",
                            description="Run the hub. Every flag can also be set as VOICEBOT_<NAME>.")
    add_arguments(parser)
    parser.set_defaults(run=_run_serve)


def _run_serve(args: argparse.Namespace) -> int:
    try:
        settings = settings_from(args)
        configure_providers(ProviderConfig.from_settings(settings), instantiate=settings.local_worker > 0)
    except ValueError as exc:
        print(f"voicebot: {exc}", file=sys.stderr)
        return 2
    _configure_logging(settings.log_level)
    failed: list[BaseException] = []
    try:
        trio.run(serve, settings)
    except* WorkerProcessFailed as group:  # a broken installation or provider setup, reported without a traceback
        failed += group.exceptions
    if failed:
        print(f"voicebot: {failed[0]}", file=sys.stderr)
        return 1
    return 0


def _add_worker(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from .workers.cli import add_worker_subcommand  # noqa: PLC0415 (the bot worker's modules: not for serve)

    add_worker_subcommand(sub)


def _add_chaos(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from .chaos.cli import add_parser  # noqa: PLC0415 (the chaos suite: not for serve)

    add_parser(sub)


#: Subcommand name -> the function that adds it: it calls ``sub.add_parser(name, ...)`` and sets ``run=`` (args ->
#: exit code). Each imports its own module when called, so running one subcommand loads none of the others'.
SUBCOMMANDS: dict[str, Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]] = {
    "serve": _add_serve, "worker": _add_worker, "chaos": _add_chaos,
}


def _parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``voicebot`` parser; with ``command`` the name of a subcommand, only that subcommand is added (the
    others' modules stay unloaded: ``serve`` starts leaner); otherwise (help, a typo) all of them."""
    parser = argparse.ArgumentParser(prog="voicebot", description="Real-time AI voice-bot server on Trio.")
    parser.add_argument("--version", action="version", version=f"voicebot {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, add in SUBCOMMANDS.items():
        if command not in SUBCOMMANDS or name == command:
            add(sub)
    return parser


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )


async def serve(settings: Settings) -> None:
    """Run a server until SIGINT/SIGTERM, then shut down gracefully (bounded by ``shutdown_timeout``).

    A second signal during shutdown stops at once.
    """
    server = Server(settings)
    bot_hub = install_bot_hub(server, BotHubSettings(worker_token=settings.worker_token or None,
                                                     start_timeout=settings.bot_start_timeout))
    run_scope = trio.CancelScope()

    async def run(task_status: trio.TaskStatus[Server] = trio.TASK_STATUS_IGNORED) -> None:
        with run_scope:
            await server.run(task_status=task_status)

    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:

            async def watch() -> None:
                async for signum in signals:
                    if server.stopping:
                        log.warning("second %s: stopping now", signal.Signals(signum).name)
                        run_scope.cancel()
                        continue
                    log.info("received %s: shutting down", signal.Signals(signum).name)
                    server.shutdown()
                    run_scope.deadline = trio.current_time() + settings.shutdown_timeout

            nursery.start_soon(watch)
            await nursery.start(run)
            if settings.local_worker > 0 and settings.local_worker_mode == "process":
                from .workers import run_worker_process  # noqa: PLC0415

                await nursery.start(functools.partial(
                    run_worker_process, server, bot_hub, settings, capacity=settings.local_worker))
            elif settings.local_worker > 0:
                # Loaded only here: the worker's bots bring media and speech, which --local-worker 0 never needs.
                from .bots import builtin_bots  # noqa: PLC0415
                from .bots.assistant import AssistantConfig  # noqa: PLC0415
                from .media import MediaConfig  # noqa: PLC0415
                from .workers import run_local_worker  # noqa: PLC0415

                media = MediaConfig(allow_loopback=settings.media_allow_loopback,
                                    ice_servers=settings.ice_server_list(),
                                    ice_deny_networks=settings.ice_deny_networks)
                await nursery.start(functools.partial(
                    run_local_worker, server, bot_hub, capacity=settings.local_worker, media=media,
                    bots=builtin_bots(media, AssistantConfig.from_settings(settings)), own_thread=True))
            tune_gc()
            secure = "s" if server.ssl_context is not None else ""
            address = server.addresses()[0]
            print(f"voicebot {__version__} listening on ws{secure}://{address}/ws "
                  f"(web client: http{secure}://{address}/)", flush=True)
            if server.admin_token_generated:
                print(f"admin token (generated for this run; set VOICEBOT_ADMIN_TOKEN to choose one): "
                      f"{server.admin_token}", flush=True)
            await server.stopped.wait()  # set when run() ends: graceful, forced or failed
            nursery.cancel_scope.cancel()
    log.info("stopped")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``voicebot`` console script."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = _parser(argv[0] if argv else None).parse_args(argv)
    code: int = args.run(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
