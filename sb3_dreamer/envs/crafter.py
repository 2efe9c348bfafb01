"""Crafter (Hafner 2021, the ``crafter`` package) as a Gymnasium env, the way the DreamerV2 reference runs it.

64x64 RGB observations, 17 discrete actions, the reward version (+1 for each achievement unlocked the first
time in an episode, -0.1 per lost health point, +0.1 per regained one), episodes of at most 10,000 steps.
Dying ends the episode (``terminated``); the length limit truncates it. Id: ``sb3_dreamer/Crafter-v0``
(needs ``pip install -e ".[crafter]"``).

The benchmark's metric is the success rate of each of the 22 achievements (the share of episodes in which
it was unlocked at least once) and their geometric mean, the Crafter score:
:class:`CrafterAchievementsCallback` logs both, as the reference logs ``achievement_*``.
"""

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from stable_baselines3.common.callbacks import BaseCallback

ACHIEVEMENTS: tuple[str, ...] = (
    "collect_coal", "collect_diamond", "collect_drink", "collect_iron", "collect_sapling", "collect_stone",
    "collect_wood", "defeat_skeleton", "defeat_zombie", "eat_cow", "eat_plant", "make_iron_pickaxe",
    "make_iron_sword", "make_stone_pickaxe", "make_stone_sword", "make_wood_pickaxe", "make_wood_sword",
    "place_furnace", "place_plant", "place_stone", "place_table", "wake_up",
)  # fmt: skip


class CrafterEnv(gym.Env):
    """Gymnasium wrapper of ``crafter.Env``; ``info["achievements"]`` holds the episode's unlock counts.

    :param size: observation size (the reference's 64x64). :param reward: the reward version (else 0 rewards).
    :param length: episode length limit. :param render_mode: ``rgb_array`` renders the observation frame.
    """

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self, size: int = 64, reward: bool = True, length: int = 10_000, render_mode: str | None = None):
        try:
            import crafter
        except ImportError as error:
            raise ImportError("Crafter needs the crafter extra: pip install -e '.[crafter]'") from error
        self._make = lambda seed: crafter.Env(size=(size, size), reward=reward, length=length, seed=seed)
        self._env = self._make(None)
        self.observation_space = spaces.Box(0, 255, (size, size, 3), np.uint8)
        self.action_space = spaces.Discrete(len(crafter.constants.actions))
        self.render_mode = render_mode
        self._frame: np.ndarray | None = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if seed is not None:  # crafter seeds at construction; each reset then makes the next world of that seed
            self._env = self._make(seed)
        self._frame = self._env.reset()
        return self._frame, {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        self._frame, reward, done, info = self._env.step(int(action))
        terminated = bool(done and info["discount"] == 0.0)  # died; otherwise the length limit truncated it
        info = {"achievements": dict(info["achievements"])}
        return self._frame, float(reward), terminated, bool(done and not terminated), info

    def render(self) -> np.ndarray | None:
        return self._frame


def crafter_score(success_rates: dict[str, float]) -> float:
    """The Crafter score: geometric mean of the success rates in percent, ``exp(mean(log(1 + s))) - 1``."""
    rates = np.array([success_rates.get(name, 0.0) for name in ACHIEVEMENTS]) * 100
    return float(np.exp(np.mean(np.log(1 + rates))) - 1)


class CrafterAchievementsCallback(BaseCallback):
    """Log each achievement's success rate over all finished training episodes (``crafter/success_<name>``,
    in [0, 1]) and the Crafter score (``crafter/score``, 0-100), at every log dump.
    """

    def __init__(self, verbose: int = 0):
        super().__init__(verbose)
        self.episodes = 0
        self.unlocked = dict.fromkeys(ACHIEVEMENTS, 0)

    def _on_step(self) -> bool:
        for info, done in zip(self.locals["infos"], self.locals["dones"]):
            if done and "achievements" in info:
                self.episodes += 1
                for name, count in info["achievements"].items():
                    self.unlocked[name] = self.unlocked.get(name, 0) + int(count > 0)
        if self.episodes:
            rates = self.success_rates()
            for name, rate in rates.items():
                self.logger.record(f"crafter/success_{name}", rate)
            self.logger.record("crafter/score", crafter_score(rates))
            self.logger.record("crafter/episodes", self.episodes)
        return True

    def success_rates(self) -> dict[str, float]:
        """Achievement -> share of finished episodes that unlocked it."""
        return {name: count / max(self.episodes, 1) for name, count in self.unlocked.items()}


def register_crafter_env() -> None:
    """Register ``sb3_dreamer/Crafter-v0`` (no crafter import until ``make``)."""
    if "sb3_dreamer/Crafter-v0" not in gym.registry:
        gym.register("sb3_dreamer/Crafter-v0", entry_point="sb3_dreamer.envs.crafter:CrafterEnv")
