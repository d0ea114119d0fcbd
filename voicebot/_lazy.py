"""Lazy package exports: a package's public names load their module on first use (PEP 562).

The server's idle footprint is what it imports. Packages whose modules pull in heavy dependencies (aiortc, av,
numpy, speech engines, HTTP clients) list their exports here instead of importing them eagerly, so
``voicebot serve`` loads them only where and when a bot or a provider actually runs. Type checkers see the
ordinary imports (under ``TYPE_CHECKING``), so nothing changes for callers.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(package: str, table: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``: ``table`` maps each public name to its relative module."""

    def __getattr__(name: str) -> Any:
        module = table.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(module, package), name)
        setattr(sys.modules[package], name, value)  # later lookups are plain attribute reads
        return value

    return __getattr__
