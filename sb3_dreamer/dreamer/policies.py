"""DreamerPolicy: the world model, the actor, the critic and its slow copy, with their optimisers.

The policy acts like sb3-contrib's recurrent policies: ``predict(obs, state, episode_start)`` carries the
RSSM latent and the previous action per environment, so ``evaluate_policy`` works unchanged.
"""

from typing import Any, NamedTuple

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import Schedule
from torch import nn

from sb3_dreamer.common.networks import keras_init, mlp
from sb3_dreamer.common.type_aliases import ObsDict, RSSMState
from sb3_dreamer.dreamer.behavior import Actor
from sb3_dreamer.dreamer.config import DreamerConfig
from sb3_dreamer.dreamer.world_model import WorldModel


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


def hash_projection(features: int, n: int) -> th.Tensor:
    """The fixed random projection :func:`hashed_uniform` hashes with: (features, n), float64, seed 0."""
    return th.randn(features, n, generator=th.Generator().manual_seed(0), dtype=th.float64)


def hashed_uniform(x: th.Tensor, projection: th.Tensor) -> th.Tensor:
    """Numbers in [0, 1) that look uniform and independent across inputs, but are a function of the input: the
    fractional part of a large multiple of the sine of fixed random projections (a hash), in float64.

    :param x: (B, F). :param projection: (F, n) from :func:`hash_projection`. :return: (B, n, 1).
    """
    hashed = th.sin(x.detach().double() @ projection * 12.9898) * 43758.5453
    return (hashed - hashed.floor()).to(x.dtype).unsqueeze(-1)


class PolicyState(NamedTuple):
    """What the agent carries between environment steps, per environment."""

    latent: RSSMState  # (B, ...) posterior after the last observation
    action: th.Tensor  # (B, A) the action taken after it


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
    :param config: the hyperparameters (sizes, ``norm``, optimiser settings); ``DreamerV2`` passes its own.
    :param overrides: fields of :class:`~sb3_dreamer.dreamer.config.DreamerConfig` that replace ``config``'s.
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule: Schedule,
        config: DreamerConfig | None = None,
        **overrides: Any,
    ):
        super().__init__(observation_space, action_space, normalize_images=False)
        self.config = config = (config or DreamerConfig()).replace(**overrides)
        self._check_spaces(observation_space)
        _check_image_dtypes(observation_space)
        self.shapes = obs_shapes(observation_space)
        self.discrete = isinstance(action_space, spaces.Discrete)
        self.action_dim = action_dim(action_space)
        self.world_model = WorldModel(self.shapes, self.action_dim, config)
        feat, c = self.world_model.rssm.feat_size, config
        self.actor = Actor(feat, self.action_dim, self.discrete, c.mlp_layers, c.mlp_units, c.norm, c.actor_min_std)
        self.critic = mlp(feat, 1, c.mlp_layers, c.mlp_units, c.norm)
        self.slow_critic = mlp(feat, 1, c.mlp_layers, c.mlp_units, c.norm)
        keras_init(self)
        self.actor.keras_init()
        self.hash_projection: th.Tensor
        hashed_features = c.deter_size + self.world_model.encoder.embed_size
        self.register_buffer("hash_projection", hash_projection(hashed_features, c.stoch_size), persistent=False)
        self.slow_critic.load_state_dict(self.critic.state_dict())
        self.slow_critic.requires_grad_(False)
        self.make_optimizers(lr_schedule(1))

    def make_optimizers(self, model_lr: float) -> None:
        """(Re)create the world-model, actor and critic optimisers, without state (no Adam moments)."""
        c = self.config
        self.model_optimizer = self._adam(self.world_model, model_lr, c.adam_eps, c.weight_decay)
        self.actor_optimizer = self._adam(self.actor, c.actor_lr, c.adam_eps, c.weight_decay)
        self.critic_optimizer = self._adam(self.critic, c.critic_lr, c.adam_eps, c.weight_decay)

    @property
    def optimizers(self) -> tuple[th.optim.Optimizer, th.optim.Optimizer, th.optim.Optimizer]:
        """The world model's, the actor's and the critic's optimisers."""
        return self.model_optimizer, self.actor_optimizer, self.critic_optimizer

    @staticmethod
    def _adam(module: nn.Module, lr: float, eps: float, weight_decay: float) -> th.optim.AdamW:
        # AdamW decays by lr * wd per step; the reference decays by wd per step. lr = 0 (rl-zoo3's enjoy loads
        # models with learning_rate 0) means no update at all, decay included.
        decay = weight_decay / lr if lr > 0 else 0.0
        return th.optim.AdamW(module.parameters(), lr=lr, eps=eps, weight_decay=decay)

    def _check_spaces(self, observation_space: spaces.Space) -> None:
        """Hook for the aliases to reject observation spaces they are not meant for."""

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(self.config.to_dict())
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
        rssm = self.world_model.rssm
        how = self.config.eval_latent if deterministic else "sample"
        uniform = None  # "sample": fresh noise, as the reference evaluates (eval_state_mean: False)
        if how == "hashed":  # noise that is a function of the input: same input, same output
            uniform = hashed_uniform(th.cat([state.latent.deter, embed], -1), self.hash_projection)
        latent = rssm.obs_step(state.latent, state.action, embed, episode_start, sample=how != "mode", uniform=uniform)
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
