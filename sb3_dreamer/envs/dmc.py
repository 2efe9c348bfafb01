"""DeepMind Control Suite the way the DreamerV2 reference runs it: from pixels (``dmc_vision``: 64x64 RGB
renders of camera 0, 2 for quadruped) or from proprioceptive state (``dmc_proprio``: every state vector
concatenated, float32), action repeat 2, 1000-frame episodes ended by a time limit (truncation, never
termination). Ids: ``sb3_dreamer/DMC-<domain>-<task>-v0`` (pixels) and ``sb3_dreamer/DMCProprio-<domain>-<task>-v0``.

Needs the ``dmc`` extra; pixels also need an offscreen GL: set ``MUJOCO_GL=egl`` (Debian ``libegl1``) or
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
        self.action_repeat = repeat

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        total = 0.0
        for _ in range(self.action_repeat):
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


# The 20 tasks of the paper's DMC-from-pixels figure (names as in the published score files, dmc_ dropped).
PAPER_TASKS: tuple[str, ...] = (
    "acrobot-swingup", "cartpole-balance", "cartpole-balance_sparse", "cartpole-swingup", "cartpole-swingup_sparse",
    "cheetah-run", "cup-catch", "finger-spin", "finger-turn_easy", "finger-turn_hard", "hopper-hop", "hopper-stand",
    "pendulum-swingup", "quadruped-run", "quadruped-walk", "reacher-easy", "reacher-hard", "walker-run",
    "walker-stand", "walker-walk",
)  # fmt: skip


def shimmy_task(task: str) -> str:
    """shimmy's ``domain-task`` for a task as the paper names it (the paper's ``cup`` is ``ball_in_cup``)."""
    domain, _, rest = task.partition("-")
    return f"{'ball_in_cup' if domain == 'cup' else domain}-{rest}"


def make_dmc(
    task: str = "cartpole-balance",
    size: int = 64,
    action_repeat: int = 2,
    camera_id: int | None = None,
    render_mode: str | None = None,
) -> gym.Env:
    """:param task: ``domain-task`` as the paper names it, e.g. ``cartpole-balance``, ``walker-walk``, ``cup-catch``.
    :param camera_id: the reference's choice when None: camera 2 for quadruped, else 0.
    :param render_mode: accepted for ``gym.make`` (video recorders ask for ``rgb_array``); the env always
        renders ``rgb_array`` frames, which are its observations.
    :return: a Gymnasium env with (size, size, 3) uint8 observations and a [-1, 1] Box action space.
    """
    if render_mode not in (None, "rgb_array"):
        raise ValueError(f"DMC pixel envs render rgb_array frames only, got render_mode={render_mode!r}")
    if camera_id is None:
        camera_id = 2 if task.startswith("quadruped") else 0
    _require_shimmy()
    env = gym.make(
        f"dm_control/{shimmy_task(task)}-v0",
        render_mode="rgb_array",
        render_kwargs={"width": size, "height": size, "camera_id": camera_id},
    )
    env = gym.wrappers.RescaleAction(env, np.float32(-1.0), np.float32(1.0))
    return RenderObservation(ActionRepeat(env, action_repeat), size)


class ConcatState(gym.ObservationWrapper):
    """dm_control's Dict of state vectors (scalars included) as one float32 vector, keys in order."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        shapes = [space.shape for space in env.observation_space.spaces.values()]  # type: ignore[attr-defined]
        size = int(sum(np.prod(shape, dtype=np.int64) for shape in shapes))
        self.observation_space = spaces.Box(-np.inf, np.inf, (size,), np.float32)

    def observation(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        return np.concatenate([np.asarray(value, np.float32).ravel() for value in observation.values()])


def make_dmc_proprio(task: str = "walker-walk", action_repeat: int = 2, render_mode: str | None = None) -> gym.Env:
    """DeepMind Control from proprioceptive state, as the reference's ``dmc_proprio`` (``MlpPolicy``).

    :param task: ``domain-task`` as the paper names it. :param render_mode: passed to the env (``rgb_array``
        for videos, which then needs ``MUJOCO_GL``).
    :return: a Gymnasium env with a flat float32 observation and a [-1, 1] Box action space.
    """
    _require_shimmy()
    env = gym.make(f"dm_control/{shimmy_task(task)}-v0", render_mode=render_mode)
    env = gym.wrappers.RescaleAction(env, np.float32(-1.0), np.float32(1.0))
    return ConcatState(ActionRepeat(env, action_repeat))


def _require_shimmy() -> None:
    try:
        import shimmy  # noqa: F401  (registers the dm_control/ ids)
    except ImportError as error:
        raise ImportError("DeepMind Control needs the dmc extra: pip install -e '.[dmc]'") from error


def register_dmc_envs() -> None:
    """Register ``sb3_dreamer/DMC-<domain>-<task>-v0`` (64x64 pixels) and ``sb3_dreamer/DMCProprio-<domain>-<task>-v0``
    (state vector), both at action repeat 2, for the paper's 20 tasks.
    """
    for task in PAPER_TASKS:
        for prefix, maker in (("DMC", "make_dmc"), ("DMCProprio", "make_dmc_proprio")):
            task_id = f"sb3_dreamer/{prefix}-{task}-v0"
            if task_id not in gym.registry:
                gym.register(task_id, entry_point=f"sb3_dreamer.envs.dmc:{maker}", kwargs={"task": task})
