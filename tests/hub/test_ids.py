"""Issue 12 row 3 in general: every id a client sees comes from ``secrets`` in production; a seeded rng is only
ever injected (tests, chaos replays), where ids stay deterministic."""

from __future__ import annotations

import random
import secrets

import pytest

from voicebot.errors import IdFactory
from voicebot.server import Server
from voicebot.testing import settings_for_tests
from voicebot.workers import install_bot_hub


def test_production_server_never_draws_ids_from_random(monkeypatch: pytest.MonkeyPatch) -> None:
    server = Server(settings_for_tests(), listen=False)
    bot_hub = install_bot_hub(server)

    def forbidden(*args: object) -> int:
        raise AssertionError("an id came from random.Random")

    monkeypatch.setattr(random.Random, "getrandbits", forbidden)
    monkeypatch.setattr(random.Random, "random", forbidden)
    drawn: list[int] = []
    real = secrets.randbits

    def spy(k: int) -> int:
        drawn.append(k)
        return real(k)

    monkeypatch.setattr(secrets, "randbits", spy)
    ids = [server.hub.new_id(p) for p in ("p", "l")] + [bot_hub.scheduler.new_id(p) for p in ("w", "j")]
    ids.append(server.errors.ids.new())
    assert drawn == [96, 96, 96, 96, 24]
    for value in ids[:4]:
        _, bits = value.split("_")
        assert len(bits) == 24 and int(bits, 16) >= 0
    assert len(set(ids)) == len(ids)


def test_seeded_server_ids_replay() -> None:
    def ids(seed: int) -> list[str]:
        server = Server(settings_for_tests(), rng=random.Random(seed), listen=False)
        return [server.hub.new_id("p"), server.hub.new_id("l"), server.errors.ids.new()]

    assert ids(3) == ids(3)
    assert ids(3) != ids(4)


def test_id_factory_default_is_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(random.Random, "getrandbits", lambda *a: (_ for _ in ()).throw(AssertionError()))
    assert IdFactory().new().endswith("-1")
