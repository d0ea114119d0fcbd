"""Fault kinds: what an injection point does when a plan makes it fire.

A :class:`Fault` is a frozen value: the kind plus its parameters. Build one with the factory functions
(:func:`raises`, :func:`delay`, :func:`hang`, :func:`disconnect`, :func:`drop`, :func:`duplicate`,
:func:`corrupt`) or from a plan file. Exceptions are created fresh on every firing.
"""

from __future__ import annotations

import enum
import importlib
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from voicebot.errors import Severity, WebSocketError

__all__ = [
    "ALLOWED_EXCEPTION_MODULES",
    "Disconnect",
    "Fault",
    "FaultKind",
    "corrupt",
    "delay",
    "disconnect",
    "drop",
    "duplicate",
    "exception_name",
    "hang",
    "raises",
    "resolve_exception",
]


class FaultKind(enum.StrEnum):
    """The kinds of fault an injection point can be told to produce."""

    RAISE = "raise"
    """Raise an exception (foreign or VoiceBotError)."""
    DELAY = "delay"
    """Sleep ``seconds`` on Trio's clock, then continue normally."""
    HANG = "hang"
    """Sleep until cancelled (``trio.sleep_forever``)."""
    DISCONNECT = "disconnect"
    """Raise :class:`Disconnect`, which the connection layer turns into dropping the connection."""
    DROP = "drop"
    """Message points only: the message vanishes."""
    DUPLICATE = "duplicate"
    """Message points only: the message is delivered twice."""
    CORRUPT = "corrupt"
    """Message points only: a deterministically corrupted copy is delivered instead."""


#: Kinds usable at ``await point(...)``.
AWAIT_KINDS = frozenset({FaultKind.RAISE, FaultKind.DELAY, FaultKind.HANG, FaultKind.DISCONNECT})
#: Kinds usable at ``check(...)`` (sync, raise only).
CHECK_KINDS = frozenset({FaultKind.RAISE, FaultKind.DISCONNECT})
#: Kinds usable at ``message(...)`` (sync).
MESSAGE_KINDS = frozenset(
    {FaultKind.RAISE, FaultKind.DISCONNECT, FaultKind.DROP, FaultKind.DUPLICATE, FaultKind.CORRUPT}
)

#: Modules (and their submodules) from which plan files may name exception types.
ALLOWED_EXCEPTION_MODULES: tuple[str, ...] = (
    "builtins",
    "sqlite3",
    "psycopg",  # PostgreSQL store faults, e.g. psycopg.errors.SerializationFailure / psycopg.OperationalError
    "psycopg_pool",
    "json",
    "socket",
    "ssl",
    "trio",
    "trio_websocket",
    "voicebot",
)


@attrs.define(auto_exc=True, eq=False, kw_only=True)
class Disconnect(WebSocketError):
    """Signal raised by a ``disconnect`` fault: the connection layer should drop the connection abruptly.

    It is a HIGH :class:`~voicebot.errors.WebSocketError`, so code that does not special-case it still
    closes just that one connection through the normal error handling.
    """

    message: str = attrs.field(default="connection dropped", kw_only=False)
    code: str = "injected_disconnect"
    severity: Severity = Severity.HIGH
    retryable: bool = True


def exception_name(exc_type: type[BaseException]) -> str:
    """The dotted name of an exception type as used in plan files (``OSError``, ``sqlite3.OperationalError``)."""
    module = exc_type.__module__
    if module == "builtins":
        return exc_type.__qualname__
    return f"{module}.{exc_type.__qualname__}"


def _module_allowed(module: str) -> bool:
    return any(module == allowed or module.startswith(allowed + ".") for allowed in ALLOWED_EXCEPTION_MODULES)


def resolve_exception(dotted: str) -> type[Exception]:
    """Resolve ``"sqlite3.OperationalError"`` / ``"OSError"`` to an exception type.

    Only modules in :data:`ALLOWED_EXCEPTION_MODULES` (and their submodules) are imported; the result must
    subclass ``Exception`` (so ``Cancelled``/``KeyboardInterrupt`` can never be injected). Raises ``ValueError``.
    """
    if not dotted or dotted.strip() != dotted:
        raise ValueError(f"invalid exception name {dotted!r}")
    module_name, _, attr = dotted.rpartition(".")
    if not module_name:
        module_name = "builtins"
    if not _module_allowed(module_name):
        raise ValueError(
            f"exception {dotted!r}: module {module_name!r} is not allowed "
            f"(allowed: {', '.join(ALLOWED_EXCEPTION_MODULES)})"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"exception {dotted!r}: cannot import module {module_name!r}: {exc}") from None
    obj = getattr(module, attr, None)
    if not isinstance(obj, type) or not issubclass(obj, BaseException):
        raise ValueError(f"exception {dotted!r}: {attr!r} is not an exception type in {module_name!r}")
    if not issubclass(obj, Exception):
        raise ValueError(f"exception {dotted!r}: only Exception subclasses may be injected")
    return obj


def _check_exc_type(value: type[Exception] | None) -> None:
    if value is not None and not (isinstance(value, type) and issubclass(value, Exception)):
        raise TypeError(f"fault exception must be an Exception subclass, got {value!r}")


def _sorted_items(value: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted(dict(value).items()))


@attrs.frozen(kw_only=True)
class Fault:
    """One fault: a kind and its parameters. Prefer the factory functions to constructing it directly."""

    kind: FaultKind = attrs.field(converter=FaultKind)
    exc_type: type[Exception] | None = attrs.field(default=None)
    """For ``raise``: the exception type to instantiate."""
    args: tuple[Any, ...] = attrs.field(default=(), converter=tuple)
    """For ``raise``: positional arguments of the exception."""
    kwargs: tuple[tuple[str, Any], ...] = attrs.field(default=(), converter=_sorted_items)
    """For ``raise``: keyword arguments (e.g. ``code=`` of a VoiceBotError), kept sorted."""
    seconds: float = 0.0
    """For ``delay``: virtual seconds to sleep."""
    reason: str = ""
    """For ``disconnect``: a reason kept in the Disconnect's context and the journal."""

    def __attrs_post_init__(self) -> None:
        _check_exc_type(self.exc_type)
        if self.kind is FaultKind.RAISE and self.exc_type is None:
            raise ValueError("a raise fault needs an exception type")
        if self.kind is not FaultKind.RAISE and (self.exc_type is not None or self.args or self.kwargs):
            raise ValueError(f"a {self.kind} fault takes no exception")
        if self.kind is FaultKind.DELAY and not self.seconds >= 0:
            raise ValueError(f"delay seconds must be >= 0, got {self.seconds!r}")
        if self.exc_type is not None:
            try:  # fail at plan construction, not when the fault first fires
                self.exc_type(*self.args, **dict(self.kwargs))
            except Exception as exc:
                raise ValueError(
                    f"cannot construct {exception_name(self.exc_type)} from args={list(self.args)!r} "
                    f"kwargs={dict(self.kwargs)!r}: {exc}"
                ) from None

    def make_exception(self, point: str, hit: int) -> Exception:
        """Build a fresh exception for this fault firing at ``point`` on hit number ``hit``."""
        if self.kind is FaultKind.DISCONNECT:
            return Disconnect(context={"point": point, "hit": hit, "reason": self.reason, "injected": True})
        if self.exc_type is None:
            raise TypeError(f"a {self.kind} fault does not raise")
        exc = self.exc_type(*self.args, **dict(self.kwargs))
        note = f"injected by voicebot.faults at {point} (hit {hit})"
        context = getattr(exc, "context", None)
        if isinstance(context, dict):
            context.setdefault("injected", note)
        else:
            exc.add_note(note)
        return exc

    def describe(self) -> dict[str, Any]:
        """JSON-ready description, used by the journal and plan files (no weight)."""
        out: dict[str, Any] = {"fault": str(self.kind)}
        if self.exc_type is not None:
            out["exception"] = exception_name(self.exc_type)
            if self.args:
                out["args"] = list(self.args)
            if self.kwargs:
                out["kwargs"] = dict(self.kwargs)
        if self.kind is FaultKind.DELAY:
            out["seconds"] = self.seconds
        if self.reason:
            out["reason"] = self.reason
        return out


def raises(exc_type: type[Exception], *args: Any, **kwargs: Any) -> Fault:
    """A fault raising ``exc_type(*args, **kwargs)``.

    E.g. ``raises(sqlite3.OperationalError, "database is locked")`` or ``raises(PersistenceError, code="x")``.
    """
    return Fault(kind=FaultKind.RAISE, exc_type=exc_type, args=args, kwargs=kwargs)


def delay(seconds: float) -> Fault:
    """A fault sleeping ``seconds`` on Trio's clock before the operation proceeds."""
    return Fault(kind=FaultKind.DELAY, seconds=float(seconds))


def hang() -> Fault:
    """A fault that blocks until the caller's cancel scope cancels it."""
    return Fault(kind=FaultKind.HANG)


def disconnect(reason: str = "") -> Fault:
    """A fault raising :class:`Disconnect` so the connection layer drops the connection."""
    return Fault(kind=FaultKind.DISCONNECT, reason=reason)


def drop() -> Fault:
    """A message fault: the message is lost."""
    return Fault(kind=FaultKind.DROP)


def duplicate() -> Fault:
    """A message fault: the message is delivered twice."""
    return Fault(kind=FaultKind.DUPLICATE)


def corrupt() -> Fault:
    """A message fault: a deterministically corrupted copy replaces the message."""
    return Fault(kind=FaultKind.CORRUPT)
