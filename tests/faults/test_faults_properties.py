"""Property tests: hit selection matches its definition; corruption always changes and never mutates."""

from __future__ import annotations

import copy
import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from voicebot import faults

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=12,
)
NO_DB = settings(database=None, deadline=None)  # no example database in the shared tree; no flaky deadlines


@NO_DB
@given(
    first=st.none() | st.integers(1, 20),
    span=st.none() | st.integers(0, 20),
    every=st.none() | st.integers(1, 7),
    times=st.none() | st.integers(1, 5),
)
def test_range_selection_matches_definition(
    first: int | None, span: int | None, every: int | None, times: int | None
) -> None:
    last = None if span is None else (first or every or 1) + span
    rule = faults.Rule(point="p", fault=faults.drop(), first=first, last=last, every=every, times=times)
    start = first if first is not None else (every or 1)
    expected = [
        n for n in range(1, 60) if n >= start and (last is None or n <= last) and (n - start) % (every or 1) == 0
    ]
    assert [n for n in range(1, 60) if rule.selects(n)] == expected
    with faults.activate(faults.Plan(rules=[rule])):
        fired = [n for n in range(1, 60) if not faults.message("p", n)]
    assert fired == expected[: times if times is not None else None]


@NO_DB
@given(at=st.lists(st.integers(1, 50), min_size=1, max_size=6))
def test_at_selection(at: list[int]) -> None:
    rule = faults.Rule(point="p", fault=faults.drop(), at=at)
    assert [n for n in range(1, 60) if rule.selects(n)] == sorted(set(at))


@NO_DB
@given(value=json_values | st.binary(), seed=st.integers(0, 2**32))
def test_corruption_differs_is_deterministic_and_does_not_mutate(value: Any, seed: int) -> None:
    before = copy.deepcopy(value)
    ok, out = faults.corrupt_value(value, random.Random(seed))
    ok2, out2 = faults.corrupt_value(value, random.Random(seed))
    assert value == before
    if isinstance(value, str | bytes | list | dict):
        assert ok
        assert out != value
        assert type(out) is type(value)
        assert (ok2, out2) == (ok, out)
    else:
        assert not ok
        assert out is value
