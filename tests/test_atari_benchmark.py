"""The 55-game benchmark's scoring: the paper's Table 1 from the published curves, rules, sets, bootstrap."""

import json
import os

import numpy as np
import pytest
from stable_baselines3.common.callbacks import BaseCallback

from sb3_dreamer.atari_benchmark import scores


def test_table_1_is_reproduced_from_the_published_curves():
    dreamer = scores.aggregate(scores.published_final_scores())  # the default rule: mean of the last 2.5 %
    assert dreamer.gamer_median == pytest.approx(2.15, abs=0.02)
    assert dreamer.record_mean == pytest.approx(0.44, abs=0.005)
    assert dreamer.clipped_record_mean == pytest.approx(0.28, abs=0.005)
    assert dreamer.gamer_mean == pytest.approx(11.33, rel=0.04)  # 11.67: the one column the rule misses by 3 %
    expected = {"iqn_sticky_2e8": (1.29, 8.85), "rainbow_sticky_2e8": (1.47, 9.12), "dqn_sticky_2e8": (0.65, 2.84)}
    for method, (median, mean) in expected.items():
        baseline = scores.aggregate(scores.published_baseline(method))
        assert (baseline.gamer_median, baseline.gamer_mean) == (
            pytest.approx(median, abs=0.005),
            pytest.approx(mean, abs=0.005),
        )


def test_the_other_final_score_rules_bracket_the_paper():
    table = scores.rule_comparison()
    assert set(table) == set(scores.FINAL_RULES)
    assert table["last"].gamer_median == pytest.approx(2.137, abs=0.001)
    assert table["max"].gamer_median > 2.5  # the best point during training overstates the final score
    assert all(2.1 < row.gamer_median < 2.2 for rule, row in table.items() if rule != "max")


def test_final_score_rules_on_a_run():
    frames, returns = np.arange(1, 201) * 1e6, np.arange(1, 201, dtype=float)
    assert scores.final_score(frames, returns, 2e8, "tail2.5") == pytest.approx(np.mean(returns[-5:]))
    assert scores.final_score(frames, returns, 2e8, "last") == 200.0
    assert scores.final_score(frames[:100], returns[:100], 2e8, "last") is None  # stopped at 100M: not final
    assert scores.final_score(frames[:100], returns[:100], 2e8, "last_any") == 100.0
    with pytest.raises(ValueError, match="Unknown final-score rule"):
        scores.final_score(frames, returns, 2e8, "median")


def test_game_sets_names_and_normalisation():
    assert len(scores.game_set("atari55")) == 55 and len(scores.game_set("atari100k")) == 26
    assert set(scores.game_set("atari100k")) <= set(scores.game_set("atari55"))
    assert scores.game_set("Pong, atari_james_bond,UpNDown") == ["pong", "james_bond", "up_n_down"]
    with pytest.raises(ValueError, match="Unknown games"):
        scores.game_set("pong,tetris")
    assert scores.normalisation_table()["james_bond"]["human_gamer"] == 303.0  # the data's 29 corrected
    row = scores.normalisation_table()["pong"]
    assert scores.normalise("pong", row["human_gamer"]) == pytest.approx(1.0)
    assert scores.normalise("pong", row["random"], "record") == pytest.approx(0.0)


def test_stratified_bootstrap_intervals():
    published = scores.published_final_scores()
    point = scores.aggregate(published)
    intervals = scores.bootstrap_ci(published, reps=200, seed=0)
    for name, (low, high) in intervals.items():
        assert low <= getattr(point, name) <= high, name
    single = scores.published_baseline("dqn_sticky_2e8")  # one run per game: nothing to resample
    for name, (low, high) in scores.bootstrap_ci(single, reps=20).items():
        assert low == pytest.approx(high) == pytest.approx(getattr(scores.aggregate(single), name))
    assert scores.iqm(np.arange(8)) == pytest.approx(3.5)


# ------------------------------------------------------------------ runner and report (tiny real runs)

pytest.importorskip("ale_py")
from sb3_dreamer.atari_benchmark import report, runner  # noqa: E402

TINY_DREAMER = dict(
    learning_starts=100, deter_size=16, hidden_size=16, stoch_size=4, stoch_classes=4, cnn_depth=4, mlp_layers=1,
    mlp_units=16, batch_size=2, sequence_length=8, imagination_horizon=4, train_freq=50,
)  # fmt: skip
SMOKE = runner.Settings(
    frames=1600, evaluations=2, eval_episodes=1, checkpoints=2, max_episode_frames=400,
    overrides={"dreamerv2": TINY_DREAMER, "ppo": {"n_envs": 1, "n_steps": 64, "batch_size": 64},
               "dqn": {"learning_starts": 100, "buffer_size": 1000}, "qrdqn": {"policy": "NoSuchPolicy"}},
)  # fmt: skip


class CrashAfter(BaseCallback):
    """Kills the training process without any cleanup once ``steps`` agent steps are done (a crash)."""

    def __init__(self, steps: int):
        super().__init__()
        self.steps = steps

    def _on_step(self) -> bool:
        if self.num_timesteps >= self.steps:
            os._exit(3)
        return True


def test_a_matrix_runs_records_failures_resumes_skips_and_reports(tmp_path):
    specs = runner.matrix(["pong"], ["dreamerv2", "ppo", "qrdqn"], [0])
    crash = {"callback": [{f"{__name__}.CrashAfter": {"steps": 250}}]}
    crashing = SMOKE._replace(overrides={**SMOKE.overrides, "ppo": {**SMOKE.overrides["ppo"], **crash}})
    results = runner.run_matrix(specs, crashing, tmp_path, parallel=2)
    assert {r.spec.algo: r.status for r in results} == {"dreamerv2": "done", "ppo": "failed", "qrdqn": "failed"}
    failed = json.loads((runner.run_dir(tmp_path, specs[2]) / "run.json").read_text())
    assert failed["status"] == "failed" and "NoSuchPolicy" in failed["error"]  # why, kept for the report
    done = json.loads((runner.run_dir(tmp_path, specs[0]) / "result.json").read_text())
    assert done["eval_frames"] == [800.0, 1600.0] and len(done["eval_returns"]) == 2
    state = runner.progress(specs, SMOKE, tmp_path)
    assert (len(state.done), len(state.failed), state.frames_done) == (1, 2, 1600)

    # The same command again: the finished run is skipped, the crashed one resumes from its checkpoint.
    results = runner.run_matrix(specs, SMOKE, tmp_path)
    assert {r.spec.algo: r.status for r in results} == {"dreamerv2": "skipped", "ppo": "done", "qrdqn": "failed"}
    ppo_dir = runner.run_dir(tmp_path, specs[1])
    attempts = json.loads((ppo_dir / "run.json").read_text())["attempts"]
    assert [(a["resumed"], a["start_step"]) for a in attempts] == [(False, 0), (True, 200)]
    resumed = json.loads((ppo_dir / "result.json").read_text())
    assert resumed["eval_frames"] == [800.0, 1600.0] and resumed["attempts"] == 2  # one curve over both attempts

    path = report.write_report(tmp_path, reps=50)
    text = path.read_text()
    assert "1,600 frames" in text and "| pong |" in text and "published DreamerV2 (200M)" in text
    assert "qrdqn/pong/seed0" in text  # the failed run is listed
    assert (tmp_path / "curves.png").stat().st_size > 0 and (tmp_path / "aggregate.png").stat().st_size > 0


def test_runs_as_ray_tasks_on_a_local_instance(tmp_path, monkeypatch):
    ray = pytest.importorskip("ray")
    monkeypatch.setenv("RAY_worker_niceness", "0")  # as run_matrix does for "local" (Ray's default is nice 15)
    ray.init(num_cpus=1, include_dashboard=False)  # a small local instance; run_matrix joins it
    try:
        results = runner.run_matrix(runner.matrix(["boxing"], ["ppo"], [0]), SMOKE, tmp_path, ray_address="auto")
    finally:
        ray.shutdown()
    assert [r.status for r in results] == ["done"]
    assert (runner.run_dir(tmp_path, results[0].spec) / "result.json").is_file()


def test_the_protocol_reaches_the_baselines():
    import gymnasium as gym
    from rl_zoo3.utils import get_wrapper_class
    from stable_baselines3.common.atari_wrappers import EpisodicLifeEnv

    spec = runner.RunSpec("dqn", "james_bond", 0)
    assert (
        runner.env_id(spec) == "ALE/Jamesbond-v5"
        and runner.env_id(spec._replace(algo="dreamerv2")) == "sb3_dreamer/Jamesbond-v0"
    )
    params = runner.hyperparameters("dqn")
    assert params["frame_stack"] == 4 and runner.hyperparameters("dreamerv2", {"batch_size": 4})["batch_size"] == 4
    wrapper = get_wrapper_class({"env_wrapper": params["env_wrapper"]})  # as rl-zoo3 builds the env
    env = wrapper(gym.make("ALE/Pong-v5", **runner.BASELINE_ENV_KWARGS))
    ale = env.unwrapped.ale
    assert ale.getFloat("repeat_action_probability") == pytest.approx(0.25) and env.unwrapped._frameskip == 1
    assert env.action_space.n == 18
    layer, names = env, []
    while hasattr(layer, "env"):
        names.append(type(layer).__name__)
        assert not isinstance(layer, EpisodicLifeEnv), "a lost life must not end the episode"
        layer = layer.env
    assert "MaxAndSkipEnv" in names and "ClipRewardEnv" in names  # the baselines' own preprocessing
    with pytest.raises(ValueError, match="Unknown algorithms"):
        runner.matrix(["pong"], ["a2c"], [0])


def test_status_command_reports_a_fresh_matrix(tmp_path, capsys):
    from sb3_dreamer.atari_benchmark.__main__ import main

    main(["status", "--games", "pong,boxing", "--algos", "ppo", "--frames", "1000", "--out", str(tmp_path)])
    assert "done 0, running 0, failed 0, pending 2; 0/2,000 frames; ETA unknown" in capsys.readouterr().out
