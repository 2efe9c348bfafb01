"""The optimised paths (``compile_model=True``; the sync-free update that CUDA graphs capture) compute the same
update as the plain one."""

import numpy as np
import pytest
import torch as th
from gymnasium import spaces

from sb3_dreamer import DreamerV2
from sb3_dreamer.dreamer.behavior import resolved_actor_grad
from tests.conftest import SpacesEnv


def _model(compile_model: bool, continuous: bool = False) -> DreamerV2:
    actions = spaces.Box(-1, 1, (2,), np.float32) if continuous else spaces.Discrete(3)
    env = SpacesEnv(spaces.Box(-1, 1, (5,), np.float32), actions)
    return DreamerV2.from_preset("debug", "MlpPolicy", env, seed=0, compile_model=compile_model)


def _fill(*models: DreamerV2) -> None:
    rng = np.random.default_rng(0)
    for t in range(64):
        obs = rng.uniform(-1, 1, (1, 5)).astype(np.float32)
        done = np.array([t % 20 == 19])
        infos = [{"terminal_observation": obs[0]}] if done[0] else [{}]
        for model in models:
            discrete = isinstance(model.action_space, spaces.Discrete)
            action = np.array([t % 3]) if discrete else rng.uniform(-1, 1, (1, 2)).astype(np.float32)
            model.replay_buffer.add(obs, obs, action, np.array([1.0], np.float32), done, infos)


def _plain_and_compiled(continuous: bool = False):
    """Two equal models, plain and with ``compile_model``, with the same replay, and a batch of it."""
    plain, compiled = _model(False, continuous), _model(True, continuous)
    _fill(plain, compiled)
    return plain, compiled, plain.replay_buffer.sample(plain.batch_size, plain.config.sequence_length)


def _world_model_loss(model: DreamerV2, batch):
    """The world model's loss on ``batch`` with the model's settings, as ``update`` computes it."""
    return model._updater.model_loss(batch)


def test_compiled_update_equals_the_plain_one():
    plain, compiled, batch = _plain_and_compiled()
    results = []
    for model in (plain, compiled):
        th.manual_seed(1)
        metrics = model.train_step(batch)
        results.append({key: float(value) for key, value in metrics.items()})
    for key, value in results[0].items():
        assert results[1][key] == pytest.approx(value, rel=1e-4, abs=1e-5), key
    for p, q in zip(plain.policy.parameters(), compiled.policy.parameters()):
        th.testing.assert_close(p, q, rtol=1e-4, atol=1e-6)


def test_compiled_world_model_gradients_equal_the_plain_ones():
    """Gradients, not only parameters after a step: Adam's first step is lr * sign(gradient), blind to a wrong
    gradient of the right sign."""
    plain, compiled, batch = _plain_and_compiled()
    grads = []
    for model in (plain, compiled):
        th.manual_seed(1)
        world_model = model.policy.world_model
        world_model.zero_grad()
        _world_model_loss(model, batch).loss.backward()
        grads.append({name: p.grad.clone() for name, p in world_model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    for name, grad in grads[0].items():
        th.testing.assert_close(grads[1][name], grad, rtol=1e-4, atol=1e-5, msg=name)


def test_compiled_imagination_gradients_equal_the_plain_ones():
    """Continuous actions: the actor's gradient flows back through the compiled imagination and slow critic
    (``dynamics``); the compiled critic's gradient too."""
    plain, compiled, batch = _plain_and_compiled(continuous=True)
    grads = []
    for model in (plain, compiled):
        assert resolved_actor_grad(model.config, model.policy.discrete) == "dynamics"
        th.manual_seed(1)
        post = _world_model_loss(model, batch).post
        behavior = model._updater.behavior_loss(post, batch.is_terminal)
        model.policy.actor.zero_grad()
        model.policy.critic.zero_grad()
        (behavior.actor_loss + behavior.critic_loss).backward()
        modules = {"actor": model.policy.actor, "critic": model.policy.critic}
        grads.append({f"{k}.{name}": p.grad.clone() for k, m in modules.items() for name, p in m.named_parameters()})
    for name, grad in grads[0].items():
        th.testing.assert_close(grads[1][name], grad, rtol=1e-4, atol=1e-5, msg=name)


def _state(model: DreamerV2) -> list[th.Tensor]:
    """Parameters and every optimiser state tensor."""
    policy = model.policy
    tensors = [p.detach().clone() for p in policy.parameters()]
    for opt in (policy.model_optimizer, policy.actor_optimizer, policy.critic_optimizer):
        tensors += [v.clone() for s in opt.state.values() for v in s.values() if isinstance(v, th.Tensor)]
    return tensors


def test_sync_free_update_equals_the_plain_one_and_skips_nonfinite_steps():
    plain, sync_free = _model(False), _model(False)
    _fill(plain, sync_free)
    batches = [plain.replay_buffer.sample(plain.batch_size, plain.config.sequence_length) for _ in range(3)]
    bad = batches[0]._replace(obs={k: th.full_like(v, float("nan")) for k, v in batches[0].obs.items()})
    for i, batch in enumerate([*batches, bad]):
        results = []
        for model, flag in ((plain, False), (sync_free, True)):
            th.manual_seed(i)
            before = _state(model)
            results.append({key: float(value) for key, value in model._updater.update(batch, sync_free=flag).items()})
            if batch is bad:  # every step skipped: parameters and optimiser state exactly as before
                assert all(th.equal(a, b) for a, b in zip(before, _state(model)))
        assert results[0]["skipped_steps"] == results[1]["skipped_steps"] == (3.0 if batch is bad else 0.0)
        for key, value in results[0].items():
            assert results[1][key] == pytest.approx(value, rel=1e-6, abs=1e-7, nan_ok=True), key
        for a, b in zip(_state(plain), _state(sync_free)):
            th.testing.assert_close(a, b, rtol=0, atol=0)


def test_cuda_graph_is_refused_with_fp16_and_ignored_on_a_cpu():
    env = SpacesEnv(spaces.Box(-1, 1, (5,), np.float32), spaces.Discrete(3))
    with pytest.raises(ValueError, match="mixed_precision='bf16'"):
        DreamerV2.from_preset("debug", "MlpPolicy", env, cuda_graph=True, mixed_precision="fp16")
    with pytest.warns(UserWarning, match="no effect on device cpu"):
        model = DreamerV2.from_preset("debug", "MlpPolicy", env, cuda_graph=True, device="cpu", learning_starts=64)
    model.learn(100)  # eagerly
    assert model._n_updates > 0


@pytest.mark.parametrize("action_space", [spaces.Discrete(3), spaces.Box(-1, 1, (2,), np.float32)])
def test_the_update_runs_the_actor_once_per_imagined_state(action_space):
    # The actor loss reuses the outputs computed while imagining (no second forward pass over the states).
    env = SpacesEnv(spaces.Box(-1, 1, (5,), np.float32), action_space)
    model = DreamerV2.from_preset("debug", "MlpPolicy", env, seed=0)
    for t in range(64):
        obs = np.full((1, 5), t / 64, np.float32)
        action = np.array([t % 3]) if isinstance(action_space, spaces.Discrete) else np.zeros((1, 2), np.float32)
        model.replay_buffer.add(obs, obs, action, np.array([1.0], np.float32), np.array([False]), [{}])
    calls = []
    model.policy.actor.net.register_forward_hook(lambda module, inputs, output: calls.append(inputs[0].shape[0]))
    before = [p.detach().clone() for p in model.policy.actor.parameters()]
    model._updater.update(model.replay_buffer.sample(model.batch_size, model.config.sequence_length))
    assert len(calls) == model.config.imagination_horizon
    assert all(n == model.batch_size * model.config.sequence_length for n in calls)
    assert any(not th.equal(p, q) for p, q in zip(before, model.policy.actor.parameters()))  # and it learns


def test_a_model_saved_with_capturable_optimisers_trains_eagerly_after_loading(tmp_path):
    # A model trained with cuda_graph saves its optimisers with capturable=True; AdamW refuses such a step on
    # CPU tensors unless the flag is switched back.
    from sb3_dreamer.accel.cuda_graph import set_capturable

    model = _model(False)
    _fill(model)
    model.train_step(model.replay_buffer.sample(model.batch_size, model.config.sequence_length))
    for optimizer in (model.policy.model_optimizer, model.policy.actor_optimizer, model.policy.critic_optimizer):
        set_capturable(optimizer, True)
    model.save(tmp_path / "graphed.zip")
    loaded = DreamerV2.load(tmp_path / "graphed.zip", device="cpu")
    assert loaded.policy.model_optimizer.param_groups[0]["capturable"]
    _fill(loaded)
    loaded.train_step(loaded.replay_buffer.sample(loaded.batch_size, loaded.config.sequence_length))
    assert not loaded.policy.model_optimizer.param_groups[0]["capturable"]


def test_adam_steps_with_the_fused_kernel_on_a_cpu_as_foreach_would():
    import copy

    model = _model(False)
    _fill(model)
    batch = model.replay_buffer.sample(model.batch_size, model.config.sequence_length)
    model.train_step(batch)
    optimizer = model.policy.model_optimizer
    assert optimizer.param_groups[0]["fused"] and not optimizer.param_groups[0]["foreach"]
    params = list(model.policy.world_model.parameters())
    for p in params:
        p.grad = th.randn_like(p)
    foreach = copy.deepcopy(optimizer.state_dict())
    before = [p.detach().clone() for p in params]
    optimizer.step()
    fused_result = [p.detach().clone() for p in params]
    with th.no_grad():
        for p, b in zip(params, before):
            p.copy_(b)
    optimizer.load_state_dict(foreach)
    for group in optimizer.param_groups:
        group["fused"], group["foreach"] = False, True
    optimizer.step()
    for p, q in zip(params, fused_result):
        assert th.allclose(p, q, rtol=1e-5, atol=1e-7)
    assert any(not th.equal(p, b) for p, b in zip(params, before))


def test_cuda_graph_with_fp16_is_refused_when_loading_too(tmp_path):
    env = SpacesEnv(spaces.Box(-1, 1, (5,), np.float32), spaces.Discrete(3))
    DreamerV2.from_preset("debug", "MlpPolicy", env, mixed_precision="fp16", device="cpu").save(tmp_path / "m.zip")
    with pytest.raises(ValueError, match="mixed_precision='bf16'"):
        DreamerV2.load(tmp_path / "m.zip", cuda_graph=True)
