"""pytest plugin for voicebot tests: seeds, fault plans, an in-process server, replay hints on failure.

Enable it in a ``conftest.py``::

    pytest_plugins = ["voicebot.testing.pytest_plugin"]

Fixtures:

* ``voicebot_seed`` — the seed of this test: ``--voicebot-seed N`` or :data:`DEFAULT_SEED`.
* ``fault_plan`` — ``with fault_plan(plan) as run:`` activates a :class:`voicebot.faults.Plan` with the test's
  seed (``scope="global"`` by default, so tasks the server started earlier see it too) and yields the
  :class:`~voicebot.faults.FaultRun` (journal, stats, ``assert_invariants()``).
* ``voicebot_server`` — an in-process server (no listener, deterministic ids/tokens/timestamps from the
  seed); connect clients with :func:`voicebot.testing.open_client`. As with every clock-dependent Trio
  fixture, the test function itself must request ``autojump_clock`` (pytest-trio ignores clock fixtures
  requested only by other fixtures).

When a test that used any of them fails, the report gets a "voicebot replay" section with the seed, the
pytest command that reruns the test with that seed, and ``voicebot chaos --seed N [--plan FILE]`` for each
fault run the test activated.
"""

from __future__ import annotations

import contextlib
import shlex
from collections.abc import AsyncIterator, Generator, Iterator
from pathlib import Path
from typing import Any, Literal

import pytest

from .. import faults
from ..server import Server
from ._determinism import make_deterministic
from ._harness import open_test_server

__all__ = ["DEFAULT_SEED", "FaultActivator", "deterministic_server"]

#: The seed used when ``--voicebot-seed`` is not given.
DEFAULT_SEED = 0

_SEED = pytest.StashKey[int]()
_RUNS = pytest.StashKey[list[faults.FaultRun]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add ``--voicebot-seed``."""
    group = parser.getgroup("voicebot")
    group.addoption("--voicebot-seed", type=int, default=None, metavar="N",
                    help=f"seed for voicebot_seed / fault_plan / voicebot_server (default {DEFAULT_SEED})")


@pytest.fixture
def voicebot_seed(request: pytest.FixtureRequest) -> int:
    """This test's seed (``--voicebot-seed`` or :data:`DEFAULT_SEED`); shown in the report if the test fails."""
    given = request.config.getoption("--voicebot-seed")
    seed = DEFAULT_SEED if given is None else int(given)
    request.node.stash[_SEED] = seed
    return seed


class FaultActivator:
    """Activates fault plans for one test and remembers the runs for the failure report."""

    def __init__(self, seed: int, runs: list[faults.FaultRun]) -> None:
        self.seed = seed
        self.runs = runs

    @contextlib.contextmanager
    def __call__(
        self, plan: faults.Plan | str | Path | None = None, *, seed: int | None = None,
        scope: Literal["context", "global"] = "global",
    ) -> Iterator[faults.FaultRun]:
        """``with fault_plan(plan_or_file, seed=None) as run:`` (a path is loaded with :func:`faults.load_plan`)."""
        plan_path: Path | None = None
        if isinstance(plan, str | Path):
            plan_path = Path(plan)
            plan = faults.load_plan(plan_path)
        with faults.activate(plan, seed=self.seed if seed is None else seed, plan_path=plan_path,
                             scope=scope) as run:
            self.runs.append(run)
            yield run


@pytest.fixture
def fault_plan(voicebot_seed: int, request: pytest.FixtureRequest) -> FaultActivator:
    """A :class:`FaultActivator` seeded with ``voicebot_seed``."""
    runs: list[faults.FaultRun] = []
    request.node.stash[_RUNS] = runs
    return FaultActivator(voicebot_seed, runs)


def deterministic_server(*args: Any, **kwargs: Any) -> Server:
    """A ``server_factory`` for :func:`open_test_server`: ids, tokens and chat timestamps follow the seed."""
    return make_deterministic(Server(*args, **kwargs))


@pytest.fixture
async def voicebot_server(voicebot_seed: int) -> AsyncIterator[Server]:
    """An in-process server seeded with ``voicebot_seed`` (the test must also take ``autojump_clock``)."""
    async with open_test_server(seed=voicebot_seed, server_factory=deterministic_server) as server:
        yield server


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    """Add a "voicebot replay" section (seed and replay commands) to the report of a failed test."""
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if not report.failed or _SEED not in item.stash:
        return
    seed = item.stash[_SEED]
    lines = [f"seed: {seed}", f"rerun: pytest {shlex.quote(item.nodeid)} --voicebot-seed {seed}"]
    for run in item.stash.get(_RUNS, []):
        stats = run.stats()
        lines.append(f"fault run seed {run.seed} plan {run.plan.name or '-'}: "
                     f"{stats['total_injections']} injections in {stats['total_hits']} hits; "
                     f"replay: {run.replay_command()}")
        lines.extend(f"  violated: {violation}" for violation in run.violations[:5])
    report.sections.append(("voicebot replay", "\n".join(lines)))
