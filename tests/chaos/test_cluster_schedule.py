"""The multi-hub chaos workload's schedule: drawn from the seed alone, with its faults where they belong."""

from __future__ import annotations

import pytest

from voicebot.chaos import CLUSTER_ACTIONS, ClusterChaosConfig, cluster_schedule
from voicebot.cli import main


def test_same_seed_gives_the_same_steps_and_faults() -> None:
    config = ClusterChaosConfig()
    for seed in range(20):
        first, second = cluster_schedule(seed, config), cluster_schedule(seed, config)
        assert first == second and first.describe() == second.describe()
    assert len({cluster_schedule(seed, config).describe() for seed in range(20)}) == 20


@pytest.mark.parametrize("hubs", [2, 3])
def test_faults_fall_inside_the_run_and_no_step_uses_the_lost_hub(hubs: int) -> None:
    config = ClusterChaosConfig(hubs=hubs, steps=50)
    names = {name for name, _ in CLUSTER_ACTIONS}
    for seed in range(50):
        schedule = cluster_schedule(seed, config)
        assert schedule.kill_at is not None and schedule.killed_hub is not None and schedule.outage is not None
        assert 15 <= schedule.kill_at < 25 and 0 <= schedule.killed_hub < hubs
        start, end = schedule.outage
        assert schedule.kill_at < start < end <= 50 and end - start <= config.outage_steps
        assert [s.n for s in schedule.steps] == list(range(50))
        for step in schedule.steps:
            assert step.action in names and 0 <= step.client < config.clients and 0 <= step.hub < hubs
            if step.n >= schedule.kill_at:
                assert step.hub != schedule.killed_hub


def test_without_faults_nothing_is_lost() -> None:
    schedule = cluster_schedule(3, ClusterChaosConfig(kill_hub=False, redis_outage=False))
    assert schedule.kill_at is None and schedule.killed_hub is None and schedule.outage is None


def test_cli_refuses_a_single_hub(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["chaos", "--hubs", "1", "--seed", "0"]) == 2
    assert "--hubs 2..8" in capsys.readouterr().err
