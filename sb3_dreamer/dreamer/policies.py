"""DreamerPolicy: the world model, the actor, the critic and its slow copy, with their optimisers.

The policy acts like sb3-contrib's recurrent policies: ``predict(obs, state, episode_start)`` carries the
RSSM latent and the previous action per environment, so ``evaluate_policy`` works unchanged.
"""

import contextlib
from collections.abc import Iterator
from typing import Any, Literal, NamedTuple

import numpy as np
import torch as th
import torch.nn.functional as F
from gymnasium import spaces
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import Schedule
from torch import nn

from sb3_dreamer.common.distributions import OneHotST, TruncNormal
from sb3_dreamer.common.networks import MLP, Decoder, Encoder, Norm, VectorObsNorm, mlp, preprocess_obs, split_keys
from sb3_dreamer.common.onehot_linear import OneHotColumns
from sb3_dreamer.common.optim import AdamW
from sb3_dreamer.common.rssm import RSSM
from sb3_dreamer.common.type_aliases import Imagination, ObsDict, RSSMState, SequenceBatch, WorldModelLoss
from sb3_dreamer.dreamer.losses import kl_balance

RewardTransform = Literal["identity", "tanh", "sign"]
_REWARD_TRANSFORMS = {"identity": lambda r: r, "tanh": th.tanh, "sign": th.sign}


def check_observation_space(observation_space: spaces.Space) -> None:
    """Refuse observation spaces DreamerV2 cannot model (anything but a Box or a Dict of Boxes), naming the fix."""
    if isinstance(observation_space, spaces.Box):
        return
    if isinstance(observation_space, spaces.Dict):
        for key, space in observation_space.spaces.items():
            if not isinstance(space, spaces.Box):
                raise ValueError(f"Dict observation key {key!r}: {_observation_fix(space)}")
        return
    raise ValueError(_observation_fix(observation_space))


def _observation_fix(space: spaces.Space) -> str:
    if isinstance(space, (spaces.Sequence, spaces.Graph, spaces.Text)):
        return (
            f"DreamerV2 needs fixed-size observations (a Box, or a Dict of Boxes), got {space}. Pad or crop it to "
            "a fixed shape in a gymnasium.ObservationWrapper."
        )
    return (
        f"DreamerV2 takes Box or Dict-of-Box observations, got {space}. Wrap the env in "
        "gymnasium.wrappers.FlattenObservation (Discrete becomes one-hot, Tuple/MultiDiscrete/MultiBinary flat)."
    )


def obs_shapes(observation_space: spaces.Space) -> dict[str, tuple[int, ...]]:
    """Observation key -> shape. A Box becomes the single key ``obs``."""
    check_observation_space(observation_space)
    if isinstance(observation_space, spaces.Dict):
        return {k: tuple(s.shape) for k, s in observation_space.spaces.items()}  # type: ignore[misc, arg-type]
    return {"obs": tuple(observation_space.shape)}  # type: ignore[arg-type]


def action_dim(action_space: spaces.Space) -> int:
    """Size A of the model's action vector: one-hot for Discrete, flat for a 1-D Box."""
    if isinstance(action_space, spaces.Discrete):
        return int(action_space.n)
    if isinstance(action_space, spaces.Box) and len(action_space.shape) == 1:
        return int(action_space.shape[0])
    raise ValueError(
        f"DreamerV2 takes Discrete or 1-D Box action spaces, got {action_space}. Flatten a multi-dimensional "
        "Box with gymnasium.wrappers.FlattenAction; turn MultiDiscrete/MultiBinary into one Discrete over the "
        "combinations (a gymnasium.ActionWrapper), or a Box whose values you round."
    )


def latent_entropy(logits: th.Tensor) -> th.Tensor:
    """Mean entropy (nats) of the categorical latents: summed over the S variables, averaged over the rest.

    :param logits: (..., S, K).
    """
    log_probs = logits.float().log_softmax(-1)
    return -(log_probs.exp() * log_probs).sum((-2, -1)).mean()


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


def choose_step_kernel(optimizer: th.optim.Optimizer) -> None:
    """Step with Adam(W)'s fused kernel where the parameters are on the CPU, with ``foreach`` elsewhere.

    On a 2-core CPU the fused step of the ``atari`` world model's 20M parameters takes 19 ms against 47 ms.
    On a GPU, ``foreach`` is what the CUDA graphs were measured with, and a fused step would need its step
    counters on the GPU also when not capturing. The choice is saved with the optimiser's state, so it is made
    again before every update: a model saved on one device may be loaded on another.
    """
    fused = optimizer.param_groups[0]["params"][0].device.type == "cpu"
    for group in optimizer.param_groups:
        group["fused"], group["foreach"] = fused, not fused


class PolicyState(NamedTuple):
    """What the agent carries between environment steps, per environment."""

    latent: RSSMState  # (B, ...) posterior after the last observation
    action: th.Tensor  # (B, A) the action taken after it


class Actor(nn.Module):
    """MLP policy head: one-hot categorical (Discrete) or truncated normal in [-1, 1] (Box)."""

    def __init__(self, feat_size: int, action_dim: int, discrete: bool, layers: int, units: int, norm: Norm, min_std: float):
        super().__init__()
        self.discrete, self.min_std = discrete, min_std
        self.net = mlp(feat_size, action_dim if discrete else 2 * action_dim, layers, units, norm)

    def forward(self, feat: th.Tensor) -> OneHotST | TruncNormal:
        """:param feat: (..., F). :return: a distribution over (..., A)."""
        return self.dist(self.net(feat))

    def dist(self, out: th.Tensor) -> OneHotST | TruncNormal:
        """:param out: (..., A or 2A) outputs of ``net``. :return: the distribution they parameterise."""
        if self.discrete:
            return OneHotST(out)
        mean, std = out.chunk(2, -1)
        return TruncNormal(th.tanh(mean), 2 * th.sigmoid(std / 2) + self.min_std)


class WorldModel(nn.Module):
    """Encoder, RSSM, decoder, reward head and (optional) discount head."""

    def __init__(
        self,
        shapes: dict[str, tuple[int, ...]],
        action_dim: int,
        deter_size: int,
        stoch_size: int,
        stoch_classes: int,
        hidden_size: int,
        cnn_depth: int,
        mlp_layers: int,
        mlp_units: int,
        norm: Norm,
        pred_discount: bool,
        normalize_obs: bool = False,
    ):
        super().__init__()
        vector_keys = split_keys(shapes)[1]
        self.obs_norm = VectorObsNorm({k: shapes[k][0] for k in vector_keys}) if normalize_obs and vector_keys else None
        self.encoder = Encoder(shapes, cnn_depth, mlp_layers=mlp_layers, mlp_units=mlp_units, norm=norm)
        self.rssm = RSSM(action_dim, self.encoder.embed_size, deter_size, stoch_size, stoch_classes, hidden_size, norm)
        feat = self.rssm.feat_size
        self.decoder = Decoder(shapes, feat, cnn_depth, mlp_layers=mlp_layers, mlp_units=mlp_units, norm=norm)
        self.reward_head = mlp(feat, 1, mlp_layers, mlp_units, norm)
        self.discount_head = mlp(feat, 1, mlp_layers, mlp_units, norm) if pred_discount else None

    def preprocess(self, obs: ObsDict) -> ObsDict:
        """Raw observations -> what the encoder reads and the decoder reconstructs: images in [-0.5, 0.5],
        vectors as floats, standardised with ``normalize_obs``."""
        obs = preprocess_obs(obs, self.encoder.image_keys)
        return obs if self.obs_norm is None else self.obs_norm(obs)

    def embed(self, obs: ObsDict) -> th.Tensor:
        """:param obs: raw observations (*lead, *shape). :return: (*lead, E)."""
        return self.encoder(self.preprocess(obs))

    def loss(
        self,
        batch: SequenceBatch,
        kl_scale: float,
        kl_balance_: float,
        kl_free: float,
        kl_free_avg: bool,
        reward_scale: float,
        discount_scale: float,
        reward_transform: RewardTransform,
    ) -> WorldModelLoss:
        """Negative ELBO with KL balancing on a (T, B) batch of replay windows."""
        obs = self.preprocess(batch.obs)
        embed = self.encoder(obs)  # (T, B, E)
        post, prior_logits = self.rssm.observe(embed, batch.action, batch.is_first)
        kl_loss, kl_value = kl_balance(post.logits, prior_logits, kl_balance_, kl_free, kl_free_avg)
        feat = post.feat()  # (T, B, F)
        onehot = OneHotColumns.of(post.stoch, self.rssm.deter_size)  # posterior samples are exactly one-hot
        metrics: dict[str, th.Tensor] = {"kl": kl_value.mean()}
        loss = kl_scale * kl_loss
        for key, mean in self.decoder(feat, onehot).items():
            sum_dims = tuple(range(2, mean.dim()))
            recon = (0.5 * (mean - obs[key]) ** 2).sum(sum_dims).mean()
            metrics[f"{key}_loss"] = recon
            loss = loss + recon
        reward_target = _REWARD_TRANSFORMS[reward_transform](batch.reward)
        reward_pred = self.reward_head(feat, onehot).squeeze(-1)
        reward_loss = (0.5 * (reward_pred - reward_target) ** 2).mean()
        loss = loss + reward_scale * reward_loss
        metrics.update(kl_loss=kl_loss, reward_loss=reward_loss)
        with th.no_grad():  # diagnostics: how sharp the latents are, how well rewards and ends are predicted
            metrics.update(post_entropy=latent_entropy(post.logits), prior_entropy=latent_entropy(prior_logits))
            metrics["reward_mae"] = (reward_pred - reward_target).abs().mean()
        if self.discount_head is not None:
            cont_logits = self.discount_head(feat, onehot).squeeze(-1)
            discount_loss = F.binary_cross_entropy_with_logits(cont_logits, 1.0 - batch.is_terminal)
            loss = loss + discount_scale * discount_loss
            metrics["discount_loss"] = discount_loss
            metrics["discount_acc"] = ((cont_logits.detach() > 0) == (batch.is_terminal < 0.5)).float().mean()
        metrics["model_loss"] = loss
        return WorldModelLoss(loss, post, metrics)

    def imagine(
        self, actor: Actor, start: RSSMState, start_is_terminal: th.Tensor, horizon: int, gamma: float, last_heads: bool = True
    ) -> Imagination:
        """Roll the prior forward from ``start`` with actions sampled from ``actor``.

        The actor's outputs record gradients for the actor (its input is detached), also where the rest runs
        without autograd: the actor loss uses them instead of running the actor again. It reads those of states
        ``0 .. H - 2``; the last one's reaches the loss only through the dynamics, so it records a gradient only
        where autograd is on (``dynamics`` and ``both``). Every state's
        latent is an exact one-hot sample, so the layers that read the features sum weight columns for it
        (``onehot_linear``).

        :param start: (N, ...) posterior states (sampled). :param start_is_terminal: (N,) their true termination
            flags. :param last_heads: also predict the last state's reward and discount (the lambda-returns do not
            read them). :return: a trajectory of ``horizon + 1`` states, the start included.
        """
        state = start
        feats = [start.feat()]
        columns = [OneHotColumns.of(start.stoch, self.rssm.deter_size)]  # feat is (deter, stoch)
        actions, actor_outs = [], []
        grad = th.is_grad_enabled()
        for t in range(horizon):
            with th.set_grad_enabled(grad or t < horizon - 1):
                actor_outs.append(actor.net(feats[-1].detach(), columns[-1]))
            action = actor.dist(actor_outs[-1]).sample()
            state = self.rssm.img_step(state, action, stoch_hot=columns[-1].hot)
            feats.append(state.feat())
            columns.append(OneHotColumns.of(state.stoch, self.rssm.deter_size))
            actions.append(action)
        actions.insert(0, th.zeros_like(actions[0]))  # no action led to the start state
        feat = th.stack(feats)  # (H + 1, N, F)
        hot = th.stack([c.hot for c in columns])  # (H + 1, N, S)
        onehot = OneHotColumns(hot, self.rssm.deter_size, self.rssm.stoch_classes)
        end = horizon + 1 if last_heads else horizon  # the states whose reward and discount are predicted
        reward = _head_on_states(self.reward_head, feat, onehot, 0, end)
        first = gamma * (1.0 - start_is_terminal)[None]
        if self.discount_head is not None:
            cont_logits = _head_on_states(self.discount_head, feat, onehot, 1, end)
            discount = th.cat([first, gamma * th.sigmoid(cont_logits)], 0)
        else:
            discount = th.cat([first, th.full_like(reward[1:], gamma)], 0)
        # discount[t] says whether state t + 1 is valid, so the weight of state t uses discounts before t.
        weight = th.cumprod(th.cat([th.ones_like(discount[:1]), discount[:horizon]], 0), 0).detach()
        with th.enable_grad():
            actor_out = th.stack(actor_outs)  # (H, N, A or 2A)
        return Imagination(feat, th.stack(actions), reward, discount, weight, actor_out, onehot)


def _head_on_states(head: MLP, feat: th.Tensor, onehot: OneHotColumns, lo: int, hi: int) -> th.Tensor:
    """A one-output head's predictions for the imagined states ``lo .. hi``.

    Without autograd it reads only those states. With it, it reads the whole stack and its output is sliced: in
    the backward pass a slice of the stack is a zero fill and a copy of the whole (H + 1, N, F) gradient, which
    costs more than the head's extra rows (the two fills alone took 8.4 ms of a ~350-ms classic ``dynamics``
    update, one thread).

    :param feat: (H + 1, N, F). :return: (hi - lo, N).
    """
    if th.is_grad_enabled():
        return head(feat, onehot).squeeze(-1)[lo:hi]
    return head(feat[lo:hi], onehot.at(slice(lo, hi))).squeeze(-1)


def check_finite_observation(observation: np.ndarray | dict[str, np.ndarray]) -> None:
    """Refuse NaN/inf in float observations (one would poison the latent, or every replay batch holding it)."""
    items = observation.items() if isinstance(observation, dict) else [("obs", observation)]
    for key, value in items:
        value = np.asarray(value)
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            where = np.argwhere(~np.isfinite(value))[0].tolist()
            raise ValueError(
                f"Observation {key!r} holds NaN or inf (first at index {where}). Fix the environment or wrap it, "
                "e.g. gymnasium.wrappers.TransformObservation(env, np.nan_to_num, env.observation_space)."
            )


def _check_image_dtypes(observation_space: spaces.Space) -> None:
    """3-D observations are images for the CNN: they must be uint8 (0-255), as SB3's channel handling needs."""
    subspaces = observation_space.spaces if isinstance(observation_space, spaces.Dict) else {"obs": observation_space}
    for key, space in subspaces.items():
        if isinstance(space, spaces.Box) and len(space.shape) == 3 and space.dtype != np.uint8:
            raise ValueError(
                f"Image observation {key!r} is {space.dtype} with shape {space.shape}; DreamerV2's CNN takes uint8 "
                "images (0-255), which SB3 also needs to put channels first. Convert it, e.g. gymnasium.wrappers."
                "TransformObservation(env, lambda o: (o * 255).astype(np.uint8), Box(0, 255, shape, np.uint8))."
            )


class DreamerPolicy(BasePolicy):
    """World model and actor-critic of DreamerV2 (``MlpPolicy``: vector observations).

    :param observation_space: Box (vector or channel-first 64x64 image) or Dict of those.
    :param action_space: Discrete or 1-D Box.
    :param lr_schedule: learning-rate schedule of the world model (``learning_rate`` of the algorithm).
    :param deter_size: size D of the GRU state. :param stoch_size: number S of categorical latents.
    :param stoch_classes: classes K per latent. :param hidden_size: width of the RSSM's other layers.
    :param cnn_depth: base depth of the conv encoder/decoder. :param mlp_layers: / :param mlp_units: size of
        every MLP (vector encoder/decoder, heads, actor, critic). :param norm: ``none`` or ``layer``.
    :param pred_discount: learn a discount (continue) head; without it imagined episodes never end.
    :param normalize_obs: standardise vector observations per dimension (``VectorObsNorm``; its statistics are
        set by ``DreamerV2`` from the replay when training starts).
    :param actor_min_std: lower bound of the continuous actor's std.
    :param actor_lr: / :param critic_lr: learning rates of the actor and critic.
    :param adam_eps: Adam's epsilon. :param weight_decay: decoupled weight decay per update, as the
        reference applies it (``w <- (1 - weight_decay) * w``).
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule: Schedule,
        deter_size: int = 600,
        stoch_size: int = 32,
        stoch_classes: int = 32,
        hidden_size: int = 600,
        cnn_depth: int = 48,
        mlp_layers: int = 4,
        mlp_units: int = 400,
        norm: Norm = "none",
        pred_discount: bool = True,
        normalize_obs: bool = False,
        actor_min_std: float = 0.1,
        actor_lr: float = 4e-5,
        critic_lr: float = 1e-4,
        adam_eps: float = 1e-5,
        weight_decay: float = 1e-6,
    ):
        super().__init__(observation_space, action_space, normalize_images=False)
        if norm not in ("none", "layer"):
            raise ValueError(f"norm must be 'none' or 'layer', got {norm!r}.")
        self._check_spaces(observation_space)
        _check_image_dtypes(observation_space)
        self.shapes = obs_shapes(observation_space)
        self.discrete = isinstance(action_space, spaces.Discrete)
        self.action_dim = action_dim(action_space)
        self.arch = dict(
            deter_size=deter_size, stoch_size=stoch_size, stoch_classes=stoch_classes, hidden_size=hidden_size,
            cnn_depth=cnn_depth, mlp_layers=mlp_layers, mlp_units=mlp_units, norm=norm, pred_discount=pred_discount,
            normalize_obs=normalize_obs, actor_min_std=actor_min_std,
        )  # fmt: skip
        self.opt = dict(actor_lr=actor_lr, critic_lr=critic_lr, adam_eps=adam_eps, weight_decay=weight_decay)
        self.world_model = WorldModel(
            self.shapes, self.action_dim, deter_size, stoch_size, stoch_classes, hidden_size,
            cnn_depth, mlp_layers, mlp_units, norm, pred_discount, normalize_obs,
        )  # fmt: skip
        feat = self.world_model.rssm.feat_size
        self.actor = Actor(feat, self.action_dim, self.discrete, mlp_layers, mlp_units, norm, actor_min_std)
        self.critic = mlp(feat, 1, mlp_layers, mlp_units, norm)
        self.slow_critic = mlp(feat, 1, mlp_layers, mlp_units, norm)
        self.slow_critic.load_state_dict(self.critic.state_dict())
        self.slow_critic.requires_grad_(False)
        self.make_optimizers(lr_schedule(1))

    def make_optimizers(self, model_lr: float) -> None:
        """(Re)create the world-model, actor and critic optimisers, without state (no Adam moments)."""
        opt = self.opt
        self.model_optimizer = self._adam(self.world_model, model_lr, opt["adam_eps"], opt["weight_decay"])
        self.actor_optimizer = self._adam(self.actor, opt["actor_lr"], opt["adam_eps"], opt["weight_decay"])
        self.critic_optimizer = self._adam(self.critic, opt["critic_lr"], opt["adam_eps"], opt["weight_decay"])

    @staticmethod
    def _adam(module: nn.Module, lr: float, eps: float, weight_decay: float) -> AdamW:
        # AdamW decays by lr * wd per step; the reference decays by wd per step. lr = 0 (rl-zoo3's enjoy loads
        # models with learning_rate 0) means no update at all, decay included.
        decay = weight_decay / lr if lr > 0 else 0.0
        return AdamW(module.parameters(), lr=lr, eps=eps, weight_decay=decay, foreach=True)

    def _check_spaces(self, observation_space: spaces.Space) -> None:
        """Hook for the aliases to reject observation spaces they are not meant for."""

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(self.arch, **self.opt)
        return data

    # ---------------------------------------------------------------- acting

    def initial_state(self, n_envs: int) -> PolicyState:
        """:return: the zero latent and zero previous action for ``n_envs`` environments."""
        latent = self.world_model.rssm.initial(n_envs, self.device)
        return PolicyState(latent, th.zeros(n_envs, self.action_dim, device=self.device))

    def obs_dict(self, obs: th.Tensor | ObsDict) -> ObsDict:
        return obs if isinstance(obs, dict) else {"obs": obs}

    def act(
        self, obs: ObsDict, state: PolicyState, episode_start: th.Tensor, deterministic: bool = False
    ) -> tuple[th.Tensor, PolicyState]:
        """One step of the agent: update the posterior with ``obs``, then choose an action.

        :param obs: key -> (B, *shape) raw observations. :param state: the state after the previous step.
        :param episode_start: (B,) 1 where ``obs`` is the first of an episode (resets the latent).
        :return: (B, A) model action (one-hot or in [-1, 1]) and the new state.
        """
        embed = self.world_model.embed(obs)
        # The posterior is sampled in both modes, as the reference evaluates (``eval_state_mean: False``):
        # the actor was trained on sampled latents. Seed torch for exactly repeatable predictions.
        latent = self.world_model.rssm.obs_step(state.latent, state.action, embed, episode_start)
        dist = self.actor(latent.feat())
        action = (dist.mode() if deterministic else dist.sample()).detach()
        return action, PolicyState(latent, action)

    def to_env_action(self, action: th.Tensor) -> np.ndarray:
        """Model action (B, A) -> environment action: an index, or rescaled to the Box bounds."""
        if self.discrete:
            return action.argmax(-1).cpu().numpy()
        return self.unscale_action(action.clamp(-1, 1).cpu().numpy())

    def forward(self, obs: ObsDict, state: PolicyState, episode_start: th.Tensor, deterministic: bool = False):  # noqa: ANN201
        return self.act(obs, state, episode_start, deterministic)

    def _predict(self, observation: th.Tensor | ObsDict, deterministic: bool = False) -> th.Tensor:
        """Stateless action: every observation is treated as the first of its episode."""
        obs = self.obs_dict(observation)
        n = next(iter(obs.values())).shape[0]
        action, _ = self.act(obs, self.initial_state(n), th.ones(n, device=self.device), deterministic)
        return action.argmax(-1) if self.discrete else action

    def predict(
        self,
        observation: np.ndarray | dict[str, np.ndarray],
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
        """Action for each observation, carrying the latent like sb3-contrib's ``RecurrentPPO``.

        :param observation: one observation or a batch (one per environment).
        :param state: ``(deter, stoch, action)`` arrays returned by the previous call, None at the start.
        :param episode_start: (n_envs,) 1 where the observation starts an episode, None = no new episode.
        :return: the actions and the new state.
        """
        self.set_training_mode(False)
        check_finite_observation(observation)
        obs_tensor, vectorized = self.obs_to_tensor(observation)
        obs = self.obs_dict(obs_tensor)
        n = next(iter(obs.values())).shape[0]
        if state is None:
            policy_state = self.initial_state(n)
            starts = th.ones(n, device=self.device)
        else:
            deter, stoch, action = (th.as_tensor(x, device=self.device, dtype=th.float32) for x in state)
            latent = RSSMState(deter, stoch, th.zeros_like(stoch))
            policy_state = PolicyState(latent, action)
            starts = th.zeros(n, device=self.device)
            if episode_start is not None:
                starts = th.as_tensor(np.asarray(episode_start).reshape(n), device=self.device, dtype=th.float32)
        with th.no_grad():
            action, policy_state = self.act(obs, policy_state, starts, deterministic)
        env_action = self.to_env_action(action)
        if not vectorized:
            env_action = env_action.squeeze(0)
        latent = policy_state.latent
        new_state = tuple(x.cpu().numpy() for x in (latent.deter, latent.stoch, policy_state.action))
        return env_action, new_state


class CnnPolicy(DreamerPolicy):
    """DreamerPolicy for 64x64 image observations (uint8, HWC or CHW)."""

    def _check_spaces(self, observation_space: spaces.Space) -> None:
        if not (isinstance(observation_space, spaces.Box) and len(observation_space.shape) == 3):
            raise ValueError(
                f"CnnPolicy expects a 64x64 image Box observation space, got {observation_space}. "
                "Use 'MlpPolicy' for vectors or 'MultiInputPolicy' for Dict observations."
            )


class MlpPolicy(DreamerPolicy):
    """DreamerPolicy for flat vector observations."""

    def _check_spaces(self, observation_space: spaces.Space) -> None:
        if not (isinstance(observation_space, spaces.Box) and len(observation_space.shape) == 1):
            raise ValueError(
                f"MlpPolicy expects a 1-D Box observation space, got {observation_space}. "
                "Use 'CnnPolicy' for 64x64 images or 'MultiInputPolicy' for Dict observations."
            )


class MultiInputPolicy(DreamerPolicy):
    """DreamerPolicy for Dict observations of 64x64 images and flat vectors."""

    def _check_spaces(self, observation_space: spaces.Space) -> None:
        if not isinstance(observation_space, spaces.Dict):
            raise ValueError(
                f"MultiInputPolicy expects a Dict observation space, got {observation_space}. "
                "Use 'CnnPolicy' for images or 'MlpPolicy' for vectors."
            )
