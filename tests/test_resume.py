"""Resuming from a saved model and replay buffer: nothing lost, nothing loaded twice, counters continue."""

import numpy as np
import pytest
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.save_util import save_to_pkl

from sb3_dreamer import DreamerV2


def test_resume_keeps_replay_and_counters(tmp_path):
    model = DreamerV2.from_preset("debug", "MlpPolicy", make_vec_env("CartPole-v1", n_envs=2, seed=0), seed=0)
    model.learn(300)
    model.save(tmp_path / "model")
    model.save_replay_buffer(tmp_path / "replay")
    saved = {k: v.copy() for k, v in model.replay_buffer.storage.items()}
    size, steps, updates = model.replay_buffer.size(), model.num_timesteps, model._n_updates

    resumed = DreamerV2.load(tmp_path / "model", env=make_vec_env("CartPole-v1", n_envs=2, seed=1))
    resumed.load_replay_buffer(tmp_path / "replay")
    resumed.load_replay_buffer(tmp_path / "replay")  # loading again replaces, never appends
    assert resumed.replay_buffer.size() == size
    for key, value in saved.items():
        np.testing.assert_array_equal(resumed.replay_buffer.storage[key], value)
    assert (resumed.num_timesteps, resumed._n_updates) == (steps, updates)

    resumed.learn(100, reset_num_timesteps=False)
    assert resumed.num_timesteps >= steps + 100 and resumed._n_updates > updates
    assert resumed.replay_buffer.size() > size


def test_loading_a_foreign_or_mismatched_buffer_says_what_is_wrong(tmp_path):
    model = DreamerV2.from_preset("debug", "MlpPolicy", make_vec_env("CartPole-v1", n_envs=1, seed=0), seed=0)
    save_to_pkl(tmp_path / "other.pkl", {"not": "a buffer"})
    with pytest.raises(TypeError, match="SequenceReplayBuffer"):
        model.load_replay_buffer(tmp_path / "other.pkl")
    two = DreamerV2.from_preset("debug", "MlpPolicy", make_vec_env("CartPole-v1", n_envs=2, seed=0), seed=0)
    two.learn(100)
    two.save_replay_buffer(tmp_path / "two")
    with pytest.raises(ValueError, match="same number of envs"):
        model.load_replay_buffer(tmp_path / "two")


def test_a_save_that_fails_midway_leaves_the_previous_checkpoint(tmp_path):
    model = DreamerV2.from_preset("debug", "MlpPolicy", make_vec_env("CartPole-v1", n_envs=1, seed=0), seed=0)
    model.save(tmp_path / "ckpt")
    before = (tmp_path / "ckpt.zip").read_bytes()
    broken = open(tmp_path / "handle", "w")  # noqa: SIM115
    broken.close()
    model.unpicklable = broken  # a closed file cannot be pickled: the write fails halfway through the zip
    with pytest.raises(Exception, match="closed file"):
        model.save(tmp_path / "ckpt")
    assert (tmp_path / "ckpt.zip").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.zip", "handle"]  # no partial file left
    del model.unpicklable
    model.save_replay_buffer(tmp_path / "replay")
    assert (tmp_path / "replay.pkl").exists()
