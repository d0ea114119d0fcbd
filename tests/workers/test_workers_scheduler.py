"""The sans-IO scheduler: capacity, load order, release."""

from __future__ import annotations

import itertools

from voicebot.workers import Scheduler


def make() -> Scheduler:
    counter = itertools.count(1)
    return Scheduler(lambda prefix: f"{prefix}_{next(counter)}")


def test_reserve_never_exceeds_capacity_and_prefers_least_loaded() -> None:
    s = make()
    a = s.register(1, "a", {"echo": "e"}, 2)
    b = s.register(2, "b", {"echo": "e", "speaker": "s"}, 4)
    picks = [s.reserve("echo", "l_1", {}) for _ in range(8)]
    admitted = [j for j in picks if j is not None]
    assert len(admitted) == 6  # 2 + 4, never more
    assert a.load == 2 and b.load == 4
    assert [j.worker_id for j in admitted[:3]] == [a.worker_id, b.worker_id, b.worker_id]  # by load ratio
    assert s.reserve("speaker", "l_1", {}) is None
    assert s.release(admitted[0].job_id) is not None
    assert s.reserve("echo", "l_1", {}) is not None


def test_unusable_and_excluded_workers_are_skipped() -> None:
    s = make()
    a = s.register(1, "a", {"echo": ""}, 5)
    b = s.register(2, "b", {"echo": ""}, 5)
    job = s.reserve("echo", "l", {}, usable=lambda w: w is not a)
    assert job is not None and job.worker_id == b.worker_id
    assert s.reserve("echo", "l", {}, exclude=[a.worker_id, b.worker_id]) is None
    assert s.bot_list(usable=lambda w: False) == [{"name": "echo", "description": "", "available": False}]


def test_unregister_returns_jobs_and_frees_everything() -> None:
    s = make()
    s.register(1, "a", {"echo": ""}, 3)
    jobs = [s.reserve("echo", "l", {}) for _ in range(2)]
    assert all(jobs)
    s.started(jobs[0].job_id, "p_bot")  # type: ignore[union-attr]
    assert s.job_of_peer("p_bot") is jobs[0]
    worker, gone = s.unregister(1)
    assert worker is not None and len(gone) == 2
    assert s.jobs == {} and s.workers == {}
    assert not s.offers("echo")
