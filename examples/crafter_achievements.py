"""DreamerV2 on Crafter with the reference's ``crafter`` config, achievements logged.

    pip install -e ".[crafter]" && python examples/crafter_achievements.py [steps]

TensorBoard (``runs/crafter``) shows ``crafter/success_<achievement>`` and ``crafter/score`` (the geometric
mean of the 22 success rates, the benchmark's metric) next to the usual ``train/`` and ``rollout/`` curves.
"""

import sys

import gymnasium as gym

from sb3_dreamer import DreamerV2
from sb3_dreamer.envs.crafter import CrafterAchievementsCallback

if __name__ == "__main__":
    model = DreamerV2.from_preset(
        "crafter", "CnnPolicy", gym.make("sb3_dreamer/Crafter-v0"), tensorboard_log="runs/crafter", verbose=1
    )
    model.learn(
        int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000, callback=CrafterAchievementsCallback(), progress_bar=True
    )
    model.save("dreamerv2_crafter")
