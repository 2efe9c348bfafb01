import math

import pytest
import torch as th

from sb3_dreamer.common.distributions import OneHotST, TruncNormal, categorical_kl
from sb3_dreamer.dreamer.losses import actor_objective, critic_loss, kl_balance, lambda_return


def test_lambda_return_hand_computed():
    # H = 2 steps, one trajectory. R_1 = r_1 + d_1 * ((1 - l) * v_boot + l * v_boot)
    reward = th.tensor([[1.0], [2.0]])
    value = th.tensor([[10.0], [20.0]])
    discount = th.tensor([[0.5], [0.9]])
    bootstrap = th.tensor([30.0])
    lam = 0.8
    r1 = 2.0 + 0.9 * 30.0  # = 29.0
    r0 = 1.0 + 0.5 * ((1 - lam) * 20.0 + lam * r1)  # = 1 + 0.5 * (4 + 23.2) = 14.6
    out = lambda_return(reward, value, discount, bootstrap, lam)
    assert out.shape == (2, 1)
    assert out[:, 0].tolist() == pytest.approx([r0, r1])


def test_lambda_return_limits():
    th.manual_seed(0)
    reward, value, discount = th.randn(5, 3), th.randn(5, 3), th.rand(5, 3)
    bootstrap = th.randn(3)
    one_step = lambda_return(reward, value, discount, bootstrap, 0.0)
    next_value = th.cat([value[1:], bootstrap[None]])
    assert th.allclose(one_step, reward + discount * next_value)
    monte_carlo = lambda_return(reward, value, discount, bootstrap, 1.0)
    expected, acc = [], bootstrap
    for t in reversed(range(5)):
        acc = reward[t] + discount[t] * acc
        expected.append(acc)
    assert th.allclose(monte_carlo, th.stack(expected[::-1]))


def test_kl_balance_value_and_gradient_split():
    th.manual_seed(0)
    post = th.randn(3, 2, 4, 5, requires_grad=True)
    prior = th.randn(3, 2, 4, 5, requires_grad=True)
    loss, value = kl_balance(post, prior, balance=0.8, free=0.0)
    kl = categorical_kl(post, prior)
    assert th.allclose(loss, kl.mean())
    assert th.allclose(value, kl.detach())
    loss.backward()
    post_ref, prior_ref = post.detach().clone().requires_grad_(), prior.detach().clone().requires_grad_()
    categorical_kl(post_ref, prior_ref).mean().backward()
    assert th.allclose(prior.grad, 0.8 * prior_ref.grad, atol=1e-6)
    assert th.allclose(post.grad, 0.2 * post_ref.grad, atol=1e-6)


def test_kl_free_nats():
    logits = th.zeros(2, 3, 4, 4, requires_grad=True)
    loss, _ = kl_balance(logits, logits.detach() + 0.01 * th.randn(2, 3, 4, 4), free=1.0)
    assert loss.item() == pytest.approx(1.0)
    loss.backward()
    assert th.count_nonzero(logits.grad) == 0  # below the free nats nothing is trained
    loss_per_step, _ = kl_balance(logits, logits.detach(), free=0.5, free_avg=False)
    assert loss_per_step.item() == pytest.approx(0.5)


def test_categorical_kl_matches_torch():
    th.manual_seed(1)
    a, b = th.randn(6, 3, 7), th.randn(6, 3, 7)
    ref = th.distributions.kl_divergence(th.distributions.Categorical(logits=a), th.distributions.Categorical(logits=b))
    assert th.allclose(categorical_kl(a, b), ref.sum(-1), atol=1e-5)


def test_categoricals_are_float32_under_bf16_autocast():
    """Under CPU bf16 autocast the log-probabilities and the KL are float32, as CUDA's autocast computes
    ``log_softmax`` (CPU's does not: its bf16 kernel over a few classes is 7-20x slower, and rounds to 3 digits)."""
    logits = th.randn(6, 4, 8)
    with th.autocast("cpu", dtype=th.bfloat16):
        low = th.nn.functional.linear(logits, th.eye(8))  # bf16, as a layer's output under autocast
        dist = OneHotST(low)
        kl = categorical_kl(low, low.flip(0))
    assert low.dtype == th.bfloat16
    assert dist.log_probs.dtype == dist.probs.dtype == dist.sample().dtype == kl.dtype == th.float32
    th.testing.assert_close(dist.log_probs, th.log_softmax(low.float(), -1))


def test_straight_through_sample_is_onehot_with_gradients():
    th.manual_seed(0)
    logits = th.randn(64, 8, 5, requires_grad=True)
    sample = OneHotST(logits).sample()
    assert th.allclose(sample.detach().sum(-1), th.ones(64, 8))
    assert th.allclose(sample.detach(), sample.detach().round(), atol=1e-6)  # one-hot up to float rounding
    (sample * th.randn_like(sample)).sum().backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0


def test_onehot_sampling_frequencies():
    th.manual_seed(0)
    probs = th.tensor([0.1, 0.6, 0.3])
    samples = OneHotST(probs.log().expand(20000, 3)).sample().detach()
    assert th.allclose(samples.mean(0), probs, atol=0.02)


def test_trunc_normal_density_entropy_and_bounds():
    th.manual_seed(0)
    loc, scale = th.tensor([0.3, -0.9]), th.tensor([0.5, 0.2])
    dist = TruncNormal(loc, scale)
    grid = th.linspace(-1, 1, 20001)[:, None].expand(-1, 2)
    per_dim = TruncNormal(loc.expand(20001, 2), scale.expand(20001, 2))
    log_p = _per_dim_log_prob(per_dim, grid)
    density_mass = th.trapezoid(log_p.exp(), grid[:, 0], dim=0)
    assert th.allclose(density_mass, th.ones(2), atol=1e-3)
    entropy_numeric = -th.trapezoid(log_p.exp() * log_p, grid[:, 0], dim=0).sum()
    assert dist.entropy().item() == pytest.approx(entropy_numeric.item(), abs=1e-3)
    samples = TruncNormal(loc.expand(50000, 2), scale.expand(50000, 2)).sample()
    assert samples.min() >= -1 and samples.max() <= 1
    mean_numeric = th.trapezoid(log_p.exp() * grid, grid[:, 0], dim=0)
    assert th.allclose(samples.mean(0), mean_numeric, atol=0.01)


def _per_dim_log_prob(dist: TruncNormal, x: th.Tensor) -> th.Tensor:
    z = (x - dist.loc) / dist.scale
    return -0.5 * z * z - 0.5 * math.log(2 * math.pi) - dist.scale.log() - dist._z.log()


def test_trunc_normal_sample_is_reparameterised():
    loc = th.zeros(4, 2, requires_grad=True)
    TruncNormal(loc, th.ones(4, 2)).sample().sum().backward()
    assert loc.grad is not None and loc.grad.abs().sum() > 0


def test_actor_objectives():
    log_prob = th.tensor([[-1.0, -2.0]], requires_grad=True)
    target = th.tensor([[3.0, 1.0]], requires_grad=True)
    baseline = th.tensor([[1.0, 2.0]])
    reinforce = actor_objective(log_prob, target, baseline, "reinforce", 0.0)
    assert th.allclose(reinforce, th.tensor([[-2.0, 2.0]]))
    reinforce.sum().backward()
    assert target.grad is None  # the advantage is a constant for the score-function estimator
    assert th.allclose(log_prob.grad, th.tensor([[2.0, -1.0]]))
    dynamics = actor_objective(log_prob, target, baseline, "dynamics", 0.0)
    assert dynamics is target
    both = actor_objective(log_prob, target, baseline, "both", 0.25)
    assert th.allclose(both, 0.25 * target + 0.75 * reinforce)


def test_critic_loss_weighted():
    value, target, weight = th.tensor([[1.0, 2.0]]), th.tensor([[3.0, 2.0]]), th.tensor([[0.5, 1.0]])
    assert critic_loss(value, target, weight).item() == pytest.approx((0.5 * 4 * 0.5 + 0) / 2)
