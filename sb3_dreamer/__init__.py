"""DreamerV2 for Stable-Baselines3."""

from sb3_dreamer.dreamer import PRESETS, CnnPolicy, DreamerConfig, DreamerPolicy, DreamerV2, MlpPolicy, MultiInputPolicy
from sb3_dreamer.dreamer.callbacks import OpenLoopVideoCallback
from sb3_dreamer.dreamer.checkpoint import ResumableCheckpointCallback
from sb3_dreamer.envs import register_envs

__version__ = "0.4.0"
__all__ = [
    "PRESETS",
    "CnnPolicy",
    "DreamerConfig",
    "DreamerPolicy",
    "DreamerV2",
    "MlpPolicy",
    "MultiInputPolicy",
    "OpenLoopVideoCallback",
    "ResumableCheckpointCallback",
]

register_envs()  # the paper's protocols as gymnasium ids: sb3_dreamer/<Game>-v0, sb3_dreamer/DMC-<task>-v0
