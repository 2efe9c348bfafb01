"""What the world model dreams: its predictions as uint8 video frames.

Three views of one model (the first is danijar/dreamerv2's ``video_pred``, logged as ``openl_image``):

- :func:`open_loop_prediction`: replay windows. The posterior sees the first ``context`` frames, then the
  prior alone predicts the rest from the recorded actions. Rows true / model / error, windows side by side.
- :func:`imagined_rollout`: an episode dreamt from one real observation, the actor choosing every action.
- :func:`real_vs_imagined`: the agent acts in a real env; the model predicts the same steps open-loop.

Open-loop timing (indices as in a replay window, see :mod:`sb3_dreamer.common.type_aliases`)::

    index:    0      1     ...  c-1      |  c        c+1     ...  T-1
    obs:      x_0    x_1        x_{c-1}  |  (not seen by the model)
    action:   0      a_0        a_{c-2}  |  a_{c-1}  a_c          a_{T-2}   (the action that led to frame t)
    latent:   posterior q(z_t | h_t, x_t)  |  prior p(z_t | h_t)

Frames are decoded image means (the decoder's Gaussian mode), clipped to [0, 1] and quantised to uint8;
``error = (model - true + 1) / 2``, so mid-grey is a perfect prediction. Everything runs without autograd,
with the policy in eval mode (its previous mode restored) and returns CPU tensors.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, NamedTuple

import gymnasium as gym
import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.preprocessing import is_image_space, is_image_space_channels_first
from stable_baselines3.common.vec_env import VecTransposeImage
from tqdm.auto import trange

from sb3_dreamer.common.rssm import RSSM
from sb3_dreamer.common.type_aliases import ObsDict, SequenceBatch

if TYPE_CHECKING:
    from sb3_dreamer.dreamer.dreamer import DreamerV2
    from sb3_dreamer.dreamer.policies import DreamerPolicy
    from sb3_dreamer.dreamer.world_model import WorldModel


class Dream(NamedTuple):
    """An episode imagined from one real observation (index 0: the posterior of that observation)."""

    frames: th.Tensor  # (H + 1, 64, 64, C) uint8 decoded images
    action: th.Tensor  # (H + 1, A) model actions (one-hot or in [-1, 1]); action[t] led to frame t, action[0] zeros
    reward: th.Tensor  # (H + 1,) predicted rewards, in the model's reward space (after ``reward_transform``)
    cont: th.Tensor  # (H + 1,) predicted probability that frame t is not terminal (ones without a discount head)


class Episode(NamedTuple):
    """Steps of a real environment as the model sees them: one sequence, time-major (T, 1, ...)."""

    obs: ObsDict  # key -> (T, 1, *shape), images channel first, uint8
    action: th.Tensor  # (T, 1, A) the model action that led to obs[t]; zeros at t = 0
    is_first: th.Tensor  # (T, 1) 1 at t = 0


def image_key(model: DreamerV2) -> str:
    """The observation key whose images are shown: ``obs`` for ``CnnPolicy``, the first image key of a Dict.

    :raise ValueError: for a model without image observations (``MlpPolicy``).
    """
    keys = model.policy.world_model.encoder.image_keys
    if not keys:
        raise ValueError(
            f"The model observes no images (observation space {model.observation_space}): its world model "
            "decodes vectors, so there are no frames to show. Videos of what the model dreams need a CnnPolicy "
            "or a MultiInputPolicy with an image key."
        )
    return keys[0]


@contextlib.contextmanager
def inference(policy: DreamerPolicy) -> Iterator[None]:
    """Within the block: no autograd and the policy in eval mode; its previous mode is restored after."""
    training = policy.training
    policy.set_training_mode(False)
    try:
        with th.no_grad():
            yield
    finally:
        policy.set_training_mode(training)


@contextlib.contextmanager
def isolated_rng(device: th.device, seed: int | None = None) -> Iterator[None]:
    """Torch's random draws inside the block leave the global generators (CPU, and CUDA for a CUDA ``device``)
    as they were before it; ``seed`` seeds them inside the block.
    """
    devices = list(range(th.cuda.device_count())) if device.type == "cuda" else []
    with th.random.fork_rng(devices=devices):
        if seed is not None:
            th.manual_seed(seed)
        yield


def to_uint8(images: th.Tensor) -> th.Tensor:
    """:param images: float in [0, 1] (values outside are clipped). :return: uint8 in [0, 255], same shape."""
    return (images.clamp(0, 1) * 255).round().to(th.uint8)


def as_rgb(frames: th.Tensor, channel_dim: int) -> th.Tensor:
    """Grayscale frames with their one channel repeated three times (GIF writers and TensorBoard's video
    encoder refuse one-channel images); other frames unchanged.

    :param frames: uint8 frames with ``C`` at ``channel_dim``.
    """
    return frames.repeat_interleave(3, channel_dim) if frames.shape[channel_dim] == 1 else frames


def decode_image(world_model: WorldModel, feat: th.Tensor, key: str) -> th.Tensor:
    """:param feat: (*lead, F). :return: (*lead, C, H, W) the decoded image mean in [0, 1] (clipped)."""
    return (world_model.decoder(feat)[key] + 0.5).clamp(0, 1)


def open_loop_feat(rssm: RSSM, embed: th.Tensor, action: th.Tensor, is_first: th.Tensor, context: int) -> th.Tensor:
    """Features of a sequence seen for ``context`` steps, then predicted by the prior alone.

    As the reference's ``video_pred``, the prior runs from the last posterior state with the recorded
    actions and ignores ``is_first`` after the context (the model cannot see a reset it is not shown).

    :param embed: (context, B, E) embeddings of the first ``context`` observations.
    :param action: (T, B, A) the action that led to each step. :param is_first: (T, B).
    :return: (T, B, F): posterior features for t < context, prior features after.
    """
    post = rssm.observe(embed, action[:context], is_first[:context]).post
    state = post.map(lambda x: x[-1])
    feats = [post.feat()]
    for t in range(context, action.shape[0]):
        state = rssm.img_step(state, action[t])
        feats.append(state.feat()[None])
    return th.cat(feats, 0)


def _check_context(context: int, length: int) -> None:
    if not 1 <= context <= length:
        raise ValueError(
            f"context must be in [1, {length}] (the sequence has {length} frames; the posterior needs at least "
            f"one), got {context}."
        )


def _open_loop_images(model: DreamerV2, obs: ObsDict, action: th.Tensor, is_first: th.Tensor, context: int) -> th.Tensor:
    """:param obs: key -> (T, B, *shape) raw observations. :return: (T, B, C, H, W) predictions in [0, 1]."""
    world_model = model.policy.world_model
    embed = world_model.embed({k: v[:context] for k, v in obs.items()})  # (context, B, E)
    feat = open_loop_feat(world_model.rssm, embed, action, is_first, context)
    return decode_image(world_model, feat, image_key(model))


def _true_model_error(truth: th.Tensor, prediction: th.Tensor) -> th.Tensor:
    """:param truth: (..., C, H, W) uint8. :param prediction: the same in [0, 1].
    :return: (3, ..., C, H, W) uint8: the truth unchanged, the prediction, the error.
    """
    prediction = prediction.to(truth.device)
    error = (prediction - truth.float() / 255 + 1) / 2
    return th.stack([truth, to_uint8(prediction), to_uint8(error)])


def open_loop_prediction(model: DreamerV2, batch: SequenceBatch, context: int = 5, n: int = 6) -> th.Tensor:
    """Open-loop video of the first ``n`` windows of a replay batch (danijar/dreamerv2's ``video_pred``).

    The posterior observes the first ``context`` frames; the prior alone, driven by the recorded actions,
    predicts the others. Neither the replay nor the policy's training mode is changed (torch's global
    random generator does advance: latents are sampled).

    :param model: a DreamerV2 with image observations (the first image key of a Dict is shown).
    :param batch: (T, B) windows from ``model.replay_buffer.sample``, B >= n.
    :param context: frames the posterior sees, in [1, T] (T: the model row is the posterior reconstruction).
    :param n: windows shown side by side.
    :return: (T, C, 3 * H, n * W) uint8 on the CPU; rows true / model / error. SB3's
        ``Video(frames[None], fps)`` takes it (after :func:`as_rgb` for grayscale).
    """
    key = image_key(model)
    length, batch_size = batch.is_first.shape
    _check_context(context, length)
    if not 1 <= n <= batch_size:
        raise ValueError(f"n must be in [1, {batch_size}] (the batch holds {batch_size} windows), got {n}.")
    obs = {k: v[:, :n] for k, v in batch.obs.items()}
    with inference(model.policy):
        prediction = _open_loop_images(model, obs, batch.action[:, :n], batch.is_first[:, :n], context)
    rows = _true_model_error(obs[key], prediction).cpu()  # (3, T, n, C, H, W)
    _, _, _, channels, height, width = rows.shape
    return rows.permute(1, 3, 0, 4, 2, 5).reshape(length, channels, 3 * height, n * width)


def imagined_rollout(
    model: DreamerV2, observation: np.ndarray | dict[str, np.ndarray], horizon: int = 100, seed: int | None = None
) -> Dream:
    """Dream an episode: the posterior of one real observation (the first of an episode), then ``horizon``
    prior steps with actions sampled from the actor, as in the actor-critic's imagination.

    :param observation: one raw observation, as the env returns it (e.g. from ``env.reset()``).
    :param horizon: imagined steps H >= 1.
    :param seed: seeds torch's draws (latents, actions) inside the call; torch's global generators are
        left as they were either way.
    """
    key = image_key(model)
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1 imagined step, got {horizon}.")
    policy, world_model = model.policy, model.policy.world_model
    obs_tensor, _ = policy.obs_to_tensor(observation)
    obs = policy.obs_dict(obs_tensor)
    if obs[key].shape[0] != 1:
        raise ValueError(f"imagined_rollout dreams from one observation, got a batch of {obs[key].shape[0]}.")
    with isolated_rng(model.device, seed), inference(policy):
        state = policy.initial_state(1)
        is_first = th.ones(1, device=model.device)
        start = world_model.rssm.obs_step(state.latent, state.action, world_model.embed(obs), is_first)
        dream = world_model.imagine(policy.actor, start, th.zeros_like(is_first), horizon, gamma=1.0)
        frames = to_uint8(decode_image(world_model, dream.feat[:, 0], key))  # (H + 1, C, H, W)
    return Dream(
        frames.permute(0, 2, 3, 1).cpu(), dream.action[:, 0].cpu(), dream.reward[:, 0].cpu(), dream.discount[:, 0].cpu()
    )


def model_observation_space(space: spaces.Space) -> spaces.Space:
    """``space`` as the model sees it: channel-last images made channel-first, as SB3's ``VecTransposeImage``."""
    if isinstance(space, spaces.Dict):
        return spaces.Dict({k: model_observation_space(s) for k, s in space.spaces.items()})
    if is_image_space(space) and not is_image_space_channels_first(space):  # type: ignore[arg-type]
        return VecTransposeImage.transpose_space(space)  # type: ignore[arg-type]
    return space


def _check_env(model: DreamerV2, env: gym.Env) -> None:
    observation_space = model_observation_space(env.observation_space)
    if observation_space != model.observation_space or env.action_space != model.action_space:
        raise ValueError(
            f"The env's spaces (observations {observation_space} after channel-first transpose, actions "
            f"{env.action_space}) differ from the model's ({model.observation_space}, {model.action_space}). "
            "Use the env the model was trained on, with the same wrappers."
        )


def run_episode(
    model: DreamerV2, env: gym.Env, steps: int, seed: int | None = None, deterministic: bool = True, progress_bar: bool = False
) -> Episode:
    """Let the agent act in ``env`` from a reset for ``steps`` steps, or until the episode ends.

    :param deterministic: the actor's mode (else a sample); the latent is sampled either way, as in ``predict``.
    :return: the T <= steps + 1 observations seen and the actions that led to them.
    """
    _check_env(model, env)
    policy = model.policy

    def as_model_obs(observation: np.ndarray | dict[str, np.ndarray]) -> ObsDict:
        return policy.obs_dict(policy.obs_to_tensor(observation)[0])

    raw, _ = env.reset(seed=seed)
    observations = [as_model_obs(raw)]
    state = policy.initial_state(1)
    actions = [state.action]
    with inference(policy):
        for t in trange(steps, desc="real env", disable=not progress_bar):
            is_first = th.full((1,), float(t == 0), device=model.device)
            action, state = policy.act(observations[-1], state, is_first, deterministic)
            raw, _, terminated, truncated, _ = env.step(policy.to_env_action(action)[0])
            observations.append(as_model_obs(raw))
            actions.append(action.clamp(-1, 1))
            if terminated or truncated:
                break
    obs = {key: th.stack([o[key] for o in observations]) for key in observations[0]}
    is_first = th.zeros(len(actions), 1, device=model.device)
    is_first[0] = 1
    return Episode(obs, th.stack(actions), is_first)


def real_vs_imagined(
    model: DreamerV2,
    env: gym.Env,
    steps: int = 200,
    context: int = 5,
    seed: int | None = None,
    deterministic: bool = True,
    progress_bar: bool = False,
) -> th.Tensor:
    """The agent acts in a real env (:func:`run_episode`); the model predicts the same steps open-loop: its
    posterior sees the first ``context`` frames, its prior alone follows the agent's actions after.

    :param env: a gymnasium env with the model's spaces (channel-last images are transposed as in training).
    :param steps: environment steps at most (fewer if the episode ends).
    :param context: frames the posterior sees (capped at the number of frames).
    :param seed: seeds the env's reset and torch's draws inside the call (global generators left unchanged).
    :param deterministic: / :param progress_bar: see :func:`run_episode`.
    :return: (T, H, 3 * W, C) uint8 on the CPU, T <= steps + 1; columns real / model / error.
    """
    key = image_key(model)
    if context < 1:
        raise ValueError(f"context must be >= 1 (the posterior needs at least one frame), got {context}.")
    with isolated_rng(model.device, seed):
        episode = run_episode(model, env, steps, seed, deterministic, progress_bar)
        length = episode.is_first.shape[0]
        with inference(model.policy):
            prediction = _open_loop_images(model, episode.obs, episode.action, episode.is_first, min(context, length))
    columns = _true_model_error(episode.obs[key][:, 0], prediction[:, 0]).cpu()  # (3, T, C, H, W)
    _, _, channels, height, width = columns.shape
    return columns.permute(1, 3, 0, 4, 2).reshape(length, height, 3 * width, channels)


__all__ = [
    "Dream",
    "Episode",
    "as_rgb",
    "decode_image",
    "image_key",
    "imagined_rollout",
    "inference",
    "isolated_rng",
    "model_observation_space",
    "open_loop_feat",
    "open_loop_prediction",
    "real_vs_imagined",
    "run_episode",
    "to_uint8",
]
