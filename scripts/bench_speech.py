#!/usr/bin/env python3
"""Offline speech benchmark: synthesise test sentences with piper and espeak-ng, transcribe them with whisper
tiny.en, and report WER and timings (table on stdout, JSON with ``--json FILE`` or ``--json -``).

Timings per utterance: TTS time to the first chunk and in total, the audio's length, real-time factor, and the
STT time (from the end of the audio to the transcript, i.e. what a user waits for after the end of speech).
Models are loaded (and timed) before the measured runs.

    .venv/bin/python scripts/bench_speech.py [--sentences N] [--voices piper,espeak] [--json -]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from typing import Any

import numpy as np
import trio

from voicebot.providers import STT_SAMPLE_RATE, ProviderConfig, Providers, resample_mono
from voicebot.testing import SPEECH_SENTENCES, word_error_rate

SENTENCES = list(SPEECH_SENTENCES)


async def measure(voice: str, sentences: list[str]) -> dict[str, Any]:
    """Synthesise each sentence with ``voice`` and transcribe it; per-utterance rows and a summary."""
    config = ProviderConfig(stt="whisper", llm="responder", tts=voice, stt_timeout=60.0, tts_timeout=60.0)
    rows: list[dict[str, Any]] = []
    async with Providers(config) as providers:
        load_started = time.perf_counter()
        await providers.warm_up()
        load = time.perf_counter() - load_started
        errors = words = 0
        for sentence in sentences:
            started = time.perf_counter()
            first: float | None = None
            chunks = []
            async with providers.synthesize(sentence) as audio:
                async for chunk in audio:
                    first = first if first is not None else time.perf_counter() - started
                    chunks.append(chunk)
            synth = time.perf_counter() - started
            pcm = np.concatenate(chunks)
            seconds = pcm.size / audio.sample_rate
            pcm16 = await trio.to_thread.run_sync(resample_mono, pcm, audio.sample_rate, STT_SAMPLE_RATE)
            stt_started = time.perf_counter()
            transcript = await providers.transcribe(pcm16)
            stt = time.perf_counter() - stt_started
            e, n = word_error_rate(sentence, transcript.text)
            errors, words = errors + e, words + n
            rows.append({"sentence": sentence, "transcript": transcript.text, "errors": e, "words": n,
                         "audio_s": round(seconds, 3), "tts_first_s": round(first or 0.0, 4),
                         "tts_total_s": round(synth, 4), "rtf": round(synth / seconds, 4) if seconds else None,
                         "stt_s": round(stt, 3)})
    return {
        "voice": voice, "model_load_s": round(load, 2), "utterances": len(rows), "wer": round(errors / words, 4),
        "errors": errors, "words": words,
        "tts_first_p50_s": round(statistics.median(r["tts_first_s"] for r in rows), 4),
        "rtf_p50": round(statistics.median(r["rtf"] for r in rows), 4),
        "stt_p50_s": round(statistics.median(r["stt_s"] for r in rows), 3),
        "stt_max_s": round(max(r["stt_s"] for r in rows), 3),
        "audio_p50_s": round(statistics.median(r["audio_s"] for r in rows), 2),
        "rows": rows,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sentences", type=int, default=len(SENTENCES), help="how many test sentences")
    parser.add_argument("--voices", default="piper,espeak", help="TTS providers to test (comma-separated)")
    parser.add_argument("--json", help="write the JSON report to this file ('-' for stdout, table then to stderr)")
    args = parser.parse_args()
    sentences = SENTENCES[: max(1, args.sentences)]
    results = [trio.run(measure, voice, sentences) for voice in args.voices.split(",")]
    out = sys.stderr if args.json == "-" else sys.stdout
    print(f"{'voice':8} {'utt':>4} {'WER':>7} {'tts first p50':>14} {'RTF p50':>8} {'STT p50':>8} {'STT max':>8} "
          f"{'audio p50':>10} {'load':>6}", file=out)
    for r in results:
        print(f"{r['voice']:8} {r['utterances']:>4} {r['wer']:>7.2%} {r['tts_first_p50_s']:>13.3f}s "
              f"{r['rtf_p50']:>8.3f} {r['stt_p50_s']:>7.3f}s {r['stt_max_s']:>7.3f}s {r['audio_p50_s']:>9.2f}s "
              f"{r['model_load_s']:>5.1f}s", file=out)
        for row in r["rows"]:
            if row["errors"]:
                print(f"  {r['voice']}: {row['sentence']!r} -> {row['transcript']!r}", file=out)
    report = {"benchmark": "speech", "results": results}
    if args.json == "-":
        print(json.dumps(report, indent=2))
    elif args.json:
        with open(args.json, "w") as handle:
            json.dump(report, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
