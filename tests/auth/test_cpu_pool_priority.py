"""CPU pools run below the priority of the thread that starts them, whatever that thread's own nice value is."""

from __future__ import annotations

import os
import threading

import pytest
import trio

from voicebot._cpu import LOW_PRIORITY_NICE, CpuPool


def _nice() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


@pytest.mark.parametrize("start_nice", [0, 5, 12, 15])
def test_pool_threads_run_below_their_starter(start_nice: int) -> None:
    """A server started under ``nice -n 15`` must not get pool threads at an absolute nice 10 (above its loop)."""
    seen: dict[str, int] = {}

    def starter() -> None:
        own = _nice()
        if own < start_nice:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), start_nice)  # lowering is always allowed
        seen["starter"] = _nice()

        async def main() -> None:
            seen["pool"] = await CpuPool("test-nice", 1).run(_nice)

        trio.run(main)

    thread = threading.Thread(target=starter)
    thread.start()
    thread.join(30)
    starter_nice = seen["starter"]
    assert seen["pool"] == min(19, starter_nice + LOW_PRIORITY_NICE)
    if starter_nice < 19:
        assert seen["pool"] > starter_nice  # strictly lower priority than the event loop's thread
