"""benchmarks/classic_control.py runs the benchmark's runs side by side and hands each run's rows on as it ends;
cartpole_endings.py names how an episode ended; cartpole_probe.py reads a model along its own episodes."""

from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest
import torch as th
from stable_baselines3.common.env_util import make_vec_env

from benchmarks.cartpole_endings import episode_ending
from benchmarks.cartpole_probe import decode_obs, open_loop_errors, probe, probe_episode
from benchmarks.classic_control import DEFAULT, Run, pooled, run_all
from sb3_dreamer import DreamerV2


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


def test_runs_of_the_defaults_settings_are_pooled_under_its_name():
    frame = pd.DataFrame({
        "algo": ["dreamerv2_last8_h45_half", "dreamerv2_last8_half", "dreamerv2_last8_half", "dreamerv2", "ppo"],
        "task": ["CartPole-v1", "CartPole-v1", "Pendulum-v1", "CartPole-v1", "CartPole-v1"],
        "seed": [0, 1, 2, 3, 4],
    })  # fmt: skip
    pooled_frame = pooled(frame)
    assert pooled_frame["algo"].tolist() == [DEFAULT, "dreamerv2_last8_half", DEFAULT, "dreamerv2", "ppo"]
    assert frame["algo"].iloc[0] == "dreamerv2_last8_h45_half"  # the rows as written are left alone


def test_a_failed_run_does_not_lose_the_others():
    runs = [Run("ppo", "CartPole-v1", seed) for seed in (0, 1, 2)]
    done = []
    with pytest.raises(RuntimeError, match="1 of 3 runs failed"):
        run_all(runs, episodes=1, threads=1, jobs=2, done=done.append, runner=failing_runner)
    assert sorted(rows[0]["seed"] for rows in done) == [0, 2]


class _StartAt(gym.Wrapper):
    """CartPole reset to a chosen state (x, x_dot, theta, theta_dot)."""

    def __init__(self, state: tuple[float, float, float, float]):
        super().__init__(gym.make("CartPole-v1"))
        self.start = np.array(state, dtype=np.float64)

    def reset(self, **kwargs):  # noqa: ANN003, ANN201
        self.env.reset(**kwargs)
        self.env.unwrapped.state = self.start.copy()
        return self.start.astype(np.float32), {}


class _PushRight:
    def predict(self, obs, state, episode_start, deterministic):  # noqa: ANN001, ANN201
        return np.array(1), None


@pytest.mark.parametrize(("state", "ending"), [((2.35, 1.0, 0.0, 0.0), "position"), ((0.0, 0.0, -0.15, -1.0), "angle")])
def test_episode_ending_says_how_cartpole_ended(state, ending):
    result = episode_ending(SimpleNamespace(policy=_PushRight()), _StartAt(state), seed=0)
    assert result["ending"] == ending
    assert 1 <= result["length"] < 10


def _untrained_cartpole_model() -> DreamerV2:
    env = make_vec_env("CartPole-v1", n_envs=1, seed=0)
    model = DreamerV2.from_preset("debug", "MlpPolicy", env, seed=0, normalize_obs=True)
    norm = model.policy.world_model.obs_norm
    norm.set_statistics({"obs": th.tensor([[0.0, -1.0, 0.1, 0.0], [0.4, 1.0, -0.1, 2.0]])})  # std != 1, mean != 0
    return model


def test_the_probe_decodes_in_env_units_and_starts_its_open_loop_at_the_posterior():
    model = _untrained_cartpole_model()
    world_model = model.policy.world_model
    th.manual_seed(0)
    episode = probe_episode(model, gym.make("CartPole-v1"), seed=3)
    assert len(episode.rows) == len(episode.latents) == len(episode.obs) >= 8
    with th.no_grad():
        standardised = world_model.decoder(episode.latents[0].feat())["obs"][0]
        decoded = decode_obs(world_model, episode.latents[0])[0]
    th.testing.assert_close(decoded, standardised * world_model.obs_norm.std + world_model.obs_norm.mean)

    horizon = 3
    assert open_loop_errors(world_model, episode, every=1, horizon=horizon).shape == (len(episode.obs) - horizon, 4, 4)
    th.manual_seed(1)
    errors = open_loop_errors(world_model, episode, every=100, horizon=horizon)  # from the first state only
    np.testing.assert_allclose(errors[0, 0], decoded.numpy() - episode.obs[0], rtol=1e-5, atol=1e-6)  # posterior
    th.manual_seed(1)
    with th.no_grad():  # step 1: the prior after the action taken on the first observation
        prior = world_model.rssm.img_step(episode.latents[0], episode.actions[0], sample=True)
        expected = decode_obs(world_model, prior)[0].numpy() - episode.obs[1]
    np.testing.assert_allclose(errors[0, 1], expected, rtol=1e-5, atol=1e-6)


def test_the_probe_bins_every_step_once():
    summary = probe(_untrained_cartpole_model(), episodes=2, seed=0)
    assert sum(row["steps"] for row in summary["by_abs_x"]) == sum(summary["lengths"])
    assert all(0.5 <= row["confidence"] <= 1.0 for row in summary["by_abs_x"])
    assert summary["open_loop_abs_error_x"] == []  # untrained episodes are shorter than the open-loop horizon
