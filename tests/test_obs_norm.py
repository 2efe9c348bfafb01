"""``normalize_obs``: vector observations standardised with statistics fixed from the replay when training starts."""

import gymnasium as gym
import numpy as np
import torch as th

from sb3_dreamer import PRESETS, DreamerV2
from sb3_dreamer.common.networks import preprocess_obs
from tests.conftest import ImageEnv

DEBUG = PRESETS["debug"]


def _stored(model: DreamerV2, key: str = "obs") -> th.Tensor:
    return th.as_tensor(model.replay_buffer.stored_observations([key])[key])


def test_statistics_are_fixed_from_the_replay_when_training_starts(tmp_path):
    model = DreamerV2("MlpPolicy", "CartPole-v1", **{**DEBUG, "seed": 0, "normalize_obs": True})
    obs_norm = model.policy.world_model.obs_norm
    model.learn(DEBUG["learning_starts"])  # fills the replay, no update yet
    assert not obs_norm.is_set
    stored = _stored(model)
    model.train(gradient_steps=1, batch_size=DEBUG["batch_size"])
    assert obs_norm.is_set
    th.testing.assert_close(obs_norm.mean, stored.mean(0))
    th.testing.assert_close(obs_norm.std, stored.std(0))
    standardised = model.policy.world_model.preprocess({"obs": stored})["obs"]
    th.testing.assert_close(standardised.mean(0), th.zeros(4), atol=1e-5, rtol=0)
    th.testing.assert_close(standardised.std(0), th.ones(4), atol=1e-5, rtol=0)

    mean, std = obs_norm.mean.clone(), obs_norm.std.clone()
    model.learn(64, reset_num_timesteps=False)  # more data, same statistics
    assert len(_stored(model)) > len(stored)
    th.testing.assert_close(obs_norm.mean, mean)
    model.save(tmp_path / "model.zip")
    loaded = DreamerV2.load(tmp_path / "model.zip", env=gym.make("CartPole-v1"))
    th.testing.assert_close(loaded.policy.world_model.obs_norm.std, std)
    obs = np.zeros((1, 4), np.float32)
    predictions = []
    for agent in (model, loaded):
        th.manual_seed(0)
        predictions.append(agent.predict(obs, deterministic=True))
    assert predictions[0][0] == predictions[1][0]
    for a, b in zip(predictions[0][1], predictions[1][1]):
        np.testing.assert_allclose(a, b, atol=1e-6)
    loaded.learn(DEBUG["learning_starts"] + 16)  # a new replay: the loaded statistics are kept
    th.testing.assert_close(loaded.policy.world_model.obs_norm.mean, mean)


def test_images_are_left_alone_and_constant_dimensions_floored():
    model = DreamerV2("MultiInputPolicy", ImageEnv(dict_obs=True), **{**DEBUG, "seed": 0, "normalize_obs": True})
    model.learn(DEBUG["learning_starts"] + 8)
    world_model = model.policy.world_model
    assert list(world_model.obs_norm.sizes) == ["vec"]
    assert world_model.obs_norm.std[2] == world_model.obs_norm.min_std  # the env's third entry is always 0
    stored = {key: _stored(model, key) for key in ("image", "vec")}
    out = world_model.preprocess(stored)
    th.testing.assert_close(out["image"], preprocess_obs(stored, ["image"])["image"])
    assert out["vec"][:, 2].abs().max() == 0


def test_off_by_default_and_without_vector_observations():
    assert DreamerV2("MlpPolicy", "CartPole-v1", **DEBUG).policy.world_model.obs_norm is None
    image_only = DreamerV2("CnnPolicy", ImageEnv(), **{**DEBUG, "normalize_obs": True})
    assert image_only.policy.world_model.obs_norm is None
