"""Models saved by sb3_dreamer 0.3 (hyperparameters as attributes, CNNs with a layout module, no bias before the
LayerNorms) load with ``load`` and ``load_safe``, predict, and continue training with their optimiser state."""

import pathlib

import numpy as np
import torch as th
from gymnasium import spaces

from sb3_dreamer import DreamerV2
from sb3_dreamer.dreamer.persistence import upgrade_state_dict
from tests.conftest import SpacesEnv

OLD = pathlib.Path(__file__).parent / "data" / "dreamerv2_0.3_multiinput.zip"  # debug preset, norm="layer", 6 updates


def test_a_0_3_zip_loads_predicts_and_trains_on():
    model = DreamerV2.load(OLD, device="cpu")
    assert model.config.norm == "layer" and model.config.deter_size == 16 and model._n_updates == 6
    assert "deter_size" not in model.__dict__  # gathered into the config
    policy = model.policy
    assert th.equal(policy.world_model.rssm.cell.linear.bias, th.zeros_like(policy.world_model.rssm.cell.linear.bias))
    # The saved Adam moments moved to their parameters' new positions; the new biases have none.
    optimizer = policy.model_optimizer
    with_state = {n for n, p in policy.world_model.named_parameters() if optimizer.state.get(p)}
    new_biases = {"rssm.cell.linear.bias"} | {f"{net}.{i}.bias" for net in ("encoder.mlp", "decoder.mlp", "reward_head",
                                                                           "discount_head") for i in (0, 3)}  # fmt: skip
    assert with_state == {n for n, _ in policy.world_model.named_parameters()} - new_biases
    for name, param in policy.world_model.named_parameters():
        if name in with_state:
            assert optimizer.state[param]["exp_avg"].shape == param.shape, name
    obs = {"image": np.zeros((1, 64, 64, 1), np.uint8), "vec": np.zeros((1, 3), np.float32)}
    action, state = model.predict(obs, deterministic=True)
    assert action.shape == (1,) and all(np.isfinite(s).all() for s in state)
    model.set_env(model_env())
    model.learn(40, reset_num_timesteps=False)
    assert model._n_updates > 6
    safe = DreamerV2.load_safe(OLD)
    loaded = DreamerV2.load(OLD, device="cpu")
    for (name, a), b in zip(loaded.policy.state_dict().items(), safe.policy.state_dict().values()):
        th.testing.assert_close(a, b, msg=name)


def model_env() -> SpacesEnv:
    image, vec = spaces.Box(0, 255, (64, 64, 1), np.uint8), spaces.Box(-1, 1, (3,), np.float32)
    return SpacesEnv(spaces.Dict({"image": image, "vec": vec}), spaces.Discrete(3))


def test_the_upgrade_leaves_todays_state_dicts_alone():
    model = DreamerV2.load(OLD, device="cpu")
    state = model.policy.state_dict()
    assert upgrade_state_dict(state, state) is state
