"""benchmarks/classic_control.py runs the benchmark's runs side by side and hands each run's rows on as it ends;
its default DreamerV2 entry is the rl-zoo3 yml's setting, derived from the ``dreamerv2`` entry."""

import pandas as pd
import pytest
import torch as th

from benchmarks.classic_control import DEFAULT, DREAMER, TASKS, Run, append_rows, run_all


def fake_runner(algo, task, seed, episodes, threads):
    """What ``run_one`` returns, without learning anything (module level: the spawned workers import it)."""
    th.set_num_threads(threads)
    return [{"algo": algo, "task": task, "seed": seed, "episodes": episodes, "threads": th.get_num_threads()}]


@pytest.mark.parametrize("jobs", [1, 2])
def test_every_run_is_done_once_with_its_threads(jobs):
    runs = [Run("dreamerv2", "CartPole-v1", 0), Run("ppo", "CartPole-v1", 1), Run("sac", "Pendulum-v1", 2)]
    done, threads = [], th.get_num_threads()
    try:
        run_all(runs, episodes=3, threads=1, jobs=jobs, done=done.append, runner=fake_runner)
    finally:
        th.set_num_threads(threads)  # with jobs=1 the runner ran in this process
    rows = sorted((row for rows in done for row in rows), key=lambda row: row["seed"])
    assert [(row["algo"], row["task"], row["seed"]) for row in rows] == [tuple(run) for run in runs]
    assert all(row["episodes"] == 3 and row["threads"] == 1 for row in rows)


def failing_runner(algo, task, seed, episodes, threads):
    if seed == 1:
        raise ValueError("diverged")
    return fake_runner(algo, task, seed, episodes, threads)


def test_a_failed_run_does_not_lose_the_others():
    runs = [Run("ppo", "CartPole-v1", seed) for seed in (0, 1, 2)]
    done = []
    with pytest.raises(RuntimeError, match="1 of 3 runs failed"):
        run_all(runs, episodes=1, threads=1, jobs=2, done=done.append, runner=failing_runner)
    assert sorted(rows[0]["seed"] for rows in done) == [0, 2]


def test_the_default_differs_from_dreamerv2_only_in_its_updates_and_imagination():
    for task in TASKS:
        fast, plain = DREAMER[(DEFAULT, task)], DREAMER[("dreamerv2", task)]
        changed = {key for key in fast.keys() | plain.keys() if fast.get(key) != plain.get(key)}
        assert changed <= {"train_freq", "imagination_starts", "imagination_horizon"}, task
        assert fast["train_freq"] in (plain["train_freq"], 2 * plain["train_freq"]) and fast["imagination_starts"] == 8


def test_appended_rows_land_under_their_own_headers(tmp_path):
    csv = tmp_path / "curves.csv"
    append_rows(csv, [{"algo": "ppo", "step": 1, "return_mean": 10.0, "wall_s": 0.5}])
    append_rows(csv, [{"algo": "dreamerv2", "step": 2, "return_mean": 20.0, "sampled": 30.0, "wall_s": 0.7}])
    frame = pd.read_csv(csv)
    assert frame["wall_s"].tolist() == [0.5, 0.7] and frame["return_mean"].tolist() == [10.0, 20.0]
    assert frame["sampled"].isna().tolist() == [True, False]
