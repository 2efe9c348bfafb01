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


def _filled(discrete: bool, **kwargs) -> DreamerV2:  # noqa: ANN003
    import numpy as np
    from gymnasium import spaces

    from tests.conftest import SpacesEnv

    action_space = spaces.Discrete(3) if discrete else spaces.Box(-1, 1, (2,), np.float32)
    env = SpacesEnv(spaces.Box(-1, 1, (5,), np.float32), action_space)
    model = DreamerV2.from_preset("debug", "MlpPolicy", env, seed=0, device="cuda", **kwargs)
    rng = np.random.default_rng(0)
    for t in range(64):
        obs = rng.uniform(-1, 1, (1, 5)).astype(np.float32)
        action = np.array([t % 3]) if discrete else rng.uniform(-1, 1, (1, 2)).astype(np.float32)
        model.replay_buffer.add(obs, obs, action, np.array([1.0], np.float32), np.array([False]), [{}])
    return model


@pytest.mark.parametrize("discrete", [True, False])  # reinforce; dynamics (gradients through the frozen model)
def test_cuda_graph_update_equals_the_eager_one(discrete):
    eager, graphed = _filled(discrete), _filled(discrete, cuda_graph=True)
    batches = [eager.replay_buffer.sample(eager.batch_size, eager.config.sequence_length) for _ in range(6)]
    for i, batch in enumerate(batches):  # 4 eager updates (the first creates the optimiser state), capture, replay
        results = []
        for model in (eager, graphed):
            th.manual_seed(i)
            results.append({key: float(value) for key, value in model.train_step(batch).items()})
        for key, value in results[0].items():
            assert results[1][key] == pytest.approx(value, rel=1e-3, abs=1e-5), (i, key)
    assert graphed._execution._graphed_update is not None and graphed._execution._graphed_update.captures == 1
    for p, q in zip(eager.policy.parameters(), graphed.policy.parameters()):
        th.testing.assert_close(p, q, rtol=1e-3, atol=1e-5)
    # A non-finite batch replayed through the graph skips all three steps and leaves the weights alone.
    before = [p.detach().clone() for p in graphed.policy.parameters()]
    bad = batches[0]._replace(obs={k: th.full_like(v, float("nan")) for k, v in batches[0].obs.items()})
    assert float(graphed.train_step(bad)["skipped_steps"]) == 3.0
    assert all(th.equal(p, q) for p, q in zip(before, graphed.policy.parameters()))


def test_cuda_graph_trains_in_bf16_and_learn():
    model = DreamerV2("CnnPolicy", ImageEnv(), **{**PRESETS["debug"], "seed": 0}, device="cuda", mixed_precision="bf16",
                      cuda_graph=True)  # fmt: skip
    model.learn(200)
    assert model._execution._graphed_update is not None and model._execution._graphed_update.captures == 1
    assert model._execution._graphed_act is not None and model._execution._graphed_act.captures == 1
    metrics = model.train_step(model.replay_buffer.sample(model.batch_size, model.config.sequence_length))
    assert all(th.isfinite(v).all() for v in metrics.values())


def test_cuda_graph_acting_step_equals_the_eager_one():
    from sb3_dreamer.accel.cuda_graph import GraphedCall

    model = DreamerV2("CnnPolicy", ImageEnv(), **{**PRESETS["debug"], "seed": 0}, device="cuda", expl_noise=0.3)
    graphed = GraphedCall(model._act_step, warmup=2)
    state = model.policy.initial_state(1)
    latent, action = state.latent, state.action
    obs = th.randint(0, 255, (1, 3, 64, 64), dtype=th.uint8, device="cuda")
    for i in range(5):  # 2 eager warm-up calls, the capture, 2 replays
        inputs = (obs, latent.deter, latent.stoch, latent.logits, action, th.full((1,), float(i == 0), device="cuda"))
        outputs = []
        for fn in (model._act_step, graphed):
            th.manual_seed(i)
            with th.no_grad():
                outputs.append(fn(*inputs))
        for a, b in zip(*outputs):
            th.testing.assert_close(a, b)
        action, deter, stoch, logits = outputs[0]
        latent = latent._replace(deter=deter, stoch=stoch, logits=logits)
    assert graphed.captures == 1


def test_cuda_graph_is_captured_again_when_a_hyperparameter_changes():
    model = _filled(True, cuda_graph=True)
    for _ in range(6):
        model.train_step(model.replay_buffer.sample(model.batch_size, model.config.sequence_length))
    assert model._execution._graphed_update is not None and model._execution._graphed_update.captures == 1
    model.config = model.config.replace(actor_entropy=model.config.actor_entropy * 10)  # e.g. annealed by a callback
    for _ in range(5):
        model.train_step(model.replay_buffer.sample(model.batch_size, model.config.sequence_length))
    assert model._execution._graphed_update.captures == 2
