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
import torch.nn.functional as F
from torch import nn

from sb3_dreamer.common.distributions import OneHotST
from sb3_dreamer.common.loop_linear import LoopLinear
from sb3_dreamer.common.networks import LayerNormGRUCell, Norm
from sb3_dreamer.common.onehot_linear import OneHotColumns, onehot_linear
from sb3_dreamer.common.type_aliases import RSSMState


class Observed(NamedTuple):
    post: RSSMState  # (T, B, ...)
    prior_logits: th.Tensor  # (T, B, S, K)


def _norm_act(units: int, norm: Norm) -> nn.Sequential:
    return nn.Sequential(nn.LayerNorm(units) if norm == "layer" else nn.Identity(), nn.ELU(inplace=True))


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

    def _latent(self, flat_logits: th.Tensor, sample: bool) -> tuple[th.Tensor, th.Tensor]:
        """:param flat_logits: (..., S * K). :return: the one-hot latent and its logits, (..., S, K) each."""
        logits = flat_logits.unflatten(-1, (self.stoch_size, self.stoch_classes))
        dist = OneHotST(logits)
        return (dist.sample() if sample else dist.mode()), logits

    def prior_logits(self, deter: th.Tensor) -> th.Tensor:
        """:param deter: (..., D). :return: (..., S, K)."""
        return self.img_dist(self.img_out(deter)).unflatten(-1, (self.stoch_size, self.stoch_classes))

    def img_step(
        self, prev: RSSMState, action: th.Tensor, sample: bool = True, stoch_hot: th.Tensor | None = None
    ) -> RSSMState:
        """One prior step. :param prev: (B, ...). :param action: (B, A).
        :param stoch_hot: (B, S) the class of each of ``prev.stoch``'s ones, where it is exactly one-hot (no
            all-zero group): ``img_in`` then sums its weight's columns (``onehot_linear``). :return: prior (B, ...).
        """
        columns = None if stoch_hot is None else OneHotColumns(stoch_hot, 0, self.stoch_classes)
        x = self.img_in_act(onehot_linear(self.img_in, th.cat([prev.stoch.flatten(-2), action], -1), columns))
        deter = self.cell(x, prev.deter)
        stoch, logits = self._latent(self.img_dist(self.img_out(deter)), sample)
        return RSSMState(deter, stoch, logits)

    def obs_step(
        self, prev: RSSMState, prev_action: th.Tensor, embed: th.Tensor, is_first: th.Tensor, sample: bool = True
    ) -> RSSMState:
        """One posterior step, the plain statement of what ``observe`` does over a sequence.

        :param prev: (B, ...). :param prev_action: (B, A). :param embed: (B, E). :param is_first: (B,).
        :return: the posterior state (B, ...).
        """
        keep = 1.0 - is_first.float()
        prev = RSSMState(prev.deter * keep[:, None], prev.stoch * keep[:, None, None], prev.logits)
        x = self.img_in_act(self.img_in(th.cat([prev.stoch.flatten(-2), prev_action * keep[:, None]], -1)))
        deter = self.cell(x, prev.deter)
        hidden = self.obs_out_act(self.obs_out(th.cat([deter, embed], -1)))
        stoch, logits = self._latent(self.obs_dist(hidden), sample)
        return RSSMState(deter, stoch, logits)

    def observe(self, embed: th.Tensor, action: th.Tensor, is_first: th.Tensor, state: RSSMState | None = None) -> Observed:
        """Posterior states of a sequence and the prior logits at the same steps.

        Equal to a loop of ``obs_step``; the parts of the linear layers that do not depend on the
        recurrence (action and embedding projections, the prior head) are computed for all steps at once, and
        the weights inside the loop take their gradients as one matmul each (``LoopLinear``).

        :param embed: (T, B, E). :param action: (T, B, A). :param is_first: (T, B).
        :param state: (B, ...) state before the first step, zeros if None.
        """
        T, B = is_first.shape
        prev = self.initial(B, embed.device) if state is None else state
        keep = 1.0 - is_first.float()  # (T, B)
        n_stoch = self.stoch_size * self.stoch_classes
        # Each part of a weight as a contiguous copy: a column slice has strides that the compiled update's
        # oneDNN products (``OneDnnProducts``) leave to MKL, at the loop's 16 rows up to 1.7x slower.
        w_stoch, w_action = (w.contiguous() for w in self.img_in.weight.split([n_stoch, action.shape[-1]], 1))
        action_in = F.linear(action * keep[..., None], w_action, self.img_in.bias)  # (T, B, H)
        w_deter, w_embed = (w.contiguous() for w in self.obs_out.weight.split([self.deter_size, embed.shape[-1]], 1))
        embed_in = F.linear(embed, w_embed, self.obs_out.bias)  # (T, B, H)
        stoch_in, cell_in = LoopLinear(w_stoch, T), LoopLinear(self.cell.linear.weight, T)
        deter_in, dist_in = LoopLinear(w_deter, T), LoopLinear(self.obs_dist.weight, T, self.obs_dist.bias)
        deters, stochs, logits = [], [], []
        deter, stoch = prev.deter, prev.stoch.flatten(-2)
        # unbind: indexing step t of a (T, ...) tensor would give it a (T, ...) zero gradient at every step
        steps = zip(keep.unbind(0), action_in.unbind(0), embed_in.unbind(0))
        for t, (keep_t, action_in_t, embed_in_t) in enumerate(steps):
            deter, stoch = deter * keep_t[:, None], stoch * keep_t[:, None]
            x = self.img_in_act(stoch_in(stoch, t) + action_in_t)
            deter = self.cell.gates(cell_in(th.cat([x, deter], -1), t), deter)
            hidden = self.obs_out_act(deter_in(deter, t) + embed_in_t)
            stoch_t, logits_t = self._latent(dist_in(hidden, t), True)
            stoch = stoch_t.flatten(-2)
            deters.append(deter)
            stochs.append(stoch_t)
            logits.append(logits_t)
        post = RSSMState(th.stack(deters), th.stack(stochs), th.stack(logits))
        return Observed(post, self.prior_logits(post.deter))
