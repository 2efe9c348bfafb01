"""benchmarks/published.py reads the paper's DMC runs; benchmarks/gpu/dmc_learn.py sets ours beside them."""

import csv
import math

import pytest

from benchmarks import published
from benchmarks.gpu.dmc_learn import Results


def test_published_dmc_runs_at_the_papers_points():
    runs = published.dmc("cartpole-balance")
    assert runs.returns.shape == (5, len(runs.frames)) and runs.frames[0] == 30_000
    assert runs.at(90_000) == {"mean": 802.7, "median": 769.0}
    assert runs.at(1_000) is None  # before the first published point
    assert runs.median_logged_by(119_999) == 769.0 and math.isnan(runs.median_logged_by(29_999))
    assert published.dmc("walker-walk").at(90_000)["mean"] == 408.2


def test_an_unknown_task_is_named():
    with pytest.raises(ValueError, match="no published runs of 'cartpole-dance'"):
        published.dmc("cartpole-dance")


def test_dmc_learn_results_are_written_as_they_come(tmp_path):
    results = Results(tmp_path, "CPU", frames=100_000)
    row = dict(task="cartpole-balance", seed=0, episodes=4, updates=10, wall_s=1.0, device="CPU", return_std=0.0)
    results.add({**row, "kind": "train", "frames": 2_000, "return_mean": 150.0})
    results.add({**row, "kind": "eval", "frames": 40_000, "return_mean": 500.0})
    results.refresh()
    with (tmp_path / "curves.csv").open() as file:
        assert [(r["kind"], r["frames"]) for r in csv.DictReader(file)] == [("train", "2000"), ("eval", "40000")]
    task = results.summary()["tasks"]["cartpole-balance"]
    assert task["last_eval_return"] == 500.0 and task["frames_reached"] == 40_000
    assert task["published_at_100000"] == {"mean": 853.9, "median": 834.1}
    assert (tmp_path / "dmc_learn.png").stat().st_size > 0
