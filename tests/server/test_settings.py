"""Settings: defaults < VOICEBOT_* environment < flags; strict parsing of numbers and booleans."""

from __future__ import annotations

import argparse

import pytest

from voicebot.server import Settings, add_arguments, settings_from


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def test_precedence_defaults_env_flags() -> None:
    assert settings_from(parse(), {}) == Settings()
    env = {"VOICEBOT_PORT": "9000", "VOICEBOT_RESUME_GRACE": "12.5", "VOICEBOT_MEDIA_ALLOW_LOOPBACK": "yes"}
    from_env = settings_from(parse(), env)
    assert (from_env.port, from_env.resume_grace, from_env.media_allow_loopback) == (9000, 12.5, True)
    both = settings_from(parse("--port", "9100", "--media-allow-loopback", "0"), env)
    assert (both.port, both.media_allow_loopback) == (9100, False)


@pytest.mark.parametrize(("env", "message"), [
    ({"VOICEBOT_PORT": "eighty"}, "VOICEBOT_PORT"),
    ({"VOICEBOT_MEDIA_ALLOW_LOOPBACK": "maybe"}, "VOICEBOT_MEDIA_ALLOW_LOOPBACK"),
    ({"VOICEBOT_HEARTBEAT_INTERVAL": "0"}, "heartbeat_interval"),
    ({"VOICEBOT_LOG_LEVEL": "loud"}, "log_level"),
])
def test_bad_values_are_clear_errors(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        settings_from(parse(), env)
