"""CUDA checks, run where a GPU is present: ``python -m pytest -m gpu``."""

import pytest
import torch as th

from sb3_dreamer import PRESETS, DreamerV2
from tests.conftest import ImageEnv

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not th.cuda.is_available(), reason="needs CUDA")]


@pytest.mark.parametrize("mixed_precision", ["no", "bf16", "fp16"])
def test_cuda_update_and_predict(mixed_precision):
    model = DreamerV2(
        "CnnPolicy", ImageEnv(), **{**PRESETS["debug"], "seed": 0}, device="cuda", mixed_precision=mixed_precision
    )
    model.learn(100)
    metrics = model.train_step(model.replay_buffer.sample(4, 8))
    assert all(th.isfinite(v).all() for v in metrics.values())
    obs = model.get_env().reset()
    action, state = model.predict(obs, deterministic=True)
    assert action.shape == (1,) and state[0].shape == (1, PRESETS["debug"]["deter_size"])


def test_cpu_and_cuda_compute_the_same_model():
    cpu = DreamerV2("CnnPolicy", ImageEnv(), **{**PRESETS["debug"], "seed": 0}, device="cpu")
    cpu.learn(100)
    cuda = DreamerV2("CnnPolicy", ImageEnv(), **{**PRESETS["debug"], "seed": 0}, device="cuda")
    cuda.set_parameters(cpu.get_parameters())
    obs = cpu.replay_buffer.sample(4, 8).obs
    outputs = []
    for model in (cpu, cuda):
        world_model = model.policy.world_model
        with th.no_grad():
            embed = world_model.embed({k: v[0].to(model.device) for k, v in obs.items()})
            rssm = world_model.rssm
            post = rssm.obs_step(
                rssm.initial(4, model.device), th.zeros(4, 3, device=model.device), embed, th.ones(4, device=model.device)
            )
        outputs.append((embed.cpu(), post.deter.cpu(), post.logits.cpu()))
    for a, b in zip(*outputs):
        assert th.allclose(a, b, atol=1e-4, rtol=1e-3)
