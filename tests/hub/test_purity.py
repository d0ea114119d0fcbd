"""The sans-IO core imports no I/O stack: checked in a fresh interpreter, through every package ``__init__``."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import voicebot.auth
import voicebot.errors

IO_MODULES = ("trio", "trio_websocket", "argon2", "sqlite3", "asyncio")
"""What the core must never load: the event loop, the socket layer, password hashing, the database."""


def loaded_io_modules(*modules: str) -> list[str]:
    """Import ``modules`` in a fresh interpreter and return which :data:`IO_MODULES` ended up in ``sys.modules``."""
    code = (
        "import importlib, json, sys\n"
        f"for name in {list(modules)!r}:\n"
        "    importlib.import_module(name)\n"
        f"print(json.dumps(sorted(m for m in {list(IO_MODULES)!r} if m in sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    return list(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("module", ["voicebot.hub", "voicebot.protocol"])
def test_core_imports_no_io(module: str) -> None:
    assert loaded_io_modules(module) == []


def test_core_together_imports_no_io() -> None:
    assert loaded_io_modules("voicebot.hub", "voicebot.protocol", "voicebot.errors", "voicebot.auth") == []


def test_the_check_sees_io_imports() -> None:
    """The probe is not blind: modules known to load the I/O stack are reported."""
    assert "trio" in loaded_io_modules("voicebot.server")
    assert "trio" in loaded_io_modules("voicebot.auth._passwords")
    assert "argon2" not in loaded_io_modules("voicebot.auth._passwords")  # loaded at the first hash
    assert "argon2" in loaded_io_modules("argon2")
    assert {"sqlite3", "trio_websocket"} <= set(loaded_io_modules("voicebot.errors._classify"))


def test_lazy_names_still_resolve() -> None:
    """The error classifier/handler and password hashing load on first use, under their public names."""
    assert callable(voicebot.errors.classify) and voicebot.errors.ErrorHandler.__name__ == "ErrorHandler"
    assert voicebot.auth.Passwords.__name__ == "Passwords"
    with pytest.raises(AttributeError):
        _ = voicebot.errors.no_such_name  # type: ignore[attr-defined]
