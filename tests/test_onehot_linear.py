"""``onehot_linear`` is ``nn.Linear`` on inputs with one-hot columns: same values (to float tolerance), same
gradients; and the layers that use it (swapped in by ``sb3_dreamer.accel``) give what the plain layers give on the
model's features, in the imagination and in the world model's loss."""

import copy

import pytest
import torch as th
from torch import nn

from sb3_dreamer.accel.modules import FastRSSM, FlatMLP, LatentInputLinear, accelerate
from sb3_dreamer.accel.onehot_linear import SPARSE_MIN_CLASSES, OneHotColumns, onehot_columns_grad, onehot_linear
from sb3_dreamer.common.distributions import OneHotST
from sb3_dreamer.common.networks import mlp
from sb3_dreamer.common.rssm import RSSM
from sb3_dreamer.common.type_aliases import RSSMState
from sb3_dreamer.dreamer.behavior import Actor
from sb3_dreamer.dreamer.config import DreamerConfig
from sb3_dreamer.dreamer.world_model import WorldModel

SMALL = DreamerConfig(deter_size=16, stoch_size=4, stoch_classes=5, hidden_size=12, cnn_depth=4, mlp_layers=2, mlp_units=16)


class Agent(nn.Module):
    """A world model and an actor with critics, as ``accelerate`` takes them (a policy's parts)."""

    def __init__(self, shapes: dict[str, tuple[int, ...]], discrete: bool = True, pred_discount: bool = True):
        super().__init__()
        self.world_model = WorldModel(shapes, 3, SMALL.replace(pred_discount=pred_discount))
        feat = self.world_model.rssm.feat_size
        self.actor = Actor(feat, 3, discrete, layers=2, units=16, norm="none", min_std=0.1)
        self.critic, self.slow_critic = mlp(feat, 1, 2, 16), mlp(feat, 1, 2, 16)


def _fast(agent: Agent) -> Agent:
    fast = copy.deepcopy(agent)
    accelerate(fast)
    return fast


def _onehot(n: int, groups: int = 4, classes: int = 5, seed: int = 0) -> th.Tensor:
    """:return: (n, groups, classes) straight-through samples (values exactly one-hot, with a gradient path)."""
    logits = th.randn(n, groups, classes, generator=th.Generator().manual_seed(seed), requires_grad=True)
    return OneHotST(logits).sample()


def test_straight_through_samples_are_exactly_one_hot():
    logits = th.randn(64, 32, 32, requires_grad=True)
    dist = OneHotST(logits)
    for value in (dist.sample(), dist.mode()):
        assert value.requires_grad
        assert set(value.detach().unique().tolist()) == {0.0, 1.0}
        assert (value.detach().sum(-1) == 1).all()


def test_columns_of_a_one_hot_are_its_classes():
    onehot = _onehot(30).detach()
    columns = OneHotColumns.of(onehot, start=7)
    assert columns.hot.dtype == th.long and columns.start == 7 and columns.classes == 5
    assert th.equal(columns.hot, onehot.argmax(-1))
    assert th.equal(columns.at(slice(1, None)).hot, columns.hot[1:])
    many = th.nn.functional.one_hot(th.tensor([[299, 257, 3]]), 300).float()  # classes bf16 cannot hold
    with th.autocast("cpu", dtype=th.bfloat16):
        assert OneHotColumns.of(many, 0).hot.tolist() == [[299, 257, 3]]
    # A latent that is not finite still gives classes in range (the layer must not index out of its weight).
    broken = onehot.clone()
    broken[0, 0] = float("nan")
    broken[1, 1, 2] = float("inf")
    hot = OneHotColumns.of(broken, 0).hot
    assert ((hot >= 0) & (hot < 5)).all()


@pytest.mark.parametrize("classes", [5, SPARSE_MIN_CLASSES], ids=["dense-weight-grad", "sparse-weight-grad"])
@pytest.mark.parametrize(
    ("dense_before", "dense_after", "bias"),
    [(6, 0, True), (0, 3, True), (0, 0, True), (6, 3, False)],
    ids=["feat-layout", "img_in-layout", "one-hot-only", "no-bias"],
)
def test_onehot_linear_equals_linear_with_its_gradients(dense_before: int, dense_after: int, bias: bool, classes: int):
    th.manual_seed(0)
    onehot = _onehot(30, classes=classes)  # (30, 4, classes)
    x = th.cat([th.randn(30, dense_before), onehot.flatten(-2), th.randn(30, dense_after)], -1)
    x = x.detach().requires_grad_()
    layer = th.nn.Linear(x.shape[-1], 7, bias=bias)
    columns = OneHotColumns.of(onehot, start=dense_before)
    out, ref = onehot_linear(layer, x, columns), layer(x)
    th.testing.assert_close(out, ref)
    grad = th.randn_like(ref)
    params = [x, layer.weight] + ([layer.bias] if bias else [])
    for got, want in zip(th.autograd.grad(out, params, grad), th.autograd.grad(ref, params, grad)):
        th.testing.assert_close(got, want)


def test_the_straight_through_gradient_passes_through_onehot_linear():
    """With the latent's straight-through path (the ``dynamics`` actor gradient), the logits' gradient is the same."""
    logits = th.randn(20, 4, 5, requires_grad=True)
    th.manual_seed(1)
    sample = OneHotST(logits).sample()
    layer = th.nn.Linear(20, 3)
    grads = []
    for columns in (OneHotColumns.of(sample, 0), None):
        loss = onehot_linear(layer, sample.flatten(-2), columns).square().sum()
        (grad,) = th.autograd.grad(loss, logits, retain_graph=True)
        grads.append(grad)
    th.testing.assert_close(grads[0], grads[1])


def test_an_mlp_given_the_one_hot_columns_equals_the_plain_mlp():
    th.manual_seed(0)
    net = mlp(6 + 20, 2, layers=2, units=16)
    onehot = _onehot(2 * 15).detach().view(2, 15, 4, 5)
    x = th.cat([th.randn(2, 15, 6), onehot.flatten(-2)], -1)
    fast = copy.deepcopy(net)
    fast.__class__, fast[0].__class__ = FlatMLP, LatentInputLinear
    fast[0].latent = (6, 4, 5)
    th.testing.assert_close(fast(x), net(x))


def test_img_step_given_the_one_hot_classes_equals_the_plain_step():
    th.manual_seed(0)
    rssm = RSSM(action_dim=3, embed_size=8, deter_size=16, stoch_size=4, stoch_classes=5, hidden_size=12)
    stoch = _onehot(10).detach()
    prev = RSSMState(th.randn(10, 16), stoch, th.zeros(10, 4, 5))
    action = th.nn.functional.one_hot(th.randint(0, 3, (10,)), 3).float()
    fast_rssm = copy.deepcopy(rssm)
    fast_rssm.__class__ = FastRSSM
    fast = fast_rssm.img_step(prev, action, sample=False)
    plain = rssm.img_step(prev, action, sample=False)
    th.testing.assert_close(fast.deter, plain.deter)
    th.testing.assert_close(fast.logits, plain.logits)


@pytest.mark.parametrize("discrete", [True, False])
def test_imagination_heads_equal_the_plain_heads_on_its_features(discrete: bool):
    """The accelerated ``imagine`` runs the actor, reward and discount heads through ``onehot_linear``; on its
    (exactly one-hot) features the plain heads give the same values."""
    th.manual_seed(0)
    agent = Agent({"state": (5,)}, discrete)
    fast, model, actor = _fast(agent), agent.world_model, agent.actor
    start = RSSMState(th.randn(8, 16), _onehot(8).detach(), th.zeros(8, 4, 5))
    with th.no_grad():
        traj = fast.world_model.imagine(fast.actor, start, th.zeros(8), horizon=5, gamma=0.99)
        assert set(traj.feat[..., 16:].unique().tolist()) == {0.0, 1.0}
        th.testing.assert_close(traj.reward, model.reward_head(traj.feat).squeeze(-1))
        th.testing.assert_close(traj.discount[1:], th.sigmoid(model.discount_head(traj.feat[1:]).squeeze(-1)))
        th.testing.assert_close(traj.actor_out, actor.net(traj.feat[:-1]))


@pytest.mark.parametrize("grad_enabled", [False, True])
def test_the_last_actor_output_records_a_gradient_only_with_autograd_on(grad_enabled: bool):
    """The actor loss reads the outputs of states 0..H-2; the last one reaches it only through the dynamics
    (``dynamics`` mode, autograd on), so under ``no_grad`` (``reinforce``) it has no graph."""
    th.manual_seed(0)
    agent = Agent({"state": (5,)}, pred_discount=False)
    model, actor = agent.world_model, agent.actor
    start = RSSMState(th.randn(8, 16), _onehot(8).detach(), th.zeros(8, 4, 5))
    with th.set_grad_enabled(grad_enabled):
        traj = model.imagine(actor, start, th.zeros(8), horizon=4, gamma=0.99)

    def actor_grad_norm(out: th.Tensor) -> float:
        grads = th.autograd.grad(out.sum(), list(actor.parameters()), retain_graph=True)
        return sum(g.abs().sum().item() for g in grads)

    assert actor_grad_norm(traj.actor_out[-2]) > 0
    assert (actor_grad_norm(traj.actor_out[-1]) > 0) == grad_enabled


def test_world_model_heads_on_the_posterior_equal_the_plain_heads():
    """The accelerated world model runs its decoder, reward and discount heads through ``onehot_linear`` on the
    posterior features (straight-through samples): the same outputs, the same gradients for every parameter and
    for the posterior logits, as the plain heads."""
    th.manual_seed(0)
    agent = Agent({"image": (1, 64, 64), "state": (5,)})
    models = {False: agent.world_model, True: _fast(agent).world_model}
    logits = th.randn(3, 2, 4, 5, requires_grad=True)
    deter = th.randn(3, 2, 16, requires_grad=True)

    def outputs(fast: bool) -> list[th.Tensor]:
        th.manual_seed(1)
        model = models[fast]
        post = RSSMState(deter, OneHotST(logits).sample(), logits)  # the same sample on both sides
        feat = post.feat()
        decoded = model.decoder(feat)
        return [decoded["image"], decoded["state"], model.reward_head(feat), model.discount_head(feat)]

    def grads(values: list[th.Tensor], fast: bool) -> list[th.Tensor]:
        loss = sum((v * th.randn(v.shape, generator=th.Generator().manual_seed(i))).sum() for i, v in enumerate(values))
        return list(th.autograd.grad(loss, [logits, deter, *models[fast].parameters()], allow_unused=True))

    fast, plain = outputs(True), outputs(False)
    for a, b in zip(fast, plain):
        th.testing.assert_close(a, b)
    for a, b in zip(grads(fast, True), grads(plain, False)):
        assert (a is None) == (b is None)
        if a is not None:  # sums of up to ~10 in another order: float32 rounding at 1e-5 of the largest
            th.testing.assert_close(a, b, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("grad", [False, True])
def test_imagination_without_the_last_heads_drops_only_the_last_reward_and_discount(grad: bool):
    """The behavior loss imagines with ``last_heads=False``: the lambda-returns never read the last state's reward
    and discount, so they are not predicted; everything else is what the full imagination gives. Under autograd
    (``dynamics``) the gradients are those of the heads applied to the states' slice, also in the accelerated
    model."""
    agent = _fast(Agent({"state": (5,)}))
    model, actor = agent.world_model, agent.actor
    deter = th.randn(8, 16, requires_grad=grad)
    start = RSSMState(deter, _onehot(8).detach(), th.zeros(8, 4, 5))
    terminal = (th.arange(8) % 3 == 0).float()
    with th.set_grad_enabled(grad):
        th.manual_seed(0)
        full = model.imagine(actor, start, terminal, horizon=5, gamma=0.99)
        th.manual_seed(0)
        short = model.imagine(actor, start, terminal, horizon=5, gamma=0.99, last_heads=False)
    assert full.reward.shape == full.discount.shape == (6, 8)
    assert short.reward.shape == short.discount.shape == (5, 8)
    th.testing.assert_close(short.reward, full.reward[:-1])
    th.testing.assert_close(short.discount, full.discount[:-1])
    for name in ("feat", "action", "weight", "actor_out"):
        th.testing.assert_close(getattr(short, name), getattr(full, name))
    if not grad:
        return

    def deter_grad(reward: th.Tensor, discount: th.Tensor) -> th.Tensor:  # (5, N), (4, N)
        loss = (reward * th.arange(1.0, 6.0)[:, None]).sum() + discount.square().sum()
        return th.autograd.grad(loss, deter, retain_graph=True)[0]

    reward = model.reward_head(short.feat[:5]).squeeze(-1)
    discount = th.sigmoid(model.discount_head(short.feat[1:5]).squeeze(-1))
    expected = deter_grad(reward, discount)
    assert expected.abs().sum() > 0
    for traj in (short, full):
        th.testing.assert_close(deter_grad(traj.reward[:5], traj.discount[1:5]), expected)


@pytest.mark.parametrize("rows", [1, 37])
def test_onehot_columns_grad_is_the_dense_product(rows: int):
    """The weight's gradient in the one-hot columns, a sparse product, equals ``grad^T @ x`` with the dense ``x``;
    also as ``torch.compile`` calls it."""
    groups, classes, out = 4, 5, 7
    index = th.randint(0, classes, (rows, groups), generator=th.Generator().manual_seed(rows)) + th.arange(groups) * classes
    x = th.zeros(rows, groups * classes).scatter_(1, index, 1.0)
    grad = th.randn(rows, out)
    expected = grad.t() @ x
    th.testing.assert_close(onehot_columns_grad(grad, index, groups * classes), expected)
    compiled = th.compile(lambda g, i: onehot_columns_grad(g, i, groups * classes) * 2, fullgraph=True)
    th.testing.assert_close(compiled(grad, index), expected * 2)
