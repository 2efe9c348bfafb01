"""Pure loss functions of DreamerV2. Each takes tensors and returns tensors; no module state."""

from typing import Literal

import torch as th

from sb3_dreamer.common.distributions import categorical_kl

ActorGrad = Literal["reinforce", "dynamics", "both"]


def kl_balance(
    post_logits: th.Tensor, prior_logits: th.Tensor, balance: float = 0.8, free: float = 0.0, free_avg: bool = True
) -> tuple[th.Tensor, th.Tensor]:
    """KL balancing (DreamerV2 eq. 2 / Algorithm 2)::

        loss = balance * KL(sg(post) || prior) + (1 - balance) * KL(post || sg(prior))

    with free nats: each term is clamped from below at ``free``, after averaging (``free_avg``) or per step.

    :param post_logits: (T, B, S, K). :param prior_logits: (T, B, S, K).
    :return: the scalar loss and the (T, B) value KL(post || prior).
    """
    train_prior = categorical_kl(post_logits.detach(), prior_logits)
    train_post = categorical_kl(post_logits, prior_logits.detach())
    if free_avg:
        loss_prior = train_prior.mean().clamp_min(free)
        loss_post = train_post.mean().clamp_min(free)
    else:
        loss_prior = train_prior.clamp_min(free).mean()
        loss_post = train_post.clamp_min(free).mean()
    return balance * loss_prior + (1 - balance) * loss_post, train_prior.detach()


def lambda_return(reward: th.Tensor, value: th.Tensor, discount: th.Tensor, bootstrap: th.Tensor, lambda_: float) -> th.Tensor:
    """TD(lambda) returns, computed backwards in time::

        R_t = r_t + d_t * ((1 - lambda) * v_{t+1} + lambda * R_{t+1}),   R_H = bootstrap,  v_H = bootstrap

    :param reward: (H, N). :param value: (H, N). :param discount: (H, N). :param bootstrap: (N,).
    :return: (H, N).
    """
    next_value = th.cat([value[1:], bootstrap[None]], 0)
    inputs = reward + discount * next_value * (1 - lambda_)
    returns = []
    last = bootstrap
    for t in reversed(range(reward.shape[0])):
        last = inputs[t] + discount[t] * lambda_ * last
        returns.append(last)
    return th.stack(returns[::-1], 0)


def actor_objective(
    log_prob: th.Tensor,
    target: th.Tensor,
    baseline: th.Tensor,
    actor_grad: ActorGrad,
    mix: float,
) -> th.Tensor:
    """Per-step objective of the actor (to be maximised), before entropy and weighting.

    :param log_prob: (H - 1, N) log-probability of the imagined actions under the actor.
    :param target: (H - 1, N) lambda-returns of the states the actions led to (``target[1:]``).
    :param baseline: (H - 1, N) slow-critic value of the states the actions were taken in.
    :param actor_grad: ``reinforce`` (score function, Atari), ``dynamics`` (straight backprop through the
        learned dynamics, continuous control) or ``both`` (``mix * dynamics + (1 - mix) * reinforce``).
    """
    if actor_grad == "dynamics":
        return target
    reinforce = log_prob * (target - baseline).detach()
    if actor_grad == "reinforce":
        return reinforce
    return mix * target + (1 - mix) * reinforce


def actor_loss(objective: th.Tensor, entropy: th.Tensor, weight: th.Tensor, ent_scale: float) -> th.Tensor:
    """:param objective: (H - 1, N). :param entropy: (H - 1, N). :param weight: (H - 1, N). :return: ()."""
    return -(weight.detach() * (objective + ent_scale * entropy)).mean()


def critic_loss(value: th.Tensor, target: th.Tensor, weight: th.Tensor) -> th.Tensor:
    """Negative log-likelihood of a unit-variance Gaussian critic, without its constant.

    :param value: (H, N) critic on the imagined states ``feat[:-1]``. :param target: (H, N).
    :param weight: (H, N). :return: ().
    """
    return (0.5 * (value - target.detach()) ** 2 * weight.detach()).mean()
