"""Bringing any Gymnasium env to DreamerV2: the equivalents of the reference API's helpers.

The reference wraps custom envs in ``GymWrapper``, ``ResizeImage`` and ``OneHotAction``. Here:

- images: :class:`ResizeImage` resizes every image (a uint8 Box of shape HxW or HxWxC, alone or in a Dict) to
  64x64, keeping its channels (grayscale becomes HxWx1);
- Dict observations: :class:`PlainDict` keeps the Box keys, turns Discrete keys into one-hot vectors and
  drops keys DreamerV2 cannot model (text, sequences), so ``MultiInputPolicy`` takes images and vectors mixed;
- actions: ``Discrete`` is taken as it is (the agent samples one-hot actions inside, as ``OneHotAction``
  gives the reference), 1-D ``Box`` too (rescaled to [-1, 1] inside); nothing to wrap.

Example (the reference README's MiniGrid env)::

    env = ResizeImage(ImgObsWrapper(RGBImgPartialObsWrapper(gym.make("MiniGrid-DoorKey-6x6-v0"))))
    model = DreamerV2.from_preset("crafter", "CnnPolicy", env)
"""

import warnings
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces


def _is_image(space: spaces.Space) -> bool:
    return isinstance(space, spaces.Box) and space.dtype == np.uint8 and len(space.shape) in (2, 3)


class ResizeImage(gym.ObservationWrapper):
    """Resize every uint8 image observation (Box or Dict values) to ``size`` with area interpolation.

    :param size: (height, width), the agent's 64x64 by default.
    """

    def __init__(self, env: gym.Env, size: tuple[int, int] = (64, 64)):
        super().__init__(env)
        self.size = tuple(size)
        space = env.observation_space
        self.is_dict = isinstance(space, spaces.Dict)
        self.keys = [k for k, v in space.spaces.items() if _is_image(v)] if isinstance(space, spaces.Dict) else []
        if isinstance(space, spaces.Dict) and self.keys:
            self.observation_space = spaces.Dict(
                {k: self._resized(v) if k in self.keys else v for k, v in space.spaces.items()}  # type: ignore[arg-type]
            )
        elif isinstance(space, spaces.Box) and _is_image(space):
            self.observation_space = self._resized(space)
        else:
            raise ValueError(f"ResizeImage needs uint8 image observations (HxW or HxWxC, alone or in a Dict), got {space}.")

    def _resized(self, space: spaces.Box) -> spaces.Box:
        channels = space.shape[2] if len(space.shape) == 3 else 1
        return spaces.Box(0, 255, (*self.size, channels), np.uint8)

    def _resize(self, image: np.ndarray) -> np.ndarray:
        import cv2

        if image.shape[:2] != self.size:
            image = cv2.resize(image, self.size[::-1], interpolation=cv2.INTER_AREA)
        return image.reshape(*self.size, -1)

    def observation(self, observation: Any) -> Any:
        if not self.is_dict:
            return self._resize(observation)
        return {k: self._resize(v) if k in self.keys else v for k, v in observation.items()}


class PlainDict(gym.ObservationWrapper):
    """A Dict observation as DreamerV2 takes it: Box keys kept, Discrete keys one-hot (float32), other keys
    (Text, Sequence, Graph, nested spaces) dropped with a warning naming them.
    """

    def __init__(self, env: gym.Env):
        super().__init__(env)
        if not isinstance(env.observation_space, spaces.Dict):
            raise ValueError(f"PlainDict needs a Dict observation space, got {env.observation_space}.")
        kept: dict[str, spaces.Space] = {}
        dropped = []
        for key, space in env.observation_space.spaces.items():
            if isinstance(space, spaces.Box):
                kept[key] = space
            elif isinstance(space, spaces.Discrete):
                kept[key] = spaces.Box(0.0, 1.0, (int(space.n),), np.float32)
            else:
                dropped.append(f"{key} ({type(space).__name__})")
        if dropped:
            warnings.warn(f"PlainDict drops observation keys DreamerV2 cannot model: {', '.join(dropped)}", stacklevel=2)
        self.observation_space = spaces.Dict(kept)
        self._discrete = {k: s for k, s in env.observation_space.spaces.items() if isinstance(s, spaces.Discrete)}

    def observation(self, observation: dict[str, Any]) -> dict[str, Any]:
        plain = {}
        for key in self.observation_space.spaces:  # type: ignore[attr-defined]
            value = observation[key]
            if key in self._discrete:
                value = np.eye(int(self._discrete[key].n), dtype=np.float32)[int(value) - int(self._discrete[key].start)]
            plain[key] = value
        return plain
