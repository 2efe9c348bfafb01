"""The world model of DreamerV2 (sec. 2): encoder, RSSM, decoder, reward and discount heads, its loss and its
imagination.

The loss is the negative ELBO with KL balancing (eq. 2)::

    L = sum_x 0.5 ||x_hat - x||^2  +  reward_scale * 0.5 (r_hat - f(r))^2  +  discount_scale * BCE(d_hat, gamma (1 - term))
        + kl_scale * [alpha KL(sg(q) || p) + (1 - alpha) KL(q || sg(p))]

over a (T, B) batch of replay windows, with ``f`` the reward transform (``tanh`` on Atari). The discount head
predicts ``gamma`` times the probability that the episode continues, which the imagination uses as it is.
"""

from typing import NamedTuple

import torch as th
import torch.nn.functional as F
from torch import nn

from sb3_dreamer.common.networks import Decoder, Encoder, VectorObsNorm, mlp, preprocess_obs, split_keys
from sb3_dreamer.common.rssm import RSSM
from sb3_dreamer.common.type_aliases import ObsDict, RSSMState, SequenceBatch
from sb3_dreamer.dreamer.config import DreamerConfig
from sb3_dreamer.dreamer.losses import kl_balance

REWARD_TRANSFORMS = {"identity": lambda r: r, "tanh": th.tanh, "sign": th.sign}


class WorldModelLoss(NamedTuple):
    loss: th.Tensor  # () total weighted loss
    post: RSSMState  # (T, B, ...) posterior states, the imagination starts
    metrics: dict[str, th.Tensor]


class Imagination(NamedTuple):
    """An imagined trajectory of H + 1 states starting from the posterior states (index 0)."""

    feat: th.Tensor  # (H + 1, N, F)
    action: th.Tensor  # (H + 1, N, A); action[0] is zeros, action[t] led to state t
    reward: th.Tensor  # (H + 1, N), or (H, N) without the last state's (``imagine``'s ``last_heads``)
    discount: th.Tensor  # (H + 1, N) gamma * P(continue) (gamma without a discount head), or (H, N) as ``reward``
    weight: th.Tensor  # (H + 1, N) cumulative product of the shifted discounts
    actor_out: th.Tensor  # (H, N, A or 2A) the actor's outputs in states 0..H-1, with gradients for the actor


def latent_entropy(logits: th.Tensor) -> th.Tensor:
    """Mean entropy (nats) of the categorical latents: summed over the S variables, averaged over the rest.

    :param logits: (..., S, K).
    """
    log_probs = logits.float().log_softmax(-1)
    return -(log_probs.exp() * log_probs).sum((-2, -1)).mean()


class WorldModel(nn.Module):
    """Encoder, RSSM, decoder, reward head and (optional) discount head.

    :param shapes: observation key -> shape (images channel first). :param action_dim: A.
    :param config: the sizes (``deter_size``, ``stoch_size``, ...), ``norm``, ``pred_discount``, ``normalize_obs``.
    """

    def __init__(self, shapes: dict[str, tuple[int, ...]], action_dim: int, config: DreamerConfig):
        super().__init__()
        c = config
        vector_keys = split_keys(shapes)[1]
        self.obs_norm = VectorObsNorm({k: shapes[k][0] for k in vector_keys}) if c.normalize_obs and vector_keys else None
        self.encoder = Encoder(shapes, c.cnn_depth, mlp_layers=c.mlp_layers, mlp_units=c.mlp_units, norm=c.norm)
        self.rssm = RSSM(
            action_dim, self.encoder.embed_size, c.deter_size, c.stoch_size, c.stoch_classes, c.hidden_size, c.norm
        )
        feat = self.rssm.feat_size
        self.decoder = Decoder(shapes, feat, c.cnn_depth, mlp_layers=c.mlp_layers, mlp_units=c.mlp_units, norm=c.norm)
        self.reward_head = mlp(feat, 1, c.mlp_layers, c.mlp_units, c.norm)
        self.discount_head = mlp(feat, 1, c.mlp_layers, c.mlp_units, c.norm) if c.pred_discount else None

    def preprocess(self, obs: ObsDict) -> ObsDict:
        """Raw observations -> what the encoder reads and the decoder reconstructs: images in [-0.5, 0.5],
        vectors as floats, standardised with ``normalize_obs``."""
        obs = preprocess_obs(obs, self.encoder.image_keys)
        return obs if self.obs_norm is None else self.obs_norm(obs)

    def embed(self, obs: ObsDict) -> th.Tensor:
        """:param obs: raw observations (*lead, *shape). :return: (*lead, E)."""
        return self.encoder(self.preprocess(obs))

    def loss(self, batch: SequenceBatch, config: DreamerConfig) -> WorldModelLoss:
        """Negative ELBO with KL balancing on a (T, B) batch of replay windows.

        :param config: the loss scales, KL balance and free nats, the reward transform.
        """
        obs = self.preprocess(batch.obs)
        embed = self.encoder(obs)  # (T, B, E)
        post, prior_logits = self.rssm.observe(embed, batch.action, batch.is_first)
        kl_loss, kl_value = kl_balance(post.logits, prior_logits, config.kl_balance, config.kl_free, config.kl_free_avg)
        feat = post.feat()  # (T, B, F)
        metrics: dict[str, th.Tensor] = {"kl": kl_value.mean()}
        loss = config.kl_scale * kl_loss
        for key, mean in self.decoder(feat).items():
            sum_dims = tuple(range(2, mean.dim()))
            recon = (0.5 * (mean - obs[key]) ** 2).sum(sum_dims).mean()
            metrics[f"{key}_loss"] = recon
            loss = loss + recon
        reward_target = REWARD_TRANSFORMS[config.reward_transform](batch.reward)
        reward_pred = self.reward_head(feat).squeeze(-1)
        reward_loss = (0.5 * (reward_pred - reward_target) ** 2).mean()
        loss = loss + config.reward_scale * reward_loss
        metrics.update(kl_loss=kl_loss, reward_loss=reward_loss)
        with th.no_grad():  # diagnostics: how sharp the latents are, how well rewards and ends are predicted
            metrics.update(post_entropy=latent_entropy(post.logits), prior_entropy=latent_entropy(prior_logits))
            metrics["reward_mae"] = (reward_pred - reward_target).abs().mean()
        if self.discount_head is not None:
            cont_logits = self.discount_head(feat).squeeze(-1)
            discount_target = config.gamma * (1.0 - batch.is_terminal)  # the discount of the step that follows
            discount_loss = F.binary_cross_entropy_with_logits(cont_logits, discount_target)
            loss = loss + config.discount_scale * discount_loss
            metrics["discount_loss"] = discount_loss
            metrics["discount_acc"] = ((cont_logits.detach() > 0) == (batch.is_terminal < 0.5)).float().mean()
        metrics["model_loss"] = loss
        return WorldModelLoss(loss, post, metrics)

    def imagine(
        self,
        actor: nn.Module,
        start: RSSMState,
        start_is_terminal: th.Tensor,
        horizon: int,
        gamma: float,
        last_heads: bool = True,
    ) -> Imagination:
        """Roll the prior forward from ``start`` with actions sampled from ``actor``.

        The actor's outputs record gradients for the actor (its input is detached), also where the rest runs
        without autograd: the actor loss uses them instead of running the actor again. It reads those of states
        ``0 .. H - 2``; the last one's reaches the loss only through the dynamics, so it records a gradient only
        where autograd is on (``dynamics`` and ``both``).

        :param actor: :class:`~sb3_dreamer.dreamer.behavior.Actor`. :param start: (N, ...) posterior states (sampled).
        :param start_is_terminal: (N,) their true termination flags. :param last_heads: also predict the last
            state's reward and discount (the lambda-returns do not read them).
        :return: a trajectory of ``horizon + 1`` states, the start included.
        """
        state = start
        feats = [start.feat()]
        actions, actor_outs = [], []
        grad = th.is_grad_enabled()
        for t in range(horizon):
            with th.set_grad_enabled(grad or t < horizon - 1):
                actor_outs.append(actor.net(feats[-1].detach()))
            action = actor.dist(actor_outs[-1]).sample()
            state = self.rssm.img_step(state, action)
            feats.append(state.feat())
            actions.append(action)
        actions.insert(0, th.zeros_like(actions[0]))  # no action led to the start state
        feat = th.stack(feats)  # (H + 1, N, F)
        end = horizon + 1 if last_heads else horizon  # the states whose reward and discount are predicted
        reward = self.reward_head(feat[:end]).squeeze(-1)
        if self.discount_head is not None:  # learned as gamma * P(continue); the start's is known
            first = gamma * (1.0 - start_is_terminal)[None]
            discount = th.cat([first, th.sigmoid(self.discount_head(feat[1:end]).squeeze(-1))], 0)
        else:
            discount = th.full_like(reward, gamma)
        # discount[t] says whether state t + 1 is valid, so the weight of state t uses discounts before t.
        weight = th.cumprod(th.cat([th.ones_like(discount[:1]), discount[:horizon]], 0), 0).detach()
        with th.enable_grad():
            actor_out = th.stack(actor_outs)  # (H, N, A or 2A)
        return Imagination(feat, th.stack(actions), reward, discount, weight, actor_out)
