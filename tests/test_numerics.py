"""Non-finite losses never reach the weights; a run that keeps producing them stops with a checkpoint."""

import numpy as np
import pytest
import torch as th
from gymnasium import spaces

from sb3_dreamer import DreamerV2
from tests.conftest import SpacesEnv


def _model(tmp_path, reward: float, obs_value: float | None = None) -> DreamerV2:  # noqa: ANN001
    from stable_baselines3.common.logger import configure

    env = SpacesEnv(spaces.Box(-1, 1, (5,), np.float32), spaces.Discrete(3))
    model = DreamerV2.from_preset("debug", "MlpPolicy", env, seed=0, max_nonfinite_updates=3, pretrain_steps=0)
    model.set_logger(configure(str(tmp_path), ["csv"]))
    for t in range(64):
        obs = np.full((1, 5), t / 64 if obs_value is None else obs_value, np.float32)
        model.replay_buffer.add(obs, obs, np.array([t % 3]), np.array([reward], np.float32), np.array([False]), [{}])
    return model


def test_nonfinite_steps_are_skipped_and_counted(tmp_path):
    model = _model(tmp_path, reward=1.0, obs_value=float("nan"))
    before = [p.detach().clone() for p in model.policy.parameters()]
    model.train(gradient_steps=2, batch_size=model.batch_size)
    for p, q in zip(before, model.policy.parameters()):
        assert th.equal(p, q)  # nothing reached the weights
    assert model._skipped_steps == 2 * 3  # world model, actor and critic, in each of the 2 updates


def test_nan_rewards_skip_only_the_world_model_step(tmp_path):
    model = _model(tmp_path, reward=float("nan"))
    model.train(gradient_steps=2, batch_size=model.batch_size)
    assert model._skipped_steps == 2  # the actor and critic learn in imagination, where rewards are predicted


def test_a_run_that_stays_nonfinite_stops_with_a_checkpoint(tmp_path):
    model = _model(tmp_path, reward=float("nan"))
    with pytest.raises(RuntimeError, match="non-finite") as error:
        model.train(gradient_steps=5, batch_size=model.batch_size)
    assert "max_nonfinite_updates" in str(error.value)
    assert (tmp_path / "dreamerv2_nonfinite_stop.zip").exists()


def test_finite_steps_still_update(tmp_path):
    model = _model(tmp_path, reward=1.0)
    before = [p.detach().clone() for p in model.policy.world_model.parameters()]
    model.train(gradient_steps=1, batch_size=model.batch_size)
    assert model._skipped_steps == 0
    assert any(not th.equal(p, q) for p, q in zip(before, model.policy.world_model.parameters()))


def test_nan_observations_are_refused_with_the_fix_named():
    import gymnasium as gym
    from stable_baselines3.common.env_util import make_vec_env

    class NanAfter(gym.Wrapper):
        def step(self, action):  # noqa: ANN001, ANN201
            obs, reward, terminated, truncated, info = self.env.step(action)
            return obs * np.nan, reward, terminated, truncated, info

    env = make_vec_env("CartPole-v1", n_envs=1, seed=0, wrapper_class=NanAfter)
    model = DreamerV2.from_preset("debug", "MlpPolicy", env, seed=0)
    with pytest.raises(ValueError, match="holds NaN or inf"):
        model.learn(10)
    with pytest.raises(ValueError, match="nan_to_num"):
        model.predict(np.array([0.0, np.inf, 0.0, 0.0], np.float32))


def test_the_stop_counts_the_streak_even_when_a_finite_update_follows_in_the_same_call(tmp_path):
    model = _model(tmp_path, reward=1.0)
    with pytest.raises(RuntimeError, match="3 updates in a row"):
        model._count_skipped([3, 1, 3, 0])  # max_nonfinite_updates=3: the streak reached 3 before the finite one
    assert (tmp_path / "dreamerv2_nonfinite_stop.zip").exists()
