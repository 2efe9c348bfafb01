"""DreamerV2's behaviour (sec. 2.3): an actor and a critic learned purely from trajectories imagined by the
world model, with lambda-returns and a slow target critic.

Timing of an imagined trajectory (the reference's convention)::

    Actions:   0   [a1]  [a2]   a3      the action at index t + 1 is taken in state t
    States:   [z0]->[z1]->[z2]-> z3
    Targets:  t0   [t1]  [t2]           objective of a_{t+1}: target[t + 1] vs baseline value[t]
"""

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import torch as th
from torch import nn

from sb3_dreamer.common.distributions import OneHotST, TruncNormal
from sb3_dreamer.common.networks import Norm, mlp
from sb3_dreamer.common.type_aliases import RSSMState
from sb3_dreamer.dreamer.config import DreamerConfig
from sb3_dreamer.dreamer.execution import UpdateFns
from sb3_dreamer.dreamer.losses import ActorGrad, actor_loss, actor_objective, critic_loss, lambda_return


class Actor(nn.Module):
    """MLP policy head: one-hot categorical (Discrete) or truncated normal in [-1, 1] (Box)."""

    def __init__(self, feat_size: int, action_dim: int, discrete: bool, layers: int, units: int, norm: Norm, min_std: float):
        super().__init__()
        self.discrete, self.min_std = discrete, min_std
        self.net = mlp(feat_size, action_dim if discrete else 2 * action_dim, layers, units, norm)

    def keras_init(self) -> None:
        """The output layer as the reference's two (mean and std, Keras' glorot_uniform each) where continuous."""
        if not self.discrete:
            out = self.net[-1]
            with th.no_grad():
                for half in out.weight.chunk(2, 0):
                    nn.init.xavier_uniform_(half)

    def forward(self, feat: th.Tensor) -> OneHotST | TruncNormal:
        """:param feat: (..., F). :return: a distribution over (..., A)."""
        return self.dist(self.net(feat))

    def dist(self, out: th.Tensor) -> OneHotST | TruncNormal:
        """:param out: (..., A or 2A) outputs of ``net``. :return: the distribution they parameterise."""
        if self.discrete:
            return OneHotST(out)
        mean, std = out.chunk(2, -1)
        return TruncNormal(th.tanh(mean), 2 * th.sigmoid(std / 2) + self.min_std)


class BehaviorLoss(NamedTuple):
    actor_loss: th.Tensor
    critic_loss: th.Tensor
    metrics: dict[str, th.Tensor]


@contextlib.contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """Within the block, ``module``'s parameters take no gradient (gradients still flow *through* it)."""
    flags = [p.requires_grad for p in module.parameters()]
    module.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(module.parameters(), flags):
            p.requires_grad_(flag)


def resolved_actor_grad(config: DreamerConfig, discrete: bool) -> ActorGrad:
    """``actor_grad``, with ``auto`` resolved: ``reinforce`` for Discrete actions, ``dynamics`` for Box."""
    if config.actor_grad == "auto":
        return "reinforce" if discrete else "dynamics"
    return config.actor_grad


def behavior_loss(
    fns: UpdateFns,
    actor: Actor,
    world_model: nn.Module,
    post: RSSMState,
    is_terminal: th.Tensor,
    config: DreamerConfig,
    autocast: Callable[[], Any] = contextlib.nullcontext,
) -> BehaviorLoss:
    """Actor and critic losses on trajectories imagined from the posterior states of the batch (the last
    ``imagination_starts`` of each window, or all of them).

    In ``reinforce`` mode nothing needs a gradient through the imagination, so it runs without autograd;
    otherwise gradients flow through the frozen world model into the actions.

    :param fns: the world model's ``imagine``, the critic and the slow critic.
    :param post: (T, B, ...) posterior states of the replay batch. :param is_terminal: (T, B).
    :param autocast: a context for the mixed-precision parts.
    """
    first = -config.imagination_starts if config.imagination_starts else 0  # the window's last states
    start = post.map(lambda x: x[first:].detach().flatten(0, 1))  # (N, ...)
    mode = resolved_actor_grad(config, actor.discrete)
    horizon = config.imagination_horizon
    with th.no_grad() if mode == "reinforce" else frozen(world_model), autocast():
        traj = fns.imagine(actor, start, is_terminal[first:].flatten(), horizon, config.gamma, last_heads=False)
        value = fns.slow_critic(traj.feat).squeeze(-1).float()  # (H + 1, N)
        target = lambda_return(traj.reward, value[:-1], traj.discount, value[-1], config.return_lambda)  # (H, N)
    with autocast():
        dist = actor.dist(traj.actor_out[:-1])  # states 0..H-2, computed while imagining
        log_prob = dist.log_prob(traj.action[1:-1].detach())
        objective = actor_objective(log_prob, target[1:], value[:-2], mode, config.actor_grad_mix)
        entropy = dist.entropy()
        a_loss = actor_loss(objective, entropy, traj.weight[:-2], config.actor_entropy)
        critic_value = fns.critic(traj.feat[:-1].detach()).squeeze(-1).float()
        c_loss = critic_loss(critic_value, target, traj.weight[:-1])
    metrics = {
        "actor_loss": a_loss.detach(),
        "critic_loss": c_loss.detach(),
        "actor_entropy": entropy.detach().mean(),
        "critic_value": critic_value.detach().mean(),
        "critic_target": target.detach().mean(),
        "imag_reward": traj.reward.detach().mean(),
        "imag_discount": traj.discount.detach().mean(),
        "imag_return": target[0].detach().mean(),  # the lambda-return expected from the replayed states
    }
    return BehaviorLoss(a_loss, c_loss, metrics)


@th.no_grad()
def update_slow_critic(slow_critic: nn.Module, critic: nn.Module, n_updates: int, config: DreamerConfig) -> None:
    """Every ``slow_target_update`` updates, move the slow critic to the critic by ``slow_target_fraction`` (a hard
    copy at the first update).

    :param n_updates: updates done before this one.
    """
    if n_updates % config.slow_target_update == 0:
        mix = 1.0 if n_updates == 0 else config.slow_target_fraction
        for slow, fast in zip(slow_critic.parameters(), critic.parameters()):
            slow.lerp_(fast, mix)
