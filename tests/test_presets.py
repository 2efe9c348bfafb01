import inspect

import numpy as np
import pytest
from gymnasium import spaces

from sb3_dreamer import PRESETS, DreamerConfig, DreamerV2
from tests.conftest import ImageEnv

IMAGE_GRAY = spaces.Box(0, 255, (64, 64, 1), np.uint8)


class SpacesEnv(ImageEnv):
    def __init__(self, observation_space, action_space):
        super().__init__()
        self.observation_space, self.action_space = observation_space, action_space


@pytest.mark.parametrize(
    ("preset", "policy", "obs_space", "act_space"),
    [
        ("atari", "CnnPolicy", IMAGE_GRAY, spaces.Discrete(18)),
        ("dmc_vision", "CnnPolicy", spaces.Box(0, 255, (64, 64, 3), np.uint8), spaces.Box(-1, 1, (6,), np.float32)),
        ("dmc_proprio", "MlpPolicy", spaces.Box(-np.inf, np.inf, (24,), np.float32), spaces.Box(-1, 1, (6,), np.float32)),
        ("crafter", "CnnPolicy", spaces.Box(0, 255, (64, 64, 3), np.uint8), spaces.Discrete(17)),
        ("classic", "MlpPolicy", spaces.Box(-np.inf, np.inf, (4,), np.float32), spaces.Discrete(2)),
    ],
)
def test_presets_build(preset, policy, obs_space, act_space):
    model = DreamerV2.from_preset(preset, policy, SpacesEnv(obs_space, act_space), seed=0)
    for key, value in PRESETS[preset].items():
        assert _setting(model, key) == value, key
    assert model.replay_buffer.storage is None


def test_atari_preset_is_the_papers_model_size():
    model = DreamerV2("CnnPolicy", SpacesEnv(IMAGE_GRAY, spaces.Discrete(18)))
    rssm = model.policy.world_model.rssm
    assert (rssm.deter_size, rssm.stoch_size, rssm.stoch_classes, rssm.feat_size) == (600, 32, 32, 1624)
    world_model = sum(p.numel() for p in model.policy.world_model.parameters())
    total = world_model + sum(p.numel() for p in [*model.policy.actor.parameters(), *model.policy.critic.parameters()])
    # The paper reports 22M parameters (sec. 4); the world model alone is about 20M.
    assert 18e6 < world_model < 22e6 and 20e6 < total < 24e6
    assert model.policy.world_model.encoder.embed_size == 2 * 2 * 384


def test_zoo_hyperparameters_match_the_presets_and_benchmark():
    import yaml

    from benchmarks.classic_control import DREAMER

    with open("hyperparams/dreamerv2.yml") as file:
        zoo = yaml.safe_load(file)
    defaults = {name: p.default for name, p in inspect.signature(DreamerV2.__init__).parameters.items()}
    defaults.update(DreamerConfig().to_dict())
    for env_id in ("CartPole-v1", "Pendulum-v1"):
        params = {k: v for k, v in zoo[env_id].items() if k not in ("n_timesteps", "policy")}
        benchmark = DREAMER[("dreamerv2_fast", env_id)]  # the benchmark's default
        expected = {k: v for k, v in benchmark.items() if k in params}
        assert params == expected, env_id
        missing = {k: v for k, v in benchmark.items() if k not in params and v != defaults[k]}
        assert not missing, f"{env_id}: the benchmark's settings that the yml lacks: {missing}"
    atari = {k: v for k, v in zoo["atari"].items() if k not in ("n_timesteps", "policy")}
    model = DreamerV2("CnnPolicy", SpacesEnv(IMAGE_GRAY, spaces.Discrete(18)))
    for key, value in atari.items():
        assert _setting(model, key) == value, key


def _setting(model: DreamerV2, key: str) -> object:
    """A hyperparameter as the model holds it: in its config, or as SB3's attribute."""
    if key in DreamerConfig.names():
        return getattr(model.config, key)
    attribute = getattr(model, key)
    return attribute.frequency if key == "train_freq" else attribute
