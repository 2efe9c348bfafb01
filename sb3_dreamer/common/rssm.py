"""The recurrent state-space model with 32x32 discrete latents (DreamerV2 sec. 2).

One step::

    prior:      deter_t = GRU(deter_{t-1}, img_in(stoch_{t-1}, action_t))
                stoch_t ~ p(. | deter_t)                (img_out)
    posterior:  stoch_t ~ q(. | deter_t, embed_t)        (obs_out)

``action_t`` is the action that led to observation t (see the timing diagram in ``type_aliases``).
At ``is_first`` the previous state and action are zeroed, which starts the episode afresh.
"""

from typing import NamedTuple

import torch as th
from torch import nn

from sb3_dreamer.common.distributions import OneHotST
from sb3_dreamer.common.networks import LAYER_NORM_EPS, LayerNormGRUCell, Norm
from sb3_dreamer.common.type_aliases import RSSMState


class Observed(NamedTuple):
    post: RSSMState  # (T, B, ...)
    prior_logits: th.Tensor  # (T, B, S, K)


def _norm_act(units: int, norm: Norm) -> nn.Sequential:
    return nn.Sequential(nn.LayerNorm(units, eps=LAYER_NORM_EPS) if norm == "layer" else nn.Identity(), nn.ELU())


class RSSM(nn.Module):
    """:param action_dim: A. :param embed_size: E. :param deter_size: D. :param stoch_size: S.
    :param stoch_classes: K. :param hidden_size: width of the layers around the GRU.
    """

    def __init__(
        self,
        action_dim: int,
        embed_size: int,
        deter_size: int = 600,
        stoch_size: int = 32,
        stoch_classes: int = 32,
        hidden_size: int = 600,
        norm: Norm = "none",
    ):
        super().__init__()
        self.deter_size, self.stoch_size, self.stoch_classes = deter_size, stoch_size, stoch_classes
        stoch_flat = stoch_size * stoch_classes
        self.feat_size = deter_size + stoch_flat
        self.img_in = nn.Linear(stoch_flat + action_dim, hidden_size)
        self.img_in_act = _norm_act(hidden_size, norm)
        self.cell = LayerNormGRUCell(hidden_size, deter_size)
        self.img_out = nn.Sequential(nn.Linear(deter_size, hidden_size), _norm_act(hidden_size, norm))
        self.img_dist = nn.Linear(hidden_size, stoch_flat)
        self.obs_out = nn.Linear(deter_size + embed_size, hidden_size)
        self.obs_out_act = _norm_act(hidden_size, norm)
        self.obs_dist = nn.Linear(hidden_size, stoch_flat)

    def initial(self, batch_size: int, device: th.device | str) -> RSSMState:
        """:return: the all-zero state, (batch_size, ...)."""
        shape = (batch_size, self.stoch_size, self.stoch_classes)
        zeros = th.zeros(shape, device=device)
        return RSSMState(th.zeros(batch_size, self.deter_size, device=device), zeros, zeros.clone())

    def _latent(self, flat_logits: th.Tensor, sample: bool, uniform: th.Tensor | None = None) -> tuple[th.Tensor, th.Tensor]:
        """:param flat_logits: (..., S * K). :param uniform: (..., S, 1) to sample with (fresh if None).
        :return: the one-hot latent and its logits, (..., S, K) each."""
        logits = flat_logits.unflatten(-1, (self.stoch_size, self.stoch_classes))
        dist = OneHotST(logits)
        return (dist.sample(uniform) if sample else dist.mode()), logits

    def prior_logits(self, deter: th.Tensor) -> th.Tensor:
        """:param deter: (..., D). :return: (..., S, K)."""
        return self.img_dist(self.img_out(deter)).unflatten(-1, (self.stoch_size, self.stoch_classes))

    def img_step(self, prev: RSSMState, action: th.Tensor, sample: bool = True) -> RSSMState:
        """One prior step. :param prev: (B, ...). :param action: (B, A). :return: prior (B, ...)."""
        x = self.img_in_act(self.img_in(th.cat([prev.stoch.flatten(-2), action], -1)))
        deter = self.cell(x, prev.deter)
        stoch, logits = self._latent(self.img_dist(self.img_out(deter)), sample)
        return RSSMState(deter, stoch, logits)

    def obs_step(
        self,
        prev: RSSMState,
        prev_action: th.Tensor,
        embed: th.Tensor,
        is_first: th.Tensor,
        sample: bool = True,
        uniform: th.Tensor | None = None,
    ) -> RSSMState:
        """One posterior step.

        :param prev: (B, ...). :param prev_action: (B, A). :param embed: (B, E). :param is_first: (B,).
        :param sample: sample the latent (else its mode). :param uniform: (B, S, 1) to sample with (fresh if None).
        :return: the posterior state (B, ...).
        """
        keep = 1.0 - is_first.float()
        prev = RSSMState(prev.deter * keep[:, None], prev.stoch * keep[:, None, None], prev.logits)
        x = self.img_in_act(self.img_in(th.cat([prev.stoch.flatten(-2), prev_action * keep[:, None]], -1)))
        deter = self.cell(x, prev.deter)
        hidden = self.obs_out_act(self.obs_out(th.cat([deter, embed], -1)))
        stoch, logits = self._latent(self.obs_dist(hidden), sample, uniform)
        return RSSMState(deter, stoch, logits)

    def observe(self, embed: th.Tensor, action: th.Tensor, is_first: th.Tensor, state: RSSMState | None = None) -> Observed:
        """Posterior states of a sequence (a loop of ``obs_step``) and the prior logits at the same steps.

        :param embed: (T, B, E). :param action: (T, B, A). :param is_first: (T, B).
        :param state: (B, ...) state before the first step, zeros if None.
        """
        state = self.initial(is_first.shape[1], embed.device) if state is None else state
        posts = []
        for embed_t, action_t, is_first_t in zip(embed.unbind(0), action.unbind(0), is_first.unbind(0)):
            state = self.obs_step(state, action_t, embed_t, is_first_t)
            posts.append(state)
        post = RSSMState(*(th.stack(x) for x in zip(*posts)))
        return Observed(post, self.prior_logits(post.deter))
