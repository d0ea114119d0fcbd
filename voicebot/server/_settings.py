"""Server settings: embedded defaults, overridden by ``VOICEBOT_*`` environment variables, overridden by flags.

One table (the attrs fields below, with their ``metadata["help"]``) drives the defaults, the environment
variables and the command-line flags, so the three can never disagree.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from ..http import OriginPolicy
from ._proxies import parse_networks

__all__ = ["Settings", "add_arguments", "settings_from"]

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


def _positive(_: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if value <= 0:
        raise ValueError(f"{attribute.name} must be > 0 (got {value})")


def _networks(value: str) -> None:
    """Validate a comma list of CIDRs (the media layer parses it again; this keeps bad flags from starting)."""
    for item in filter(None, (i.strip() for i in value.split(","))):
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError as exc:
            raise ValueError(f"not a network: {item!r} ({exc})") from None


def _opt(default: Any, help: str, **kw: Any) -> Any:
    return attrs.field(default=default, metadata={"help": help}, **kw)


@attrs.frozen
class Settings:
    """Everything ``voicebot serve`` can be told. See README "Configuration"."""

    host: str = _opt("127.0.0.1", "address to listen on")
    port: int = _opt(8765, "TCP port to listen on (0 picks a free one)")
    db: str = _opt("voicebot.db", "SQLite database path (':memory:' keeps nothing) or a PostgreSQL URL "
                                   "postgresql://user:password@host:port/database")
    cluster: str = _opt("", "Redis URL redis://HOST:PORT/DB: run as one of several hubs sharing lobbies through "
                            "that Redis (needs a PostgreSQL --db); empty: a single hub")
    log_level: str = _opt("info", "logging level", validator=attrs.validators.in_(LOG_LEVELS))
    heartbeat_interval: float = _opt(15.0, "seconds of client silence before a WebSocket ping; no bytes within 2 "
                                           "intervals of a ping closes 4002",
                                     validator=_positive)
    resume_grace: float = _opt(30.0, "seconds a disconnected peer keeps its place for a resume", validator=_positive)
    resume_buffer: int = _opt(256, "messages kept for a peer in grace; overflow ends its session", validator=_positive)
    outbox_size: int = _opt(256, "messages queued per connection; a full outbox closes it with 1008",
                            validator=_positive)
    outbox_bytes: int = _opt(1_048_576, "bytes (UTF-8) queued per connection; a full outbox closes it with 1008",
                             validator=_positive)
    outbox_bytes_per_address: int = _opt(8_388_608, "bytes (UTF-8) queued in the outboxes of one address's "
                                         "connections together; past half their readers pause until a quarter "
                                         "is left, a message beyond it closes its connection with 1008 (0: no "
                                         "per-address budget)", validator=attrs.validators.ge(0))
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
    local_worker_mode: str = _opt("process", "where serve runs its local worker: 'process' (a supervised child "
                                             "process, restarted if it dies) or 'thread' (a thread of the hub's "
                                             "process, sharing its interpreter lock)",
                                  validator=attrs.validators.in_(("process", "thread")))
    # The assistant bot (voicebot.bots.assistant): endpointing and barge-in.
    vad_silence: float = _opt(0.5, "seconds of silence that end a user's turn (assistant endpointing)",
                              validator=_positive)
    barge_in_min: float = _opt(0.25, "seconds of voiced audio over the assistant that interrupt its reply",
                               validator=_positive)
    bot_start_timeout: float = _opt(20.0, "seconds a worker has to start a bot before the hub tries another",
                                    validator=_positive)
    media_allow_loopback: bool = _opt(False, "let bot peer connections offer 127.0.0.1 candidates")
    # -- hardening: throttles, budgets and quotas; 0 means unlimited where noted --
    login_failures_per_address: int = _opt(5, "failed logins (password, admin token, lobby password: each counted "
                                              "separately) an address may make in 5 min before it is locked out",
                                           validator=_positive)
    login_failures_per_name: int = _opt(10, "failed logins on one name (or lobby) within 5 min before it is locked "
                                            "against addresses that have failed", validator=_positive)
    password_checks_per_address: int = _opt(1, "password hashes/verifications one address may have running at once",
                                            validator=_positive)
    password_queue_per_address: int = _opt(4, "further password checks one address may have queued (auth_busy beyond)",
                                           validator=attrs.validators.ge(0))
    max_connections_per_address: int = _opt(100, "open connections per client address (IPv6: per /64; 0: unlimited)",
                                            validator=attrs.validators.ge(0))
    connection_rate_per_address: float = _opt(20.0, "new connections per second one address may open on average "
                                                    "(0: unlimited)", validator=attrs.validators.ge(0.0))
    connection_burst_per_address: int = _opt(50, "new connections one address may open in a burst above the rate",
                                             validator=_positive)
    request_rate_per_address: float = _opt(200.0, "requests per second all connections of one address may send "
                                                  "together on average (rate_limited beyond; 0: unlimited)",
                                           validator=attrs.validators.ge(0.0))
    request_burst_per_address: int = _opt(400, "requests one address may send in a burst above that rate",
                                          validator=_positive)
    max_lobbies_per_address: int = _opt(50, "lobbies created by one address that may exist at once (0: unlimited)",
                                        validator=attrs.validators.ge(0))
    max_lobbies_per_peer: int = _opt(10, "lobbies created by one peer that may exist at once (0: unlimited)",
                                     validator=attrs.validators.ge(0))
    max_bots_per_lobby: int = _opt(4, "bots one lobby may hold (0: unlimited)", validator=attrs.validators.ge(0))
    max_bots_per_peer: int = _opt(4, "bots one peer may have running at once (0: unlimited)",
                                  validator=attrs.validators.ge(0))
    reserved_names: str = _opt("", "extra reserved names (comma list) besides admin, system, voicebot, root, "
                                   "moderator, … and the bots' names")
    audit_wait: float = _opt(5.0, "seconds a security audit row may wait for room in the write queue (the request "
                                  "waits; audit_busy after)", validator=_positive)
    ice_deny_networks: str = _opt("0.0.0.0/8,169.254.0.0/16,224.0.0.0/4,255.255.255.255/32,::/128,fe80::/10,ff00::/8",
                                  "networks (comma list of CIDRs) bot peers never send ICE checks to; loopback "
                                  "(127.0.0.0/8, ::1) is added unless --media-allow-loopback",
                                  validator=lambda _i, _a, v: _networks(v))
    max_http_head: int = _opt(16384, "largest HTTP request head in bytes (431 beyond); the head must also arrive "
                                     "within hello_timeout", validator=_positive)
    allowed_origins: str = _opt("", "comma list of browser origins allowed to open /ws ('*': any); empty: the "
                                    "server's own origin and localhost; clients without Origin are always allowed")
    trusted_proxies: str = _opt("", "reverse proxies (comma list of CIDRs) whose X-Forwarded-For / Forwarded "
                                    "headers name the client for quotas, throttles, audit and logs (the right-most "
                                    "untrusted address); empty: headers are never read",
                                validator=lambda _i, _a, v: parse_networks(v))
    tls_cert: str = _opt("", "PEM certificate chain: serve https:// and wss:// on the same port (needs tls_key)")
    tls_key: str = _opt("", "PEM private key for tls_cert")
    ice_servers: str = _opt("", "STUN/TURN servers for browsers (welcome.ice_servers) and the in-process worker's "
                                "bots: comma list of URLs, or a JSON list of {urls, username?, credential?}")

    # AI providers (voicebot.providers): chains are comma lists, first primary, the rest fallbacks in order.
    stt: str = _opt("local", "speech-to-text provider chain, e.g. 'openai,local' ('local' = offline whisper)")
    llm: str = _opt("local", "language-model provider chain, e.g. 'openai,local' ('local' = offline responder)")
    tts: str = _opt("local", "text-to-speech provider chain, e.g. 'openai,local' ('local' = piper then espeak)")
    openai_base_url: str = _opt("https://api.openai.com/v1", "base URL of the OpenAI-compatible HTTP API")
    stt_base_url: str = _opt("", "base URL for openai speech-to-text (empty: openai_base_url)")
    llm_base_url: str = _opt("", "base URL for openai chat completions (empty: openai_base_url)")
    tts_base_url: str = _opt("", "base URL for openai speech (empty: openai_base_url)")
    stt_model: str = _opt("whisper-1", "model of the openai speech-to-text provider")
    llm_model: str = _opt("gpt-4o-mini", "model of the openai language-model provider")
    tts_model: str = _opt("tts-1", "model of the openai text-to-speech provider")
    tts_voice: str = _opt("alloy", "voice of the openai text-to-speech provider")
    llm_model_path: str = _opt("", "GGUF file the 'llama' language-model provider runs")
    stt_timeout: float = _opt(5.0, "seconds one speech-to-text call may take per provider (retries included)",
                              validator=_positive)
    llm_timeout: float = _opt(4.0, "seconds to the first token per language-model provider (retries included)",
                              validator=_positive)
    tts_timeout: float = _opt(3.0, "seconds to the first audio per text-to-speech provider (retries included)",
                              validator=_positive)
    provider_recovery_timeout: float = _opt(30.0, "seconds a failed provider's breaker stays open before a probe",
                                            validator=_positive)
    context_budget: int = _opt(6000, "characters of conversation history sent to the language model "
                                     "(persona excluded; oldest whole turns dropped first)", validator=_positive)
    whisper_window: float = _opt(20.0, "seconds of audio context the local whisper encodes per utterance, 10-30 "
                                       "(shorter is faster; 30 is whisper's full window)",
                                 validator=attrs.validators.and_(attrs.validators.ge(10.0),
                                                                 attrs.validators.le(30.0)))

    def __attrs_post_init__(self) -> None:
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("tls_cert and tls_key must be given together")
        OriginPolicy(self.allowed_origins)  # raises ValueError for an entry that is not an origin
        self.ice_server_list()  # raises ValueError for a malformed list
        if self.cluster:
            if not self.cluster.startswith(("redis://", "rediss://", "unix://")):
                raise ValueError("cluster must be a Redis URL like redis://HOST:PORT/DB")
            if not self.db.startswith(("postgresql://", "postgres://")):
                raise ValueError("cluster mode needs a PostgreSQL database (--db postgresql://…) that every hub "
                                 "shares; an SQLite file belongs to one hub")

    def ice_server_list(self) -> list[dict[str, Any]]:
        """``ice_servers`` as RTCIceServer dictionaries (``[]`` when empty: host candidates only)."""
        return parse_ice_servers(self.ice_servers)


_ICE_SCHEMES = ("stun:", "stuns:", "turn:", "turns:")


def parse_ice_servers(text: str) -> list[dict[str, Any]]:
    """Parse ``--ice-servers``: ``""`` → ``[]``; ``stun:a,turn:b`` → one server per URL; a JSON list of objects
    ``{urls: str | [str], username?, credential?}`` as browsers take them. Raises ``ValueError`` naming the problem."""
    text = text.strip()
    if not text:
        return []
    if text.startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"ice_servers: not valid JSON ({exc.msg})") from None
    else:
        items = [{"urls": url.strip()} for url in text.split(",") if url.strip()]
    servers: list[dict[str, Any]] = []
    for item in items:
        if not isinstance(item, dict):
            raise ValueError("ice_servers: each entry must be an object {urls, username?, credential?}")
        urls = item.get("urls")
        url_list = [urls] if isinstance(urls, str) else urls
        if not isinstance(url_list, list) or not url_list or not all(
                isinstance(u, str) and u.startswith(_ICE_SCHEMES) for u in url_list):
            raise ValueError(f"ice_servers: urls must be stun:/stuns:/turn:/turns: URLs (got {urls!r})")
        server: dict[str, Any] = {"urls": urls}
        for key in ("username", "credential"):
            if key in item:
                if not isinstance(item[key], str):
                    raise ValueError(f"ice_servers: {key} must be a string")
                server[key] = item[key]
        servers.append(server)
    return servers


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
