#!/usr/bin/env python3
"""Web client benchmark in real headless Chromium against a real ``voicebot serve`` (which serves the page).

Measures, from the page's own marks (``performance.now()`` since navigation start, see ``voicebot.state.marks``):

- **page load → joined**: an invite link with ``join=1`` (name, lobby) until ``lobby.joined`` is applied;
- **join → first remote audio**: until the page first hears another person above -48 dBFS (tone injected as
  that person's microphone), and the same for the echo bot (its own tone coming back);
- **the page's CPU with 3 peers and 1 bot**: the measured page runs alone in its own Chromium (so every process
  of that browser — browser, renderer, audio and network services — is the page's cost; from CDP
  ``SystemInfo.getProcessInfo``), in a lobby with 3 other people (pages in a second Chromium) and an echo bot,
  all sending tones, over ``--window`` seconds. Reported as % of one core, total and by process type.

Usage: ``.venv/bin/python scripts/bench_web.py [--runs 5] [--window 10] [--json out.json]``. Prints a table, then
the JSON. Numbers depend on the machine's other load (the load average is printed with them).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from voicebot.client import connect
from voicebot.testing import serve_process

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream", "--allow-loopback-in-peer-connection",
    "--autoplay-policy=no-user-gesture-required", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic", "--disable-dev-shm-usage",
]
WAIT_MS = 20_000


def _create_lobby(ws: str, name: str) -> str:
    import trio  # noqa: PLC0415

    async def main() -> str:
        async with connect(ws) as client:
            await client.hello("bench")
            lobby = await client.create_lobby(name)
            return str(lobby["id"])

    return trio.run(main)


def _open(browser: Any, base: str, **params: Any) -> Any:
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{base}/?{urlencode({k: str(v) for k, v in params.items()})}")
    return page


def _marks(page: Any) -> dict[str, float]:
    marks: dict[str, float] = page.evaluate("voicebot.state.marks")
    return marks


def _wait_audio(page: Any, key: str = "firstRemoteAudio") -> dict[str, float]:
    page.wait_for_function(f"voicebot.state.marks.{key} !== undefined", timeout=WAIT_MS, polling=20)
    return _marks(page)


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def measure_join(browser: Any, base: str, ws: str, runs: int) -> dict[str, Any]:
    """Load → joined and join → first remote audio (from a person; from the echo bot)."""
    load_join, join_person, join_bot = [], [], []
    for i in range(runs):
        lobby = _create_lobby(ws, f"join-{i}")
        host = _open(browser, base, name=f"host{i}", lobby=lobby, join=1, fake_tone=440)
        host.wait_for_function("voicebot.state.lobbyId !== null", timeout=WAIT_MS)
        guest = _open(browser, base, name=f"guest{i}", lobby=lobby, join=1, fake_tone=660)
        marks = _wait_audio(guest)
        load_join.append(marks["joined"])
        join_person.append(marks["firstRemoteAudio"] - marks["joined"])
        # The echo bot: a third page alone in a fresh lobby adds it and waits for its own tone.
        guest.context.close()
        host.context.close()
        solo_lobby = _create_lobby(ws, f"echo-{i}")
        solo = _open(browser, base, name=f"solo{i}", lobby=solo_lobby, join=1, fake_tone=523)
        solo.wait_for_function("voicebot.state.lobbyId !== null", timeout=WAIT_MS)
        added = solo.evaluate("performance.now()")
        solo.select_option("#bot-select", "echo")
        solo.click("#bot-add")
        marks = _wait_audio(solo)
        join_bot.append(marks["firstRemoteAudio"] - added)
        solo.context.close()
    return {
        "runs": runs,
        "load_to_joined_ms": {"p50": statistics.median(load_join), "max": max(load_join), "all": load_join},
        "join_to_first_remote_audio_ms": {"p50": statistics.median(join_person), "max": max(join_person),
                                          "all": join_person},
        "bot_add_to_first_bot_audio_ms": {"p50": statistics.median(join_bot), "max": max(join_bot), "all": join_bot},
    }


def _cpu(cdp: Any) -> dict[str, float]:
    """CPU seconds used so far by each process type of one browser."""
    info = cdp.send("SystemInfo.getProcessInfo")
    out: dict[str, float] = {}
    for proc in info["processInfo"]:
        out[proc["type"]] = out.get(proc["type"], 0.0) + float(proc["cpuTime"])
    return out


def measure_cpu(pw: Any, browser: Any, base: str, ws: str, window: float) -> dict[str, Any]:
    """The measured page in its own Chromium, with 3 other people and an echo bot in its lobby."""
    lobby = _create_lobby(ws, "cpu")
    others = [_open(browser, base, name=f"peer{i}", lobby=lobby, join=1, fake_tone=500 + 100 * i) for i in range(3)]
    for page in others:
        page.wait_for_function("voicebot.state.lobbyId !== null", timeout=WAIT_MS)
    measured_browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
    try:
        page = _open(measured_browser, base, name="measured", lobby=lobby, join=1, fake_tone=440)
        page.wait_for_function("voicebot.state.lobbyId !== null", timeout=WAIT_MS)
        page.select_option("#bot-select", "echo")
        page.click("#bot-add")
        page.wait_for_function(
            "voicebot.state.members.length === 4 && voicebot.state.members.every((m) => m.link === 'connected')",
            timeout=WAIT_MS, polling=100)
        page.wait_for_function("voicebot.state.members.every((m) => (voicebot.level(m.peer_id) ?? 0) > 0.2)",
                               timeout=WAIT_MS, polling=100)  # everyone, the bot included, is heard
        heard = page.evaluate("voicebot.state.members.map((m) => [m.kind, voicebot.level(m.peer_id)])")
        time.sleep(2.0)  # settle: jitter buffers, meters
        cdp = measured_browser.new_browser_cdp_session()
        before, t0 = _cpu(cdp), time.monotonic()
        time.sleep(window)
        after, t1 = _cpu(cdp), time.monotonic()
        elapsed = t1 - t0
        by_type = {k: round(100 * (after.get(k, 0.0) - before.get(k, 0.0)) / elapsed, 1) for k in after}
        return {"window_s": round(elapsed, 1), "peers": 3, "bots": 1, "cpu_percent_of_one_core": round(sum(
            by_type.values()), 1), "by_process_type": by_type, "levels_heard": heard}
    finally:
        measured_browser.close()
        for other in others:
            other.context.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="join measurements (default 5)")
    parser.add_argument("--window", type=float, default=10.0, help="CPU measurement window in seconds")
    parser.add_argument("--json", help="also write the JSON result to this file")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright  # noqa: PLC0415

    with serve_process("--db", ":memory:", "--media-allow-loopback", "true") as (_proc, ws), \
            sync_playwright() as pw:
        base = ws.replace("ws://", "http://", 1).removesuffix("/ws")
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            joins = measure_join(browser, base, ws, args.runs)
            cpu = measure_cpu(pw, browser, base, ws, args.window)
        finally:
            browser.close()
    result = {"join": joins, "cpu": cpu, "loadavg": os.getloadavg(), "cores": os.cpu_count()}
    j, c = joins, cpu
    print(f"{'measure':44} {'p50':>9} {'max':>9}")
    for label, key in (("page load → joined (invite link, join=1)", "load_to_joined_ms"),
                       ("join → first remote audio (a person)", "join_to_first_remote_audio_ms"),
                       ("bot.add click → first audio from echo bot", "bot_add_to_first_bot_audio_ms")):
        print(f"{label:44} {j[key]['p50']:>7.0f}ms {j[key]['max']:>7.0f}ms")
    print(f"page CPU, 3 peers + 1 bot ({c['window_s']} s): {c['cpu_percent_of_one_core']} % of one core "
          f"({', '.join(f'{k} {v} %' for k, v in sorted(c['by_process_type'].items()))})")
    print(f"load average {result['loadavg']}")
    print(json.dumps(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
