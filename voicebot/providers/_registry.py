"""Provider registry: names in chains → factories.

Built-in providers register themselves here; third-party packages add theirs either by calling
:func:`register_provider` at import time or through the entry-point group ``voicebot.providers`` (entry-point
name ``"<kind>.<name>"``, e.g. ``"llm.mycloud"``, value a factory ``(ProviderConfig) -> provider``), loaded the
first time an unknown name is looked up. ``local`` is not a provider but an alias: the default offline chain
of its kind (:data:`LOCAL_CHAINS`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from importlib import metadata
from typing import Any

from voicebot.errors import ProviderError

from ._api import ProviderKind
from ._config import ProviderConfig

__all__ = [
    "ENTRY_POINT_GROUP",
    "LOCAL_CHAINS",
    "ProviderCheck",
    "ProviderFactory",
    "ProviderUnavailable",
    "UnknownProvider",
    "check_provider",
    "create_provider",
    "expand_chain",
    "provider_known",
    "register_provider",
    "registered_providers",
]

log = logging.getLogger("voicebot.providers")

ENTRY_POINT_GROUP = "voicebot.providers"
"""Entry-point group scanned for third-party providers (names ``"<kind>.<name>"``)."""

ProviderFactory = Callable[[ProviderConfig], Any]
"""Builds one provider instance from the process's :class:`ProviderConfig`; raises
:class:`ProviderUnavailable` when the provider cannot run here (package or model missing)."""

ProviderCheck = Callable[[ProviderConfig], None]
"""Raises :class:`ProviderUnavailable` when a provider cannot run here, without building it (so without
importing its engine): start-up checks use it when the provider registered one."""

LOCAL_CHAINS: dict[str, tuple[str, ...]] = {
    "stt": ("whisper",),
    "llm": ("responder",),
    "tts": ("piper", "espeak"),
}
"""What ``local`` means per kind: offline whisper; the deterministic responder; piper, then espeak-ng."""

KINDS: tuple[ProviderKind, ...] = ("stt", "llm", "tts")

_FACTORIES: dict[tuple[str, str], ProviderFactory] = {}
_CHECKS: dict[tuple[str, str], ProviderCheck] = {}
_entry_points_loaded = False


class UnknownProvider(ValueError):
    """A chain names a provider that is not registered (a start-up error naming the setting)."""


class ProviderUnavailable(ProviderError):
    """A registered provider cannot run in this process (its package or model is missing)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="provider_unavailable", retryable=False)


def register_provider(kind: ProviderKind, name: str, factory: ProviderFactory, *, replace: bool = False,
                      check: ProviderCheck | None = None) -> None:
    """Make ``name`` usable in ``kind``'s chain. Registering a taken name raises ``ValueError`` unless
    ``replace`` (tests, deliberate overrides); ``local`` is reserved. ``check`` answers "can it run here?"
    without building it (see :func:`check_provider`); without one, the check builds the provider."""
    if kind not in KINDS:
        raise ValueError(f"unknown provider kind {kind!r} (expected one of {', '.join(KINDS)})")
    name = name.strip().lower()
    if not name or name == "local" or "," in name:
        raise ValueError(f"invalid provider name {name!r}")
    if (kind, name) in _FACTORIES and not replace:
        raise ValueError(f"{kind} provider {name!r} is already registered")
    _FACTORIES[(kind, name)] = factory
    if check is not None:
        _CHECKS[(kind, name)] = check
    else:
        _CHECKS.pop((kind, name), None)


def unregister_provider(kind: ProviderKind, name: str) -> None:
    """Forget a registered provider (tests)."""
    _FACTORIES.pop((kind, name), None)
    _CHECKS.pop((kind, name), None)


def _load_entry_points() -> None:
    global _entry_points_loaded  # noqa: PLW0603 - load the group once per process
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
        kind, _, name = entry.name.partition(".")
        if kind not in KINDS or not name:
            log.warning("ignoring entry point %r in %s: name must be '<kind>.<name>'", entry.name, ENTRY_POINT_GROUP)
            continue
        if (kind, name) in _FACTORIES:
            continue
        try:
            _FACTORIES[(kind, name)] = entry.load()
        except Exception as exc:  # a broken plug-in must not stop the worker: it is reported when named
            log.warning("could not load provider entry point %r: %r", entry.name, exc)


def registered_providers(kind: ProviderKind) -> list[str]:
    """Names usable in ``kind``'s chain (``local`` included), sorted."""
    _load_entry_points()
    return sorted({name for k, name in _FACTORIES if k == kind} | {"local"})


def expand_chain(kind: ProviderKind, names: tuple[str, ...]) -> tuple[str, ...]:
    """``names`` with ``local`` replaced by :data:`LOCAL_CHAINS` (duplicates after expansion dropped, first
    kept); an unknown name raises :class:`UnknownProvider` naming the setting ``--<kind>``."""
    _load_entry_points()
    out: list[str] = []
    for name in names:
        members = LOCAL_CHAINS[kind] if name == "local" else (name,)
        for member in members:
            if (kind, member) not in _FACTORIES:
                known = ", ".join(registered_providers(kind))
                raise UnknownProvider(f"--{kind}: unknown {kind} provider {member!r} (known: {known})")
            if member not in out:
                out.append(member)
    return tuple(out)


def provider_known(kind: ProviderKind, name: str) -> bool:
    """Whether a ``kind`` provider called ``name`` is registered (nothing is instantiated or imported)."""
    _load_entry_points()
    return (kind, name) in _FACTORIES


def check_provider(kind: ProviderKind, name: str, config: ProviderConfig) -> None:
    """:class:`UnknownProvider` / :class:`ProviderUnavailable` as :func:`create_provider` would raise them; a
    provider registered with a ``check`` is not built (its engine is not imported), any other one is built and
    dropped."""
    _load_entry_points()
    check = _CHECKS.get((kind, name))
    if check is None:
        create_provider(kind, name, config)
        return
    if (kind, name) not in _FACTORIES:
        raise UnknownProvider(f"--{kind}: unknown {kind} provider {name!r}")
    check(config)


def create_provider(kind: ProviderKind, name: str, config: ProviderConfig) -> Any:
    """A new instance of ``kind`` provider ``name``; :class:`UnknownProvider` / :class:`ProviderUnavailable`."""
    _load_entry_points()
    factory = _FACTORIES.get((kind, name))
    if factory is None:
        raise UnknownProvider(f"--{kind}: unknown {kind} provider {name!r}")
    return factory(config)
