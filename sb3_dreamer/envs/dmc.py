"""DeepMind Control Suite from pixels, the way the DreamerV2 reference runs it: 64x64 RGB renders of
camera 0, action repeat 2, 1000-frame episodes ended by a time limit (truncation, never termination).

Needs the ``dmc`` extra and an offscreen GL: set ``MUJOCO_GL=egl`` (Debian ``libegl1``) or
``MUJOCO_GL=osmesa`` (``libosmesa6``) before the first import of mujoco.
"""

from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class ActionRepeat(gym.Wrapper):
    """Repeat each action ``repeat`` times, summing rewards and stopping at the end of the episode."""

    def __init__(self, env: gym.Env, repeat: int):
        super().__init__(env)
        self.repeat = repeat

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        total = 0.0
        for _ in range(self.repeat):
            obs, reward, terminated, truncated, info = self.env.step(action)
            total += float(reward)
            if terminated or truncated:
                break
        return obs, total, terminated, truncated, info


class RenderObservation(gym.ObservationWrapper):
    """Replace the observation with the env's ``rgb_array`` render, (size, size, 3) uint8."""

    def __init__(self, env: gym.Env, size: int):
        super().__init__(env)
        self.observation_space = spaces.Box(0, 255, (size, size, 3), np.uint8)

    def observation(self, observation: Any) -> np.ndarray:
        return np.asarray(self.env.render(), dtype=np.uint8)


def make_dmc(task: str = "cartpole-balance", size: int = 64, action_repeat: int = 2, camera_id: int = 0) -> gym.Env:
    """:param task: ``domain-task`` as in shimmy's ids, e.g. ``cartpole-balance``, ``walker-walk``.
    :return: a Gymnasium env with (size, size, 3) uint8 observations and a [-1, 1] Box action space.
    """
    try:
        import shimmy  # noqa: F401  (registers the dm_control/ ids)
    except ImportError as error:
        raise ImportError("DeepMind Control needs the dmc extra: pip install -e '.[dmc]'") from error
    env = gym.make(
        f"dm_control/{task}-v0",
        render_mode="rgb_array",
        render_kwargs={"width": size, "height": size, "camera_id": camera_id},
    )
    env = gym.wrappers.RescaleAction(env, np.float32(-1.0), np.float32(1.0))
    return RenderObservation(ActionRepeat(env, action_repeat), size)
