import os

os.environ.setdefault("MUJOCO_GL", "egl")  # offscreen rendering for the DMC pixel tests, before mujoco loads

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces


class ImageEnv(gym.Env):
    """A 64x64 image env: the agent moves a bright column left/right; reward for being at the centre."""

    def __init__(self, channel_first: bool = False, channels: int = 3, continuous: bool = False, dict_obs: bool = False):
        shape = (channels, 64, 64) if channel_first else (64, 64, channels)
        self.channel_first = channel_first
        image = spaces.Box(0, 255, shape, np.uint8)
        self.observation_space = (
            spaces.Dict({"image": image, "vec": spaces.Box(-1, 1, (3,), np.float32)}) if dict_obs else image
        )
        self.action_space = spaces.Box(-1, 1, (1,), np.float32) if continuous else spaces.Discrete(3)
        self.dict_obs, self.continuous, self.pos, self.t = dict_obs, continuous, 0, 0

    def _obs(self):
        img = np.zeros(self.observation_space["image"].shape if self.dict_obs else self.observation_space.shape, np.uint8)
        if self.channel_first:
            img[:, :, self.pos] = 255
        else:
            img[:, self.pos, :] = 255
        if self.dict_obs:
            return {"image": img, "vec": np.array([self.pos / 63, self.t / 20, 0], np.float32)}
        return img

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.pos, self.t = int(self.np_random.integers(0, 64)), 0
        return self._obs(), {}

    def step(self, action):
        move = float(np.asarray(action).reshape(-1)[0]) * 4 if self.continuous else int(action) - 1
        self.pos = int(np.clip(self.pos + move, 0, 63))
        self.t += 1
        return self._obs(), float(abs(self.pos - 32) < 4), False, self.t >= 20, {}


class SpacesEnv(gym.Env):
    """An env that only carries spaces: ``reset`` and ``step`` return samples of the observation space."""

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space):
        self.observation_space, self.action_space = observation_space, action_space

    def reset(self, seed=None, options=None):
        return self.observation_space.sample(), {}

    def step(self, action):
        return self.observation_space.sample(), 0.0, False, False, {}


@pytest.fixture(autouse=True)
def _single_thread():
    threads = th.get_num_threads()
    th.set_num_threads(1)
    yield
    th.set_num_threads(threads)
