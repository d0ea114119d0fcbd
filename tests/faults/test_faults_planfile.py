"""Plan files: TOML and JSON load to the same Plan, JSON round-trips, bad files give clear errors."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import trio

from voicebot import faults
from voicebot.errors import PersistenceError

EXAMPLE_TOML = """
version = 1
name = "flaky-store"

[[rule]]
point = "store.write"
at = [3]
fault = "raise"
exception = "sqlite3.OperationalError"
args = ["database is locked"]

[[rule]]
point = "store.read"
first = 3
last = 5
fault = "raise"
exception = "voicebot.errors.PersistenceError"
args = ["store down"]
kwargs = { code = "store_down" }

[[rule]]
point = "writer.send"
every = 10
times = 2
fault = "delay"
seconds = 2.5

[[rule]]
point = "heartbeat.ping"
at = 4
fault = "hang"

[[rule]]
point = "ws.recv"
at = [7, 8]
fault = "disconnect"
reason = "peer vanished"

[[random]]
point = "ws.*"
p = 0.5
q = 0.05
faults = [
  { fault = "drop", weight = 3 },
  { fault = "duplicate" },
  { fault = "corrupt", weight = 0.5 },
  { fault = "raise", exception = "trio.BrokenResourceError" },
  { fault = "raise", exception = "OSError", args = [104, "Connection reset by peer"] },
]

[[random]]
point = "bot.call"
p = 1
q = 0.2
faults = [{ fault = "delay", seconds = 3 }, { fault = "hang" }]
"""

EXPECTED = faults.Plan(
    name="flaky-store",
    rules=[
        faults.Rule(point="store.write", at=3, fault=faults.raises(sqlite3.OperationalError, "database is locked")),
        faults.Rule(
            point="store.read", first=3, last=5, fault=faults.raises(PersistenceError, "store down", code="store_down")
        ),
        faults.Rule(point="writer.send", every=10, times=2, fault=faults.delay(2.5)),
        faults.Rule(point="heartbeat.ping", at=4, fault=faults.hang()),
        faults.Rule(point="ws.recv", at=[7, 8], fault=faults.disconnect("peer vanished")),
    ],
    random=[
        faults.RandomRule(
            point="ws.*",
            p=0.5,
            q=0.05,
            faults=[
                faults.WeightedFault(faults.drop(), 3),
                faults.duplicate(),
                (faults.corrupt(), 0.5),
                faults.raises(trio.BrokenResourceError),
                faults.raises(OSError, 104, "Connection reset by peer"),
            ],
        ),
        faults.RandomRule(point="bot.call", p=1.0, q=0.2, faults=[faults.delay(3), faults.hang()]),
    ],
)


def test_toml_loads_to_the_python_plan(tmp_path: Path) -> None:
    path = tmp_path / "plan.toml"
    path.write_text(EXAMPLE_TOML, encoding="utf-8")
    assert faults.load_plan(path) == EXPECTED


def test_json_round_trip(tmp_path: Path) -> None:
    text = faults.plan_to_json(EXPECTED)
    path = tmp_path / "plan.json"
    path.write_text(text, encoding="utf-8")
    loaded = faults.load_plan(path)
    assert loaded == EXPECTED
    assert faults.plan_to_json(loaded) == text
    assert faults.parse_plan(json.loads(text)) == EXPECTED


def test_dict_shape() -> None:
    data = faults.plan_to_dict(EXPECTED)
    assert data["version"] == 1
    assert data["rule"][0] == {
        "point": "store.write",
        "at": [3],
        "fault": "raise",
        "exception": "sqlite3.OperationalError",
        "args": ["database is locked"],
    }
    assert data["rule"][1]["exception"] == "voicebot.errors._types.PersistenceError"
    assert data["random"][0]["faults"][3] == {"fault": "raise", "exception": "trio.BrokenResourceError", "weight": 1.0}


async def test_loaded_plan_drives_points(tmp_path: Path) -> None:
    path = tmp_path / "plan.toml"
    path.write_text(EXAMPLE_TOML, encoding="utf-8")
    with faults.activate(faults.load_plan(path), seed=3, plan_path=path) as run:
        await faults.point("store.write")
        await faults.point("store.write")
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            await faults.point("store.write")
    assert run.replay_command() == f"voicebot chaos --seed 3 --plan {path}"


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("plan.yaml", "", "must end in .toml or .json"),
        ("plan.toml", "[[rule]\npoint=", "invalid TOML"),
        ("plan.json", "{", "invalid JSON"),
        ("plan.json", "[]", "expected a table/object, got list"),
        ("plan.toml", "version = 2", "unsupported plan version 2"),
        ("plan.toml", "colour = 1", "unknown key 'colour'"),
        ("plan.toml", '[[rule]]\nfault = "drop"', "rule[0]: missing 'point'"),
        (
            "plan.toml",
            '[[rule]]\npoint = "x"\nfault = "raize"',
            "rule[0].fault: unknown fault kind 'raize' (one of raise, delay",
        ),
        ("plan.toml", '[[rule]]\npoint = "x"', "rule[0].fault: missing 'fault' (one of raise"),
        (
            "plan.toml",
            '[[rule]]\npoint = "x"\nfault = "raise"',
            "rule[0]: missing 'exception' (required for fault 'raise')",
        ),
        (
            "plan.toml",
            '[[rule]]\npoint = "x"\nfault = "drop"\nexception = "OSError"',
            "rule[0]: unknown key 'exception' (not a parameter for fault 'drop')",
        ),
        ("plan.toml", '[[rule]]\npoint="x"\nfault="raise"\nexception="os.system"', "module 'os' is not allowed"),
        ("plan.toml", '[[rule]]\npoint="x"\nfault="raise"\nexception="subprocess.SubprocessError"', "not allowed"),
        ("plan.toml", '[[rule]]\npoint="x"\nfault="raise"\nexception="sqlite3.connect"', "is not an exception type"),
        ("plan.toml", '[[rule]]\npoint="x"\nfault="raise"\nexception="sqlite3.Nope"', "is not an exception type"),
        ("plan.toml", '[[rule]]\npoint="x"\nfault="raise"\nexception="KeyboardInterrupt"', "only Exception"),
        ("plan.toml", '[[rule]]\npoint="x"\nfault="raise"\nexception="trio.Cancelled"', "only Exception"),
        (
            "plan.toml",
            '[[rule]]\npoint="x"\nfault="drop"\nat=0',
            "rule[0].at[0]: Input should be greater than or equal to 1, got 0",
        ),
        (
            "plan.toml",
            '[[rule]]\npoint="x"\nfault="raise"\nexception="voicebot.errors.PersistenceError"\nkwargs={colour=1}',
            "rule[0]: cannot construct voicebot.errors._types.PersistenceError",
        ),
        (
            "plan.toml",
            '[[rule]]\npoint="x"\nfault="drop"\nevery="3"',
            "rule[0].every: Input should be a valid integer, got '3'",
        ),
        (
            "plan.toml",
            '[[rule]]\npoint="x"\nfault="delay"\nseconds=-1',
            "rule[0].seconds: Input should be greater than or equal to 0, got -1",
        ),
        (
            "plan.toml",
            '[[rule]]\npoint="x"\nfault="drop"\ntimes=true',
            "rule[0].times: Input should be a valid integer, got True",
        ),
        (
            "plan.toml",
            '[[random]]\npoint="x"\np="high"\nfaults=[{fault="drop"}]',
            "random[0].p: Input should be a valid number, got 'high'",
        ),
        (
            "plan.toml",
            '[[random]]\npoint="x"\np=2\nfaults=[{fault="drop"}]',
            "random[0].p: Input should be less than or equal to 1, got 2",
        ),
        ("plan.toml", '[[random]]\npoint="x"', "random[0]: missing 'faults'"),
        (
            "plan.toml",
            '[[random]]\npoint="x"\nfaults=[{fault="drop",weight=0}]',
            "random[0].faults[0].weight: Input should be greater than 0, got 0",
        ),
        ("plan.toml", '[[random]]\npoint="x"\nfaults=[{fault="drop",at=1}]', "random[0].faults[0]: unknown key 'at'"),
        ("plan.toml", '[[random]]\npoint="x"\nfaults=["drop"]', "faults[0]: expected a table/object, got str"),
        ("plan.toml", '[[random]]\npoint="x"\nfaults=[]', "random[0].faults: List should have at least 1 item"),
        ("plan.toml", '[[rule]]\npoint="x"\nfault="delay"\nseconds=1\nreason="r"', "unknown key 'reason'"),
        ("plan.toml", '[[rule]]\npoint="x"\nfault="drop"\nat=[1]\nfirst=2', "rule[0]: use either 'at' or"),
        ("plan.toml", 'rule = [{point="x", fault="drop"}, {point=""}]', "rule[1].point: String should have at least"),
    ],
)
def test_bad_plan_files_give_clear_errors(tmp_path: Path, name: str, content: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(faults.PlanError) as info:
        faults.load_plan(path)
    assert message in str(info.value)
    assert str(info.value).startswith(str(path))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(faults.PlanError, match="cannot read plan file"):
        faults.load_plan(tmp_path / "absent.toml")


def test_resolve_exception() -> None:
    assert faults.resolve_exception("OSError") is OSError
    assert faults.resolve_exception("builtins.ConnectionResetError") is ConnectionResetError
    assert faults.resolve_exception("sqlite3.OperationalError") is sqlite3.OperationalError
    assert faults.resolve_exception("voicebot.faults.Disconnect") is faults.Disconnect
    assert faults.exception_name(OSError) == "OSError"
    assert faults.exception_name(trio.BrokenResourceError) == "trio.BrokenResourceError"
    with pytest.raises(ValueError, match="invalid exception name"):
        faults.resolve_exception(" OSError")
