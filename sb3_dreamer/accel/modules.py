"""The model's modules in their fast forms, swapped in place by :func:`accelerate`.

Each fast form is a subclass that keeps its parent's parameters (so ``state_dict`` keys and values stay as they
are) and computes the same function, up to the order of float additions (``tests/test_accel.py``):

- :class:`FlatMLP`: an MLP run on ``(-1, features)``. With more leading axes each ``nn.Linear``'s output is a
  view that the in-place ELU writes into, and autograd then copies every gradient of it (~40 ms per backward of
  a 4x400 head over 15 x 800 imagined states on a CPU).
- :class:`LatentInputLinear`: the first layer of every network that reads the model feature ``(deter, stoch)``
  (decoder, reward and discount heads, actor, critic, slow critic). The latent ``stoch`` is always an exact
  one-hot sample, so its columns' product is a sum of weight columns (:mod:`.onehot_linear`).
- :class:`FastRSSM`: ``observe`` with the loop's input projections for all steps at once and its weights'
  gradients as one matmul each (:mod:`.loop_linear`); ``img_step`` with ``img_in``'s one-hot product.
- the encoder's and decoder's convolutions (:mod:`.conv`), laid out channels-last.
"""

import torch as th
import torch.nn.functional as F
from torch import nn

from sb3_dreamer.accel.conv import accelerate_decoder, accelerate_encoder
from sb3_dreamer.accel.loop_linear import LoopLinear
from sb3_dreamer.accel.onehot_linear import OneHotColumns, fast_onehot, onehot_linear
from sb3_dreamer.common.networks import MLP
from sb3_dreamer.common.rssm import RSSM, Observed
from sb3_dreamer.common.type_aliases import RSSMState


class FlatMLP(MLP):
    """:class:`MLP` on ``(-1, features)``, reshaped back: (*lead, in) -> (*lead, out)."""

    def forward(self, x: th.Tensor) -> th.Tensor:
        y = super().forward(x.reshape(-1, x.shape[-1]))
        return y.reshape(*x.shape[:-1], y.shape[-1])


class LatentInputLinear(nn.Linear):
    """``nn.Linear`` on a model feature whose columns ``start .. start + S * K`` hold the latent's S exact one-hot
    groups of K classes (``latent = (start, S, K)``, set by :func:`accelerate`): those columns' product is the sum
    of the weight's columns at the ones (on CPUs without autocast; elsewhere ``nn.Linear``).
    """

    latent: tuple[int, int, int]

    def forward(self, x: th.Tensor) -> th.Tensor:
        """:param x: (*lead, D + S * K) features. :return: (*lead, out)."""
        if not fast_onehot(x):
            return super().forward(x)
        flat = x.reshape(-1, x.shape[-1])
        start, groups, classes = self.latent
        onehot = flat[:, start : start + groups * classes].unflatten(-1, (groups, classes))
        y = onehot_linear(self, flat, OneHotColumns.of(onehot, start))
        return y.reshape(*x.shape[:-1], y.shape[-1])


class FastRSSM(RSSM):
    """:class:`RSSM` with the fast forms of ``observe`` and ``img_step`` (same results)."""

    def img_step(self, prev: RSSMState, action: th.Tensor, sample: bool = True) -> RSSMState:
        """One prior step from a sampled state (its ``stoch`` exactly one-hot: not the all-zero initial state).

        :param prev: (B, ...). :param action: (B, A). :return: prior (B, ...).
        """
        x = th.cat([prev.stoch.flatten(-2), action], -1)
        columns = OneHotColumns.of(prev.stoch, 0) if fast_onehot(x) else None
        x = self.img_in_act(onehot_linear(self.img_in, x, columns))
        deter = self.cell(x, prev.deter)
        stoch, logits = self._latent(self.img_dist(self.img_out(deter)), sample)
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
        stoch_in, cell_in = LoopLinear(w_stoch, T), LoopLinear(self.cell.linear.weight, T, self.cell.linear.bias)
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


def accelerate(policy: nn.Module) -> None:
    """Swap the fast forms into a :class:`~sb3_dreamer.dreamer.policies.DreamerPolicy`, in place.

    :param policy: its ``world_model`` (``encoder``, ``rssm``, ``decoder``, heads), ``actor``, ``critic`` and
        ``slow_critic``.
    """
    world_model = policy.world_model
    rssm = world_model.rssm
    for module in policy.modules():
        if type(module) is MLP:
            module.__class__ = FlatMLP
        elif isinstance(module, nn.ELU):
            module.inplace = True
    decoder = world_model.decoder
    readers = (decoder.cnn, decoder.mlp, world_model.reward_head, world_model.discount_head, policy.actor.net,
               policy.critic, policy.slow_critic)  # fmt: skip
    for net in readers:
        if net is not None and type(net[0]) is nn.Linear:
            net[0].__class__ = LatentInputLinear
            net[0].latent = (rssm.deter_size, rssm.stoch_size, rssm.stoch_classes)
    if type(rssm) is RSSM:
        rssm.__class__ = FastRSSM
    if world_model.encoder.cnn is not None:
        accelerate_encoder(world_model.encoder.cnn)
    if decoder.cnn is not None:
        accelerate_decoder(decoder.cnn)
