"""The optimised path (``compile_model=True``) computes the same update as the plain one."""

import numpy as np
import pytest
import torch as th
from gymnasium import spaces

from benchmarks.update_speed import SpacesEnv
from sb3_dreamer import DreamerV2


def _model(compile_model: bool) -> DreamerV2:
    env = SpacesEnv(spaces.Box(-1, 1, (5,), np.float32), spaces.Discrete(3))
    return DreamerV2.from_preset("debug", "MlpPolicy", env, seed=0, compile_model=compile_model)


def test_compiled_update_equals_the_plain_one():
    plain, compiled = _model(False), _model(True)
    rng = np.random.default_rng(0)
    for t in range(64):
        obs = rng.uniform(-1, 1, (1, 5)).astype(np.float32)
        done = np.array([t % 20 == 19])
        infos = [{"terminal_observation": obs[0]}] if done[0] else [{}]
        for model in (plain, compiled):
            model.replay_buffer.add(obs, obs, np.array([t % 3]), np.array([1.0], np.float32), done, infos)
    batch = plain.replay_buffer.sample(plain.batch_size, plain.sequence_length)
    results = []
    for model in (plain, compiled):
        th.manual_seed(1)
        metrics = model.train_step(batch)
        results.append({key: float(value) for key, value in metrics.items()})
    for key, value in results[0].items():
        assert results[1][key] == pytest.approx(value, rel=1e-4, abs=1e-5), key
    for p, q in zip(plain.policy.parameters(), compiled.policy.parameters()):
        th.testing.assert_close(p, q, rtol=1e-4, atol=1e-6)
