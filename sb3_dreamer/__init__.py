"""DreamerV2 for Stable-Baselines3."""

from sb3_dreamer.dreamer import PRESETS, CnnPolicy, DreamerPolicy, DreamerV2, MlpPolicy, MultiInputPolicy

__version__ = "0.1.0"
__all__ = ["PRESETS", "CnnPolicy", "DreamerPolicy", "DreamerV2", "MlpPolicy", "MultiInputPolicy"]
