"""A speaker bot drops its synthesised audio when it ends, instead of leaving megabytes to the garbage
collector's rare full pass (a flood of short-lived speaker bots grew the process by ~2.6 MB per bot)."""

from __future__ import annotations

from typing import Any

import pytest

from voicebot.bots import _builtin
from voicebot.bots._builtin import SpeakerBot


@pytest.mark.parametrize("ends_with", ["return", "error"])
async def test_speaker_frees_its_frames_when_it_ends(monkeypatch: pytest.MonkeyPatch, ends_with: str) -> None:
    seen: list[int] = []

    async def media_run(self: SpeakerBot, session: Any) -> None:  # stands in for the peers' media
        assert self._frames is not None
        seen.append(len(self._frames))
        if ends_with == "error":
            raise RuntimeError("peer failed")

    monkeypatch.setattr(_builtin.MediaBot, "run", media_run)
    bot = SpeakerBot("hello there, this is a test")
    if ends_with == "error":
        with pytest.raises(RuntimeError):
            await bot.run(session=None)  # type: ignore[arg-type]
    else:
        await bot.run(session=None)  # type: ignore[arg-type]
    assert seen and seen[0] > 0  # the audio was there while it ran ...
    assert bot._frames is None  # ... and is gone once it ended
    await bot.prepare()  # a bot object run again synthesises again
    assert bot._frames is not None
