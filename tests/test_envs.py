import os

import numpy as np
import pytest

from sb3_dreamer.envs.dmc import ActionRepeat

gym = pytest.importorskip("gymnasium")


class Counter(gym.Env):
    observation_space = gym.spaces.Box(0, 100, (1,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, seed=None, options=None):
        self.t = 0
        return np.zeros(1, np.float32), {}

    def step(self, action):
        self.t += 1
        return np.array([self.t], np.float32), 1.0, self.t >= 5, False, {}


def test_action_repeat_sums_rewards_and_stops_at_episode_end():
    env = ActionRepeat(Counter(), 2)
    env.reset()
    assert env.step(0)[:3] == (np.array([2.0]), 2.0, False)
    env.step(0)
    obs, reward, terminated, _, _ = env.step(0)
    assert obs[0] == 5 and reward == 1.0 and terminated


@pytest.mark.slow
def test_dmc_pixels_env():
    pytest.importorskip("shimmy")
    if "MUJOCO_GL" not in os.environ:
        pytest.skip("offscreen rendering needs MUJOCO_GL=egl (or osmesa) set before Python starts")
    from sb3_dreamer.envs.dmc import make_dmc

    env = make_dmc("cartpole-balance")
    obs, _ = env.reset(seed=0)
    assert obs.shape == (64, 64, 3) and obs.dtype == np.uint8
    assert env.action_space.low.min() == -1 and env.action_space.high.max() == 1
    steps, truncated = 0, False
    while not truncated:
        obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        assert not terminated
        steps += 1
    assert steps == 500  # 1000 frames at action repeat 2
