"""Journal format, byte-identical replays under MockClock, statistics and replay command lines."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import trio
import trio.testing

from voicebot import faults
from voicebot.errors import PersistenceError

WORKLOAD_PLAN = faults.Plan(
    name="workload",
    rules=[faults.Rule(point="store.write", every=7, fault=faults.raises(sqlite3.OperationalError, "locked"))],
    random=[
        faults.RandomRule(
            point="ws.*",
            p=1.0,
            q=0.3,
            faults=[
                faults.WeightedFault(faults.drop(), 2),
                faults.duplicate(),
                faults.corrupt(),
                faults.delay(0.25),
                faults.raises(trio.BrokenResourceError),
            ],
        ),
        faults.RandomRule(point="bot.*", p=0.7, q=0.2, faults=[faults.delay(0.5), faults.raises(PersistenceError)]),
    ],
)


async def _worker(index: int, rounds: int, processed: list[str]) -> None:
    # Unique wake-up times per task: Trio shuffles tasks woken in the same batch, so equal deadlines would make
    # the global hit order (and therefore the journal) depend on Trio's private scheduler randomness.
    start = trio.current_time()
    for k in range(rounds):
        await trio.sleep_until(start + 1.0 + k + index * 0.01)
        try:
            for msg in faults.message("ws.recv", json.dumps({"from": index, "seq": k}), conn=f"c{index}"):
                processed.append(msg)
            await faults.point("ws.send", conn=f"c{index}")
            await faults.point("bot.call", conn=f"c{index}")
            await faults.point("store.write", key=f"session:{index}")
        except Exception as exc:
            faults.record_error(exc, conn=f"c{index}")
        faults.record("session", conn=f"c{index}", seq=k, state="tick")


async def run_workload(seed: int, tasks: int = 4, rounds: int = 25) -> tuple[str, dict[str, object], list[str]]:
    processed: list[str] = []
    with faults.activate(WORKLOAD_PLAN, seed=seed, plan_path="plans/workload.toml") as run:
        async with trio.open_nursery() as nursery:
            for index in range(tasks):
                nursery.start_soon(_worker, index, rounds, processed)
    return run.journal.getvalue(), run.stats(), processed


def fresh_run(seed: int, tasks: int = 4, rounds: int = 25) -> tuple[str, dict[str, object], list[str]]:
    """One workload in its own ``trio.run`` with a fresh autojumping MockClock (virtual time starts at 0)."""
    return trio.run(run_workload, seed, tasks, rounds, clock=trio.testing.MockClock(autojump_threshold=0))


def test_journal_is_byte_identical_for_the_same_seed() -> None:
    first, stats, processed = fresh_run(seed=1234)
    second, stats2, processed2 = fresh_run(seed=1234)
    assert faults.first_divergence(first, second) is None
    assert first.encode() == second.encode()
    assert stats == stats2
    assert processed == processed2
    kinds = {line.split("\t")[1] for line in first.splitlines()}
    assert {"fault.run", "fault.activation", "fault", "error", "session"} <= kinds
    assert isinstance(stats["total_injections"], int)
    assert stats["total_injections"] > 10
    third, _, _ = fresh_run(seed=1235)
    assert third != first
    assert faults.first_divergence(first, third) is not None


def test_stats_shape_and_replay() -> None:
    _, stats, _ = fresh_run(seed=9, tasks=2, rounds=14)
    assert stats["seed"] == 9
    assert stats["plan"] == "workload"
    hits = stats["hits"]
    assert isinstance(hits, dict)
    assert sorted(hits) == ["bot.call", "store.write", "ws.recv", "ws.send"]
    assert hits["ws.recv"] == 28  # first point of every round; raised faults skip the later points of a round
    assert hits["ws.recv"] >= hits["ws.send"] >= hits["bot.call"] >= hits["store.write"]
    assert stats["injections"]["store.write"] == {"raise": hits["store.write"] // 7}  # type: ignore[index]
    assert stats["replay"] == "voicebot chaos --seed 9 --plan plans/workload.toml"
    json.dumps(stats)  # JSON-ready


async def test_line_format_and_virtual_time(autojump_clock: trio.testing.MockClock) -> None:
    journal = faults.Journal()
    await trio.sleep(1.5)
    journal.record("breaker", name="store", to="open", **{"from": "closed"})
    journal.record("session", b=2, a=[1, {"y": None, "x": 1.5}], raw=b"\x01", kind=faults.FaultKind.DROP)
    assert journal.lines() == [
        f"{trio.current_time():.6f}\tbreaker\t" + '{"from":"closed","name":"store","to":"open"}\n',
        f"{trio.current_time():.6f}\tsession\t"
        + '{"a":[1,{"x":1.5,"y":null}],"b":2,"kind":"drop","raw":{"bytes":"01"}}\n',
    ]
    assert journal.entries()[0] == (trio.current_time(), "breaker", {"from": "closed", "name": "store", "to": "open"})
    assert len(journal) == 2


def test_time_outside_trio_is_zero_and_dump(tmp_path: Path) -> None:
    journal = faults.Journal()
    journal.record("x", value=float("nan"), obj=object(), exc=OSError("no"))
    (line,) = journal.lines()
    assert line.startswith("0.000000\tx\t{")
    assert '"obj":"<builtins.object>"' in line
    assert '"value":"nan"' in line
    journal.dump(tmp_path / "j.log")
    assert (tmp_path / "j.log").read_bytes() == journal.getvalue().encode()
    with pytest.raises(ValueError, match="invalid journal kind"):
        journal.record("bad\tkind")


def test_first_divergence_messages() -> None:
    assert faults.first_divergence("a\nb\n", "a\nb\n") is None
    assert faults.first_divergence("a\nb\n", "a\nc\n") == "line 2 differs:\n- b\n+ c"
    assert faults.first_divergence("a\nb\n", "a\n") == "line 2 missing from actual:\n- b"
    assert faults.first_divergence("a\n", "a\nb\n") == "line 2 extra in actual:\n+ b"


async def test_record_error_classifies_and_passthrough_is_not_classified() -> None:
    with faults.activate() as run:
        faults.record_error(sqlite3.OperationalError("database is locked"), where="store")
        faults.record_error(ExceptionGroup("g", [ValueError("x"), trio.BrokenResourceError()]))
        faults.record_error(KeyboardInterrupt())
    entries = run.journal.entries()
    assert entries[1][1:] == (
        "error",
        {
            "category": "persistence",
            "code": "database_busy",
            "exceptions": ["sqlite3.OperationalError"],
            "severity": "medium",
            "where": "store",
        },
    )
    assert entries[2][2]["exceptions"] == ["builtins.ValueError", "trio.BrokenResourceError"]
    assert entries[3][1:] == ("passthrough", {"exception": "builtins.KeyboardInterrupt"})


def test_describe_replay() -> None:
    assert faults.describe_replay(7) == "voicebot chaos --seed 7"
    assert faults.describe_replay(7, "plans/a b.toml") == "voicebot chaos --seed 7 --plan 'plans/a b.toml'"
    assert faults.describe_replay(7, Path("p.json")) == "voicebot chaos --seed 7 --plan p.json"


def test_invariants_collect_and_assert_with_replay_command() -> None:
    assert faults.invariant(False, "lobby.capacity") is False  # inactive: no-op, value passes through
    with faults.activate(seed=5, plan_path="p.toml") as run:
        assert faults.invariant(True, "lobby.capacity", lobby="l1")
        run.assert_invariants()
        assert not faults.invariant(False, "lobby.capacity", lobby="l1", members=3)
    assert run.violations == ['lobby.capacity: {"lobby":"l1","members":3}']
    assert run.journal.entries()[-1][1:] == ("invariant", {"lobby": "l1", "members": 3, "name": "lobby.capacity"})
    with pytest.raises(faults.InvariantViolation, match=r"replay with: voicebot chaos --seed 5 --plan p.toml$"):
        run.assert_invariants()
