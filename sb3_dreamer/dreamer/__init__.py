from sb3_dreamer.dreamer.config import DreamerConfig
from sb3_dreamer.dreamer.dreamer import DreamerV2
from sb3_dreamer.dreamer.policies import CnnPolicy, DreamerPolicy, MlpPolicy, MultiInputPolicy
from sb3_dreamer.dreamer.presets import PRESETS

__all__ = ["PRESETS", "CnnPolicy", "DreamerConfig", "DreamerPolicy", "DreamerV2", "MlpPolicy", "MultiInputPolicy"]
