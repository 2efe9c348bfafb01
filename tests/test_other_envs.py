"""Crafter, DeepMind Control (state and pixels), MiniGrid and the custom-env wrappers."""

import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from stable_baselines3.common.env_util import make_vec_env

from sb3_dreamer import DreamerV2
from sb3_dreamer.envs.crafter import ACHIEVEMENTS, CrafterAchievementsCallback, crafter_score
from sb3_dreamer.envs.dmc import PAPER_TASKS, shimmy_task
from sb3_dreamer.envs.wrappers import PlainDict, ResizeImage

ROOT = Path(__file__).parents[1]


def test_crafter_env_spaces_seeding_and_episode_end():
    pytest.importorskip("crafter")
    env = gym.make("sb3_dreamer/Crafter-v0")
    assert env.observation_space == spaces.Box(0, 255, (64, 64, 3), np.uint8)
    assert env.action_space == spaces.Discrete(17)
    first, _ = env.reset(seed=3)
    np.testing.assert_array_equal(gym.make("sb3_dreamer/Crafter-v0").reset(seed=3)[0], first)
    short = gym.make("sb3_dreamer/Crafter-v0", length=20)
    short.reset(seed=0)
    for _ in range(20):
        obs, reward, terminated, truncated, info = short.step(0)  # noop: nobody dies in 20 steps
    assert truncated and not terminated and set(info["achievements"]) == set(ACHIEVEMENTS)


def test_crafter_score_and_achievement_logging():
    pytest.importorskip("crafter")
    assert crafter_score(dict.fromkeys(ACHIEVEMENTS, 1.0)) == pytest.approx(100.0)
    assert crafter_score({}) == 0.0
    env = make_vec_env("sb3_dreamer/Crafter-v0", n_envs=1, seed=0, env_kwargs={"length": 30})
    callback = CrafterAchievementsCallback()
    model = DreamerV2.from_preset("debug", "CnnPolicy", env, seed=0)
    model.learn(100, callback=callback)
    assert callback.episodes == 3
    assert set(callback.success_rates()) == set(ACHIEVEMENTS)
    assert "crafter/score" in model.logger.name_to_value


def test_dmc_ids_exist_for_every_paper_task():
    pytest.importorskip("shimmy")
    import shimmy  # noqa: F401

    for task in PAPER_TASKS:
        assert f"dm_control/{shimmy_task(task)}-v0" in gym.registry, task
        assert f"sb3_dreamer/DMC-{task}-v0" in gym.registry and f"sb3_dreamer/DMCProprio-{task}-v0" in gym.registry


def test_dmc_proprio_env_and_a_short_run():
    pytest.importorskip("shimmy")
    env = gym.make("sb3_dreamer/DMCProprio-walker-walk-v0")
    assert env.observation_space.shape == (24,) and env.observation_space.dtype == np.float32
    assert env.action_space.shape == (6,) and env.action_space.low.min() == -1
    env.reset(seed=0)
    steps, truncated = 0, False
    while not truncated:
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        assert not terminated
        steps += 1
    assert steps == 500  # 1000 frames at action repeat 2
    model = DreamerV2.from_preset("debug", "MlpPolicy", "sb3_dreamer/DMCProprio-cup-catch-v0", seed=0)
    model.learn(150)
    assert model._n_updates > 0 and model._frames_per_step == 2


def test_dmc_pixels_env_renders_64x64():
    pytest.importorskip("shimmy")
    env = gym.make("sb3_dreamer/DMC-cup-catch-v0")
    obs, _ = env.reset(seed=0)
    assert obs.shape == (64, 64, 3) and obs.dtype == np.uint8 and obs.std() > 0  # a rendered scene, not blank
    obs, *_ = env.step(env.action_space.sample())
    assert obs.shape == (64, 64, 3)


class _Images(gym.Env):
    def __init__(self, observation_space: spaces.Space):
        self.observation_space, self.action_space = observation_space, spaces.Discrete(2)

    def reset(self, seed=None, options=None):
        return self.observation_space.sample(), {}


def test_resize_image_keeps_channels_and_dict_keys():
    for shape, expected in (((56, 56, 3), (64, 64, 3)), ((84, 84), (64, 64, 1)), ((64, 64, 1), (64, 64, 1))):
        env = ResizeImage(_Images(spaces.Box(0, 255, shape, np.uint8)))
        assert env.observation_space.shape == expected and env.reset()[0].shape == expected
    mixed = spaces.Dict({"image": spaces.Box(0, 255, (96, 96, 3), np.uint8), "vec": spaces.Box(-1, 1, (3,), np.float32)})
    env = ResizeImage(_Images(mixed))
    obs, _ = env.reset()
    assert obs["image"].shape == (64, 64, 3) and obs["vec"].shape == (3,)
    with pytest.raises(ValueError, match="uint8 image"):
        ResizeImage(_Images(spaces.Box(-1, 1, (3,), np.float32)))
    with pytest.raises(ValueError, match="uint8 image"):  # a Dict without any image
        ResizeImage(_Images(spaces.Dict({"vec": spaces.Box(-1, 1, (3,), np.float32)})))


def test_plain_dict_one_hots_discrete_and_drops_text():
    space = spaces.Dict(
        {"image": spaces.Box(0, 255, (64, 64, 3), np.uint8), "direction": spaces.Discrete(4), "mission": spaces.Text(20)}
    )
    with pytest.warns(UserWarning, match="mission"):
        env = PlainDict(_Images(space))
    assert set(env.observation_space.spaces) == {"image", "direction"}
    obs = env.observation({"image": np.zeros((64, 64, 3), np.uint8), "direction": 2, "mission": "go"})
    np.testing.assert_array_equal(obs["direction"], [0, 0, 1, 0])
    model = DreamerV2.from_preset("debug", "MultiInputPolicy", env, seed=0)
    assert set(model.observation_space.spaces) == {"image", "direction"}


def test_minigrid_example_env_trains():
    pytest.importorskip("minigrid")
    sys.path.insert(0, str(ROOT))
    from examples.minigrid_doorkey import OVERRIDES, make_env

    env = make_env()
    assert env.observation_space == spaces.Box(0, 255, (64, 64, 3), np.uint8) and env.action_space == spaces.Discrete(7)
    model = DreamerV2.from_preset("debug", "CnnPolicy", env, seed=0, **{**OVERRIDES, "train_freq": 8})
    model.learn(300)
    assert model._n_updates > 0


@pytest.mark.parametrize("example", ["minigrid_doorkey.py", "crafter_achievements.py"])
def test_examples_run_a_few_hundred_steps(tmp_path, example):
    pytest.importorskip("minigrid" if "minigrid" in example else "crafter")
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / example), "300"], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert list(tmp_path.glob("dreamerv2_*.zip")) and list((tmp_path / "runs").iterdir())
