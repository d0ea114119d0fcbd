"""Assistant building blocks without media: endpointing, sentences, heard text, options, memory, VAD."""

from __future__ import annotations

from typing import Any

import av
import numpy as np
import pydantic
import pytest
import trio

from voicebot.bots import synthesize
from voicebot.bots.assistant import (
    CHUNK_SAMPLES,
    DEFAULT_GREETING,
    AssistantAnalytics,
    AssistantMemory,
    AssistantOptions,
    Downsampler,
    Endpointer,
    Playout,
    SentenceSplitter,
    SileroVad,
    Speech,
    heard_part,
    percentile,
)
from voicebot.errors import ValidationError
from voicebot.media import AudioSender
from voicebot.workers._protocol import BotAdd

CHUNK = np.zeros(CHUNK_SAMPLES, dtype=np.int16)


def run(endpointer: Endpointer, pattern: str, start: float = 0.0) -> list[tuple[str, float]]:
    """Feed ``pattern`` (one char per 32 ms chunk: ``#`` speech, ``.`` silence); returns (kind, time) events."""
    events = []
    for i, c in enumerate(pattern):
        now = start + i * 0.032
        for event in endpointer.step(0.9 if c == "#" else 0.05, CHUNK + (1 if c == "#" else 0), now):
            events.append((event.kind, round(event.at, 3)))
    return events


def test_endpointer_ends_a_turn_after_vad_silence() -> None:
    ep = Endpointer(vad_silence=0.5)
    events = run(ep, "...." + "#" * 20 + "." * 16)
    kinds = [k for k, _ in events]
    assert kinds[0] == "speech_started" and kinds.count("voiced") == 19
    assert kinds[-2:] == ["silence_started", "turn_ended"]
    assert events[-1][1] == events[-2][1] == round(23 * 0.032, 3)  # both point at the last voiced chunk
    assert run(Endpointer(vad_silence=0.5), "#" * 20 + "." * 15)[-1][0] == "silence_started"  # 0.48 s: not yet


def test_endpointer_speech_resuming_in_the_silence_continues_the_turn() -> None:
    ep = Endpointer(vad_silence=0.5)
    events = [k for k, _ in run(ep, "#" * 10 + "." * 8 + "#" * 10 + "." * 16)]
    assert events.count("silence_started") == 2 and events.count("speech_resumed") == 1
    assert events.count("turn_ended") == 1 and events[-1] == "turn_ended"


def test_endpointer_turn_audio_includes_pre_roll_and_excludes_trailing_silence() -> None:
    ep = Endpointer(vad_silence=0.5)
    pcm = None
    for i, c in enumerate("." * 20 + "#" * 5 + "." * 16):
        chunk = np.full(CHUNK_SAMPLES, 1000 if c == "#" else i, dtype=np.int16)
        for event in ep.step(0.9 if c == "#" else 0.0, chunk, i * 0.032):
            if event.kind == "turn_ended":
                pcm = event.pcm
    assert pcm is not None and len(pcm) == 15 * CHUNK_SAMPLES  # 10 chunks of pre-roll + 5 of speech
    assert pcm[0] == 10 and pcm[-1] == 1000


def test_endpointer_drops_clicks_and_cuts_endless_speech() -> None:
    assert [k for k, _ in run(Endpointer(), "##" + "." * 20)] == ["speech_started", "voiced", "dropped"]
    ep = Endpointer(max_utterance=1.0)
    kinds = [k for k, _ in run(ep, "#" * 40)]
    assert kinds.count("turn_ended") == 1 and ep.state in ("idle", "speaking")


def test_endpointer_hysteresis() -> None:
    ep = Endpointer(start_threshold=0.5, stop_threshold=0.35)
    assert ep.step(0.4, CHUNK, 0.0) == []  # below start: nothing
    assert ep.step(0.6, CHUNK, 0.1)[0].kind == "speech_started"
    assert ep.step(0.4, CHUNK, 0.2)[0].kind == "voiced"  # above stop while speaking: still voiced


@pytest.mark.parametrize(("deltas", "sentences", "rest"), [
    (["Hello there. How", " are you?", " Fine"], ["Hello there.", "How are you?"], "Fine"),
    (["It costs 3.5 dollars. Ok"], ["It costs 3.5 dollars."], "Ok"),
    (["Mr. Smith is here! Yes"], ["Mr. Smith is here!"], "Yes"),
    (["Wait... what?", " "], ["Wait...", "what?"], ""),
    (["line one\nline two"], ["line one"], "line two"),
    (["word " * 60], ["word " * 47 + "word"], ("word " * 12).strip()),
    # A long first sentence goes out clause by clause; later sentences and short clauses stay whole.
    (["I'm a simple offline assistant, so I can't answer that one. I can tell you the time, or the date. "],
     ["I'm a simple offline assistant,", "so I can't answer that one.", "I can tell you the time, or the date."], ""),
    (["Got it: your favorite color is blue. Ok"], ["Got it: your favorite color is blue."], "Ok"),
    (["Hello there, friend. Ok"], ["Hello there, friend."], "Ok"),
    (["Well, Mr. Smith, the answer is, I think, forty two."], ["Well, Mr. Smith, the answer is,"],
     "I think, forty two."),
])
def test_sentence_splitter(deltas: list[str], sentences: list[str], rest: str) -> None:
    splitter = SentenceSplitter()
    got = [s for d in deltas for s in splitter.feed(d)]
    assert [g.strip() for g in got] == [s.strip() for s in sentences]
    assert splitter.flush() == rest


@pytest.mark.parametrize("step", [1, 2, 3, 7, 1000])
def test_sentence_splitter_streams_the_same_pieces_at_any_delta_size(step: int) -> None:
    text = "I'm a simple offline assistant, so I can't answer that one. I can tell you the time, or the date."
    splitter = SentenceSplitter()
    got = [s for i in range(0, len(text), step) for s in splitter.feed(text[i:i + step])]
    assert [*got, splitter.flush()] == ["I'm a simple offline assistant,", "so I can't answer that one.",
                                        "I can tell you the time, or the date."]


def test_heard_part_never_claims_a_cut_word() -> None:
    sentence = "It lived in a quiet house by the sea."
    assert heard_part(sentence, 1.0) == sentence
    assert heard_part(sentence, 0.0) == ""
    assert heard_part(sentence, 0.05) == ""
    assert heard_part(sentence, 0.5) == "It lived in a"  # 18.5 of 37 chars: "quiet" ends at 19 → not heard
    for step in range(101):
        part = heard_part(sentence, step / 100)
        assert sentence.startswith(part) and len(part) <= step / 100 * len(sentence) + 1e-9


def test_speech_heard_counts_whole_sentences_and_the_played_part() -> None:
    speech = Speech()
    for text, frames in (("First one.", 50), ("Second sentence is here.", 100), ("Third.", 30)):
        index = speech.add(text)
        speech.sentences[index].frames = frames
        speech.sentences[index].complete = True
    speech.sentences[0].sent, speech.sentences[1].sent = 50, 60
    assert speech.heard(10) == "First one. Second"  # 50 of #2's 100 frames played: 12 of its 24 chars
    assert speech.heard(60) == "First one."
    assert speech.heard(110) == ""
    speech.sentences[1].sent, speech.sentences[2].sent = 100, 30
    assert speech.heard(0) == "First one. Second sentence is here. Third."


def test_speech_estimates_an_unfinished_sentence_conservatively() -> None:
    speech = Speech()
    index = speech.add("A fairly long sentence whose synthesis has not finished yet.")
    speech.sentences[index].frames = speech.sentences[index].sent = 20  # 0.4 s of ~4.4 s
    assert speech.heard(0) == "A"


async def test_playout_paces_fans_out_and_flushes(autojump_clock: object) -> None:
    playout = Playout(lead=5)
    a, b = AudioSender(50), AudioSender(50)
    playout.attach("a", a)
    playout.attach("b", b)
    speech = Speech()
    index = speech.add("Hello.")
    frame = np.ones(960, dtype=np.int16)
    firsts: list[float] = []

    async def consume() -> None:  # what aiortc does: take one frame per 20 ms
        while True:
            await trio.sleep(0.02)
            for sender in (a, b):
                if sender.queued:
                    sender._drain.receive_nowait()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(consume)
        for _ in range(20):
            await playout.send(frame, speech, index, firsts.append)
            assert a.queued <= 5 and b.queued <= 5
        assert speech.sentences[index].sent == 20 and len(firsts) == 1
        unplayed = playout.queued()
        assert unplayed > 0
        assert playout.flush() == unplayed and a.queued == b.queued == 0
        playout.detach("a", a)
        assert list(playout.outputs) == ["b"]
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize(("options", "field"), [
    ({"persona": "x" * 4001}, "persona"),
    ({"persona": 5}, "persona"),
    ({"greeting": "x" * 501}, "greeting"),
    ({"voice": "bad voice!"}, "voice"),
    ({"language": "english"}, "language"),
    ({"langauge": "en"}, "langauge"),
])
def test_options_are_validated_with_the_field(options: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        AssistantOptions.from_options(options)
    assert (info.value.code, info.value.field) == ("invalid_options", field)


def test_option_defaults() -> None:
    default = AssistantOptions.from_options({})
    assert (default.persona, default.greeting, default.voice, default.language) == (None, DEFAULT_GREETING, None,
                                                                                    "en")
    quiet = AssistantOptions.from_options({"greeting": "", "persona": "x" * 4000, "language": "en-US"})
    assert quiet.greeting == "" and quiet.persona == "x" * 4000 and quiet.language == "en-US"


def test_memory_is_bounded_and_analytics_summarise() -> None:
    memory = AssistantMemory(max_jobs=2)
    memory.job("a").analytics.turns = 1
    memory.job("b")
    memory.job("a")
    memory.job("c")  # evicts b, the least recently used
    assert set(memory.snapshot()) == {"a", "c"}
    analytics = AssistantAnalytics()
    for ms in range(1, 101):
        analytics.observe("voice_to_voice", ms / 1000, "local")
    snap = analytics.snapshot()
    assert snap["latency"]["voice_to_voice"] == {"count": 100, "p50": 0.05, "p95": 0.095}
    assert snap["latency_by_provider"]["voice_to_voice:local"]["count"] == 100
    assert percentile([], 50) is None


def test_silero_vad_hears_espeak_speech_and_not_silence() -> None:
    vad, down = SileroVad(), Downsampler()
    samples = np.concatenate([np.zeros(48_000, np.int16), synthesize("Hello there, how are you today?"),
                              np.zeros(48_000, np.int16)])
    stereo = np.repeat(samples, 2).reshape(1, -1)
    frame = av.AudioFrame.from_ndarray(stereo, format="s16", layout="stereo")
    frame.sample_rate = 48_000
    pcm = down.convert(frame)
    assert abs(len(pcm) - len(samples) / 3) < 400
    probs = vad.probabilities(pcm[: len(pcm) // CHUNK_SAMPLES * CHUNK_SAMPLES])
    per_second = 16_000 / CHUNK_SAMPLES
    silence = probs[: int(0.9 * per_second)]
    speech_part = probs[int(1.1 * per_second): int(1.1 * per_second) + 20]
    assert max(silence) < 0.2 and np.mean(np.array(speech_part) > 0.5) > 0.6


def test_bot_add_carries_a_full_persona_in_any_script() -> None:
    request = BotAdd.model_validate({"type": "bot.add", "bot": "assistant", "persona": "日本" * 2000,
                                     "greeting": "é" * 500})
    options = AssistantOptions.from_options(request.options)
    assert options.persona == "日本" * 2000 and options.greeting == "é" * 500
    with pytest.raises(pydantic.ValidationError):
        BotAdd.model_validate({"type": "bot.add", "bot": "assistant", "persona": "😀" * 5001})
