"""Server settings: embedded defaults, overridden by ``VOICEBOT_*`` environment variables, overridden by flags.

One table (the attrs fields below, with their ``metadata["help"]``) drives the defaults, the environment
variables and the command-line flags, so the three can never disagree.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping
from typing import Any

import attrs

__all__ = ["Settings", "add_arguments", "settings_from"]

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


def _positive(_: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if value <= 0:
        raise ValueError(f"{attribute.name} must be > 0 (got {value})")


def _opt(default: Any, help: str, **kw: Any) -> Any:
    return attrs.field(default=default, metadata={"help": help}, **kw)


@attrs.frozen
class Settings:
    """Everything ``voicebot serve`` can be told. See README "Configuration"."""

    host: str = _opt("127.0.0.1", "address to listen on")
    port: int = _opt(8765, "TCP port to listen on (0 picks a free one)")
    db: str = _opt("voicebot.db", "SQLite database path (':memory:' keeps nothing)")
    log_level: str = _opt("info", "logging level", validator=attrs.validators.in_(LOG_LEVELS))
    heartbeat_interval: float = _opt(15.0, "seconds between WebSocket pings; no pong within 2 intervals closes 4002",
                                     validator=_positive)
    resume_grace: float = _opt(30.0, "seconds a disconnected peer keeps its place for a resume", validator=_positive)
    resume_buffer: int = _opt(256, "messages kept for a peer in grace; overflow ends its session", validator=_positive)
    outbox_size: int = _opt(256, "messages queued per connection; a full outbox closes it with 1008",
                            validator=_positive)
    outbox_bytes: int = _opt(1_048_576, "bytes (UTF-8) queued per connection; a full outbox closes it with 1008",
                             validator=_positive)
    resume_buffer_bytes: int = _opt(1_048_576, "bytes of messages kept for a peer in grace; overflow ends its "
                                    "session", validator=_positive)
    max_message_size: int = _opt(65536, "largest accepted frame in bytes (1009 beyond)", validator=_positive)
    shutdown_timeout: float = _opt(5.0, "seconds graceful shutdown may take", validator=_positive)
    hello_timeout: float = _opt(10.0, "seconds a new connection has to send hello (else close 4003)",
                                validator=_positive)
    max_lobbies: int = _opt(10_000, "lobbies that may exist at once", validator=_positive)
    empty_lobby_ttl: float = _opt(300.0, "seconds an ephemeral lobby nobody joined survives", validator=_positive)
    error_limit: int = _opt(20, "errors a client may cause within error_window before it is closed with 1008",
                            validator=_positive)
    error_window: float = _opt(10.0, "seconds of the per-client error budget window", validator=_positive)
    request_rate: float = _opt(50.0, "requests per second a connection may send on average (rate_limited beyond)",
                               validator=_positive)
    request_burst: int = _opt(200, "requests a connection may send in a burst above request_rate", validator=_positive)
    audit_retention_days: float = _opt(90.0, "days audit rows are kept (0: forever); pruned hourly",
                                       validator=attrs.validators.ge(0.0))
    admin_token: str = _opt("", "admin token for hello {admin_token}; empty: generate one and print it once")
    worker_token: str = _opt("", "token external bot workers present in worker.register; empty: only the in-process "
                                 "worker can register")
    local_worker: int = _opt(12, "capacity of the in-process bot worker that serve starts (0: none)",
                             validator=attrs.validators.ge(0))
    bot_start_timeout: float = _opt(20.0, "seconds a worker has to start a bot before the hub tries another",
                                    validator=_positive)
    media_allow_loopback: bool = _opt(False, "let bot peer connections offer 127.0.0.1 candidates")


_FIELDS: tuple[attrs.Attribute[Any], ...] = attrs.fields(Settings)


_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


def _bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"{raw!r} is not a boolean (use 1/0, true/false, yes/no, on/off)")


def _kind(field: attrs.Attribute[Any]) -> Callable[[str], Any]:
    if isinstance(field.default, bool):
        return _bool
    kind: Callable[[str], Any] = type(field.default)
    return kind


def _convert(field: attrs.Attribute[Any], raw: str) -> Any:
    kind = _kind(field)
    try:
        return kind(raw)
    except ValueError:
        expected = type(field.default).__name__
        raise ValueError(f"VOICEBOT_{field.name.upper()}: {raw!r} is not a valid {expected}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one ``--flag`` per setting (default None, so unset flags do not override the environment)."""
    for field in _FIELDS:
        flag = "--" + field.name.replace("_", "-")
        env = "VOICEBOT_" + field.name.upper()
        parser.add_argument(
            flag, dest=field.name, default=None, type=_kind(field),
            choices=LOG_LEVELS if field.name == "log_level" else None,
            help=f"{field.metadata['help']} (env {env}; default {field.default})",
        )


def settings_from(args: argparse.Namespace | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Build settings: defaults < ``VOICEBOT_*`` environment < parsed command-line ``args``."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for field in _FIELDS:
        raw = environ.get("VOICEBOT_" + field.name.upper())
        if raw is not None:
            values[field.name] = _convert(field, raw)
        given = getattr(args, field.name, None) if args is not None else None
        if given is not None:
            values[field.name] = given
    return Settings(**values)
