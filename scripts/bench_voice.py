#!/usr/bin/env python3
"""Voice assistant benchmark: N real aiortc callers, each talking to its own assistant through ``voicebot serve``.

The measured side is a ``voicebot serve`` subprocess (hub + in-process worker running the assistants); this process
plays the callers (one lobby each, ``HumanPeer`` over real UDP on loopback) who speak espeak-synthesised test
sentences and wait for each answer. Two stacks:

- ``offline``: the defaults (whisper tiny.en, the local responder, piper then espeak-ng);
- ``fake``: the ``openai`` provider for STT, LLM and TTS against ``voicebot.testing``'s scripted OpenAI-compatible
  server in this process, with set latencies (``--fake-latency``, default 0: pure pipeline overhead).

Per N it reports: voice-to-voice p50/p95 as the bot measures it (end of speech → first bot audio frame sent, from
``admin.stats``) and as the caller hears it (end of the caller's audio → first loud frame received: adds the
network/jitter buffers), STT word error rate of the user captions against the sentences, CPU of the serve process
per conversation (% of one core), turns answered, and whether N stayed real time (every turn answered and the
caller-side voice-to-voice p95 ≤ ``--realtime-p95`` seconds), and the machine's 1-minute load average (the
figures are only comparable on an otherwise idle machine). A barge-in run (fake stack, N=1) measures how soon
the bot's audio stops after the caller starts talking over it. Table on stdout, JSON with ``--json FILE|-``.

    .venv/bin/python scripts/bench_voice.py --stack offline fake --n 1 2 4 --turns 4
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import numpy as np
import trio

from voicebot.bots import HumanPeer, synthesize
from voicebot.bots.assistant import percentile as pct
from voicebot.client import Client, connect
from voicebot.media import MediaConfig, frame_to_mono, open_media_loop
from voicebot.testing import SPEECH_SENTENCES, open_fake_openai, serve_process, word_error_rate

LOOPBACK = MediaConfig(allow_loopback=True)
ADMIN = "bench-admin-token"
SENTENCES = SPEECH_SENTENCES[:8]
LONG_REPLY = " ".join(["This is a long answer that keeps going so that you can interrupt it."] * 6)


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` in seconds (from /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Caller:
    """One person: a hub client + HumanPeer in their own lobby with one assistant; logs loud frames received."""

    def __init__(self, client: Client, peer: HumanPeer) -> None:
        self.client = client
        self.peer = peer
        self.bot = ""
        self.loud: list[float] = []
        self.loud_wall: list[float] = []

    async def record(self) -> None:
        track = await self.peer.track_from(self.bot, timeout=60)
        async for frame in track.frames:
            samples = frame_to_mono(frame)
            if float(np.sqrt(np.mean(np.square(samples)))) > 0.01:
                self.loud.append(trio.current_time())
                self.loud_wall.append(time.time())

    def _seen(self) -> set[int]:
        return {id(e) for e in self.peer.events}

    async def wait(self, seen: set[int], predicate: Any, timeout: float) -> dict[str, Any]:
        found: list[dict[str, Any]] = []

        def check() -> bool:
            found[:] = [e for e in self.peer.events if id(e) not in seen and predicate(e)]
            return bool(found)

        await self.peer.wait_for(check, timeout=timeout)
        return found[0]

    async def say(self, text: str) -> float:
        """Speak ``text``; returns the Trio time its last sample plays out of the caller's queue."""
        audio = np.concatenate([synthesize(text), np.zeros(4800, dtype=np.int16)])
        return await self.peer.say(self.bot, audio, timeout=60) - 0.1  # minus the trailing 0.1 s of silence

    async def turn(self, text: str, timeout: float = 30.0) -> dict[str, Any]:
        seen = self._seen()
        end = await self.say(text)
        user = await self.wait(seen, lambda e: e.get("type") == "caption" and e["role"] == "user", timeout)
        answer = await self.wait(seen, lambda e: e.get("type") == "caption" and e["role"] == "assistant"
                                 and e["final"], timeout)
        await self.wait(seen, lambda e: e.get("type") == "bot.status" and e["state"] == "listening"
                        and e["ts"] >= answer["ts"], timeout)
        heard = [t for t in self.loud if t > end]
        return {"sentence": text, "transcript": user["text"], "answer": answer["text"],
                "v2v_heard": (heard[0] - end) if heard else None}


@asynccontextmanager
async def callers(url: str, n: int, options: dict[str, Any]) -> Any:
    async with AsyncExitStack() as stack:
        nursery = await stack.enter_async_context(trio.open_nursery())
        result: list[Caller] = []
        for i in range(n):
            client = await stack.enter_async_context(connect(url))
            await client.hello(f"caller{i}")
            lobby = await client.create_lobby(f"bench {i}")
            await client.join(lobby["id"])
            peer = HumanPeer(client, LOOPBACK)
            nursery.start_soon(peer.run)
            caller = Caller(client, peer)
            caller.bot = (await client.request("bot.add", bot="assistant", greeting="", timeout=60,
                                                **options))["peer_id"]
            await peer.track_from(caller.bot, timeout=60)
            nursery.start_soon(caller.record)
            result.append(caller)
        await trio.sleep(2.0)  # every assistant has loaded its models (warm-up) before measuring
        yield result
        nursery.cancel_scope.cancel()


async def admin_stats(url: str) -> dict[str, Any]:
    async with connect(url) as admin:
        await admin.hello("bench-admin", admin_token=ADMIN)
        reply = await admin.request("admin.stats")
        return dict(reply["stats"].get("assistants", {}))


def serve_args(stack: str, n: int, fake_url: str | None) -> list[str]:
    args = ["--db", ":memory:", "--admin-token", ADMIN, "--media-allow-loopback", "true",
            "--local-worker", str(max(n, 1)), "--log-level", "warning"]
    if stack == "fake":
        assert fake_url is not None
        args += ["--stt", "openai", "--llm", "openai", "--tts", "openai", "--openai-base-url", fake_url]
    return args


async def run_n(stack: str, n: int, turns: int, fake_url: str | None, realtime_p95: float) -> dict[str, Any]:
    with serve_process(*serve_args(stack, n, fake_url), start_timeout=60) as (proc, url):
        async with callers(url, n, {}) as group:
            cpu0, wall0 = cpu_seconds(proc.pid), time.perf_counter()
            rows: list[dict[str, Any]] = []
            failures = 0

            async def talk(index: int, caller: Caller) -> None:
                nonlocal failures
                await trio.sleep(index * 0.37)  # callers do not start in lockstep
                for t in range(turns):
                    try:
                        rows.append(await caller.turn(SENTENCES[(index + t) % len(SENTENCES)]))
                    except trio.TooSlowError:
                        failures += 1
                    await trio.sleep(0.5)

            async with trio.open_nursery() as nursery:
                for index, caller in enumerate(group):
                    nursery.start_soon(talk, index, caller)
            cpu = (cpu_seconds(proc.pid) - cpu0) / (time.perf_counter() - wall0)
            stats = await admin_stats(url)
    bot_v2v = [b["latency"]["voice_to_voice"]["p50"] for b in stats.values() if "voice_to_voice" in b["latency"]]
    bot_v2v95 = [b["latency"]["voice_to_voice"]["p95"] for b in stats.values() if "voice_to_voice" in b["latency"]]
    stt = [b["latency"]["stt"]["p50"] for b in stats.values() if "stt" in b["latency"]]
    stages = {stage: statistics.median(values) for stage in ("stt", "llm_first_token", "tts_first_audio",
                                                             "voice_to_voice")
              if (values := [b["latency"][stage]["p50"] for b in stats.values() if stage in b["latency"]])}
    speculative = {key: sum(b.get("speculative", {}).get(key, 0) for b in stats.values())
                   for key in ("prepared", "used", "withdrawn")}
    heard = [r["v2v_heard"] for r in rows if r["v2v_heard"] is not None]
    errors = words = 0
    for r in rows:
        e, w = word_error_rate(r["sentence"], r["transcript"])
        errors, words = errors + e, words + w
    p95 = pct(heard, 95)
    return {
        "stack": stack, "n": n, "turns": len(rows), "unanswered": failures, "load_average": os.getloadavg()[0],
        "v2v_bot_p50_s": statistics.median(bot_v2v) if bot_v2v else None,
        "v2v_bot_p95_s": max(bot_v2v95) if bot_v2v95 else None,
        "v2v_heard_p50_s": pct(heard, 50), "v2v_heard_p95_s": p95,
        "stt_p50_s": statistics.median(stt) if stt else None,
        "stage_p50_s": stages, "speculative_replies": speculative,
        "wer": errors / words if words else None,
        "cpu_per_conversation_pct": 100 * cpu / n,
        "realtime": failures == 0 and p95 is not None and p95 <= realtime_p95,
        "rows": rows,
    }


async def barge_in(fake_url: str) -> dict[str, Any]:
    """Caller interrupts a long answer 1.5 s into it; when does the bot's audio stop?"""
    with serve_process(*serve_args("fake", 1, fake_url), start_timeout=60) as (_proc, url):
        async with callers(url, 1, {}) as (caller,):
            seen = caller._seen()
            await caller.say("Tell me something long please.")
            await caller.wait(seen, lambda e: e.get("type") == "bot.status" and e["state"] == "speaking", 30)
            await trio.sleep(1.5)
            audio = np.concatenate([synthesize("Stop, that is enough, thank you."), np.zeros(4800, np.int16)])
            ends = await caller.peer.say(caller.bot, audio, timeout=30)
            started = ends - len(audio) / 48_000
            await caller.wait(seen, lambda e: e.get("type") == "caption" and e["role"] == "assistant"
                              and e["final"], 30)
            await trio.sleep(0.5)
            stats = await admin_stats(url)
            bot = next(iter(stats.values()))
            flushed_wall = bot["last_barge_in_wall"]
    # The bot answers the interruption later: only the loud run that was playing when the caller spoke counts
    # (it ends at the first gap of more than 100 ms).
    stop = _end_of_run(caller.loud, started) - started
    heard = (_end_of_run(caller.loud_wall, flushed_wall - 0.5) - flushed_wall) if flushed_wall else None
    return {"speech_start_to_silence_s": stop, "flush_to_silence_heard_s": heard,
            "bot_threshold_to_flush_s": bot["barge_in_flush"]["p50"], "interruptions": bot["interruptions"]}


def _end_of_run(times: list[float], start: float) -> float:
    """The last time of the run of loud frames going on at ``start`` (frames 20 ms apart; a >100 ms gap ends it)."""
    last = start
    for t in sorted(t for t in times if t >= start):
        if t - last > 0.1:
            break
        last = t
    return last


def fmt(value: Any, unit: str = "s") -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if unit == "s":
        return f"{value * 1000:.0f} ms"
    if unit == "%":
        return f"{value:.1%}" if value <= 1 else f"{value:.0f} %"
    return str(value)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {"vad_silence_s": 0.5, "load_average_at_start": os.getloadavg(), "runs": []}
    async with open_media_loop(), open_fake_openai(
            reply="Sure. Here is a short answer for you.", transcript="hello there",
            first_token=args.fake_latency, first_audio=args.fake_latency, stt_delay=args.fake_latency) as fake:
        for stack in args.stack:  # (the fake's STT answers a fixed text: WER is measured on the offline stack)
            for n in args.n:
                run = await run_n(stack, n, args.turns, fake.base_url, args.realtime_p95)
                results["runs"].append(run)
                print_row(run)
                if not run["realtime"]:
                    break
        if "fake" in args.stack and not args.skip_barge_in:
            fake.reply = LONG_REPLY
            results["barge_in"] = await barge_in(fake.base_url)
    return results


def print_header() -> None:
    print(f"{'stack':8} {'N':>3} {'turns':>5} {'v2v bot p50':>12} {'p95':>8} {'v2v heard p50':>14} {'p95':>8} "
          f"{'STT p50':>8} {'WER':>6} {'CPU/conv':>9} {'real time':>9} {'load':>5}")


def print_row(r: dict[str, Any]) -> None:
    print(f"{r['stack']:8} {r['n']:>3} {r['turns']:>5} {fmt(r['v2v_bot_p50_s']):>12} {fmt(r['v2v_bot_p95_s']):>8} "
          f"{fmt(r['v2v_heard_p50_s']):>14} {fmt(r['v2v_heard_p95_s']):>8} {fmt(r['stt_p50_s']):>8} "
          f"{fmt(r['wer'], '%') if r['stack'] == 'offline' else '-':>6} {r['cpu_per_conversation_pct']:>7.0f} % "
          f"{fmt(r['realtime']):>9} {r['load_average']:>5.1f}", flush=True)
    stages = ", ".join(f"{stage} {fmt(value)}" for stage, value in r.get("stage_p50_s", {}).items())
    spec = r.get("speculative_replies", {})
    print(f"{'':8} stage p50 (bot side): {stages}; speculative replies prepared {spec.get('prepared', 0)}, "
          f"used {spec.get('used', 0)}, withdrawn {spec.get('withdrawn', 0)}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stack", nargs="+", choices=("offline", "fake"), default=["offline", "fake"])
    parser.add_argument("--n", nargs="+", type=int, default=[1, 2, 4])
    parser.add_argument("--turns", type=int, default=4, help="turns per caller")
    parser.add_argument("--fake-latency", type=float, default=0.0,
                        help="seconds the fake server waits before the first token / audio / transcript")
    parser.add_argument("--realtime-p95", type=float, default=2.0,
                        help="caller-side voice-to-voice p95 (s) up to which N counts as real time")
    parser.add_argument("--skip-barge-in", action="store_true")
    parser.add_argument("--json", help="write the results as JSON to FILE ('-' for stdout)")
    args = parser.parse_args()
    print_header()
    results = trio.run(main_async, args)
    if "barge_in" in results:
        b = results["barge_in"]
        print(f"barge-in: caller hears the bot stop {fmt(b['speech_start_to_silence_s'])} after starting to talk; "
              f"bot-side threshold → flush {fmt(b['bot_threshold_to_flush_s'])}; flush → last bot audio heard "
              f"{fmt(b['flush_to_silence_heard_s'])} (in flight + the caller's jitter buffer)")
    if args.json:
        text = json.dumps(results, indent=2)
        if args.json == "-":
            print(text)
        else:
            with open(args.json, "w") as f:
                f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
