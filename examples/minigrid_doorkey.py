"""The reference README's MiniGrid example (danijar/dreamerv2 ``example.py``) with sb3_dreamer.

    pip install -e ".[minigrid]" && python examples/minigrid_doorkey.py [steps]

Same env (``MiniGrid-DoorKey-6x6-v0``, RGB partial view resized to 64x64) and the same overrides of the
``crafter`` config: train every 10 steps, reinforce gradients, entropy 3e-3, KL scale 1, discount 0.99.
Discrete actions need no ``OneHotAction`` here (the agent is one-hot inside). A CPU-sized run of the same
setup, with its learning curve: ``benchmarks/minigrid_doorkey.py``.
"""

import sys

import gymnasium as gym
from minigrid.wrappers import ImgObsWrapper, RGBImgPartialObsWrapper

from sb3_dreamer import DreamerV2
from sb3_dreamer.envs.wrappers import ResizeImage

OVERRIDES = dict(train_freq=10, actor_grad="reinforce", actor_entropy=3e-3, kl_scale=1.0, gamma=0.99)


def make_env() -> gym.Env:
    return ResizeImage(ImgObsWrapper(RGBImgPartialObsWrapper(gym.make("MiniGrid-DoorKey-6x6-v0"))))


if __name__ == "__main__":
    model = DreamerV2.from_preset("crafter", "CnnPolicy", make_env(), tensorboard_log="runs/minigrid", verbose=1, **OVERRIDES)
    model.learn(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000, progress_bar=True)
    model.save("dreamerv2_minigrid_doorkey")
