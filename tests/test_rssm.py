import copy

import torch as th

from sb3_dreamer.accel.modules import FastRSSM
from sb3_dreamer.common.rssm import RSSM
from sb3_dreamer.common.type_aliases import RSSMState


def _rssm() -> RSSM:
    th.manual_seed(0)
    return RSSM(action_dim=3, embed_size=10, deter_size=16, stoch_size=4, stoch_classes=5, hidden_size=12)


def _sequence(T: int = 7, B: int = 3) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
    embed, action = th.randn(T, B, 10, requires_grad=True), th.randn(T, B, 3, requires_grad=True)
    is_first = th.zeros(T, B)
    is_first[0] = 1
    is_first[4, 1] = 1
    return embed, action, is_first


def _loop_of_obs_steps(rssm: RSSM, embed: th.Tensor, action: th.Tensor, is_first: th.Tensor) -> RSSMState:
    state, steps = rssm.initial(is_first.shape[1], "cpu"), []
    for t in range(is_first.shape[0]):
        state = rssm.obs_step(state, action[t], embed[t], is_first[t])
        steps.append(state)
    return RSSMState(*(th.stack(parts) for parts in zip(*steps)))


def _gradients(rssm: RSSM, post: RSSMState, prior_logits: th.Tensor, inputs: list[th.Tensor]) -> list[th.Tensor]:
    """Gradients of a loss that reads every output, through the straight-through samples too."""
    th.manual_seed(7)
    loss = sum((part.float() * th.randn(part.shape)).sum() for part in [*post, prior_logits])
    return th.autograd.grad(loss, [*rssm.parameters(), *inputs])


def test_observe_equals_loop_of_obs_steps():
    """The plain ``observe`` and its fast form (``FastRSSM``: projections for all steps at once, LoopLinear)."""
    rssm = _rssm()
    fast_rssm = copy.deepcopy(rssm)
    fast_rssm.__class__ = FastRSSM
    embed, action, is_first = _sequence()
    th.manual_seed(123)
    plain_post, plain_prior = rssm.observe(embed, action, is_first)
    th.manual_seed(123)
    post, prior_logits = fast_rssm.observe(embed, action, is_first)
    for a, b in zip([*plain_post, plain_prior], [*post, prior_logits]):
        assert th.allclose(a, b, atol=1e-5)
    th.manual_seed(123)
    loop = _loop_of_obs_steps(rssm, embed, action, is_first)
    assert th.allclose(post.deter, loop.deter, atol=1e-5)
    assert th.allclose(post.stoch, loop.stoch, atol=1e-5)
    assert th.allclose(post.logits, loop.logits, atol=1e-5)
    assert th.allclose(prior_logits, rssm.prior_logits(post.deter), atol=1e-6)
    # the same gradients: observe's loop weights take theirs as one matmul over the steps (LoopLinear)
    fast = _gradients(fast_rssm, post, prior_logits, [embed, action])
    plain = _gradients(rssm, loop, rssm.prior_logits(loop.deter), [embed, action])
    for name, a, b in zip([n for n, _ in rssm.named_parameters()] + ["embed", "action"], fast, plain):
        assert th.allclose(a, b, rtol=1e-4, atol=1e-5), name


def test_is_first_resets_latent():
    rssm = _rssm()
    B = 2
    embed, action = th.randn(B, 10), th.randn(B, 3)
    dirty = RSSMState(th.randn(B, 16), th.nn.functional.one_hot(th.randint(0, 5, (B, 4)), 5).float(), th.randn(B, 4, 5))
    th.manual_seed(1)
    reset = rssm.obs_step(dirty, action, embed, th.ones(B))
    th.manual_seed(1)
    fresh = rssm.obs_step(rssm.initial(B, "cpu"), th.zeros(B, 3), embed, th.ones(B))
    assert th.allclose(reset.deter, fresh.deter) and th.allclose(reset.logits, fresh.logits)
    th.manual_seed(1)
    kept = rssm.obs_step(dirty, action, embed, th.zeros(B))
    assert not th.allclose(kept.deter, fresh.deter)


def test_straight_through_gradients_reach_rssm_and_actions():
    rssm = _rssm()
    action = th.randn(4, 3, requires_grad=True)
    state = rssm.img_step(rssm.initial(4, "cpu"), action)
    next_state = rssm.img_step(state, th.zeros(4, 3))
    next_state.feat().sum().backward()
    assert action.grad is not None and action.grad.abs().sum() > 0
    assert rssm.img_dist.weight.grad is not None and rssm.img_dist.weight.grad.abs().sum() > 0


def test_shapes():
    rssm = _rssm()
    post, prior_logits = rssm.observe(th.randn(5, 2, 10), th.randn(5, 2, 3), th.zeros(5, 2))
    assert post.deter.shape == (5, 2, 16)
    assert post.stoch.shape == prior_logits.shape == (5, 2, 4, 5)
    assert post.feat().shape == (5, 2, 16 + 20) and rssm.feat_size == 36
