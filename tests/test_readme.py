"""README.md is the contract users read: it must name every setting and every error code the server raises."""

from __future__ import annotations

import re
from pathlib import Path

import attrs

from voicebot.server import Settings

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_every_setting_is_documented() -> None:
    for field in attrs.fields(Settings):
        flag = "--" + field.name.replace("_", "-")
        assert f"`{flag}`" in README, f"README lacks {flag}"


def test_every_client_facing_error_code_is_documented() -> None:
    codes: set[str] = set()
    paths = [ROOT / "voicebot" / "workers" / "_hub.py"]
    for module in ("hub", "server", "protocol", "auth"):
        paths += (ROOT / "voicebot" / module).glob("*.py")
    for path in paths:
        codes |= set(re.findall(r'code="([a-z_]+)"', path.read_text()))
    missing = sorted(code for code in codes if f"`{code}`" not in README)
    assert not missing, f"README lacks error codes: {missing}"
