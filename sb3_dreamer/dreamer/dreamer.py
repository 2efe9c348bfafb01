"""DreamerV2 as a Stable-Baselines3 off-policy algorithm."""

import contextlib
import inspect
import io
import json
import os
import pathlib
import warnings
import zipfile
import zlib
from collections.abc import Callable
from typing import Any, ClassVar, Literal, NamedTuple, TypeVar

import cloudpickle
import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.logger import make_output_format
from stable_baselines3.common.noise import ActionNoise
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.save_util import load_from_pkl
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback, Schedule
from stable_baselines3.common.vec_env import VecEnv
from torch import nn

from sb3_dreamer.common.buffers import SequenceReplayBuffer
from sb3_dreamer.common.checkpoint import capture_random_state, latest_checkpoint, restore_random_state
from sb3_dreamer.common.compile_passes import update_compile_options
from sb3_dreamer.common.cuda_graph import GraphedCall, GraphedUpdate, set_capturable, step_where_finite
from sb3_dreamer.common.host_memory import keep_freed_memory
from sb3_dreamer.common.safe_load import decode_space, encode_space, read_safe, write_spec
from sb3_dreamer.common.type_aliases import BehaviorLoss, RSSMState, SequenceBatch
from sb3_dreamer.dreamer.losses import ActorGrad, actor_loss, actor_objective, critic_loss, lambda_return
from sb3_dreamer.dreamer.policies import (
    CnnPolicy,
    DreamerPolicy,
    MlpPolicy,
    MultiInputPolicy,
    PolicyState,
    action_dim,
    check_finite_observation,
    check_observation_space,
    choose_step_kernel,
    frozen,
)
from sb3_dreamer.dreamer.presets import PRESETS


class UpdateFns(NamedTuple):
    """The whole functions an update calls (compiled with ``compile_model``)."""

    loss: Callable[..., Any]  # the world model's ``loss``
    imagine: Callable[..., Any]  # the world model's ``imagine``
    critic: Callable[..., Any]  # the critic's ``forward``
    slow_critic: Callable[..., Any]  # the slow critic's ``forward``


SelfDreamerV2 = TypeVar("SelfDreamerV2", bound="DreamerV2")
MixedPrecision = Literal["no", "bf16", "fp16"]


def _check_choice(name: str, value: Any, allowed: tuple[Any, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}.")


# name -> (lowest, highest, integer), bounds included: checked at construction.
_RANGES: dict[str, tuple[float, float, bool]] = {
    **dict.fromkeys(("buffer_size", "batch_size", "train_freq", "deter_size", "stoch_size", "stoch_classes",
                     "hidden_size", "cnn_depth", "mlp_layers", "mlp_units", "slow_target_update",
                     "max_nonfinite_updates"), (1, float("inf"), True)),
    **dict.fromkeys(("learning_starts", "pretrain_steps"), (0, float("inf"), True)),
    "gradient_steps": (-1, float("inf"), True),
    "imagination_starts": (1, float("inf"), True),
    **dict.fromkeys(("sequence_length", "imagination_horizon"), (2, float("inf"), True)),
    **dict.fromkeys(("return_lambda", "kl_balance", "actor_grad_mix"), (0.0, 1.0, False)),
    **dict.fromkeys(("kl_scale", "kl_free", "reward_scale", "discount_scale", "actor_lr", "critic_lr",
                     "weight_decay", "actor_entropy", "actor_min_std", "expl_noise"), (0.0, float("inf"), False)),
}  # fmt: skip
_OPEN_BELOW_ONE = ("gamma", "slow_target_fraction")  # in (0, 1]
_POSITIVE = ("adam_eps", "grad_clip")  # > 0


def check_hyperparameters(values: dict[str, Any]) -> None:
    """Refuse out-of-range hyperparameters, naming the parameter, the range and the value.

    :param values: hyperparameter name -> value (names not checked here are ignored).
    """
    problems = []
    for name, (low, high, integer) in _RANGES.items():
        value = values.get(name)
        if value is None:
            continue
        if integer and (isinstance(value, bool) or not isinstance(value, (int, np.integer))):
            problems.append(f"{name} must be an integer, got {value!r}")
        elif not low <= value <= high:
            bound = f">= {low}" if high == float("inf") else f"in [{low}, {high}]"
            problems.append(f"{name} must be {bound}, got {value!r}")
    problems += [
        f"{n} must be in (0, 1], got {values[n]!r}" for n in _OPEN_BELOW_ONE if n in values and not 0 < values[n] <= 1
    ]
    problems += [f"{n} must be > 0, got {values[n]!r}" for n in _POSITIVE if n in values and not values[n] > 0]
    lr = values.get("learning_rate")
    if isinstance(lr, (int, float)) and lr < 0:
        problems.append(f"learning_rate must be >= 0, got {lr!r}")
    if problems:
        raise ValueError("Invalid DreamerV2 hyperparameters: " + "; ".join(problems) + ".")


def _is_plain(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=True)
    except TypeError:
        return False
    return True


def _damaged(path: Any) -> str:
    return (
        f"{path} is not a complete DreamerV2 model zip (truncated or damaged: an interrupted download, copy or "
        "save?). Get the file again; DreamerV2.load_safe(path, sha256=...) checks a file against its published checksum."
    )


def frames_per_step(env: VecEnv | None) -> int:
    """Environment frames per agent step: the ``action_repeat`` attribute of a wrapper (the Atari and DMC
    makers of :mod:`sb3_dreamer.envs` set it), else 1.
    """
    if env is None or not env.has_attr("action_repeat"):  # (get_attr of a missing name kills a SubprocVecEnv worker)
        return 1
    return int(env.get_attr("action_repeat", indices=[0])[0])


def atomic_write(path: str | pathlib.Path | io.BufferedIOBase, suffix: str, write: Callable[[Any], None]) -> None:
    """``write`` to a temporary file in the target's folder, then rename it over the target (atomic on POSIX).
    The target gets ``.suffix`` when it has none, as SB3 does; file objects are written directly.
    """
    if isinstance(path, io.BufferedIOBase):
        write(path)
        return
    final = pathlib.Path(path)
    if final.suffix == "":
        final = final.with_suffix(f".{suffix}")
    temporary = final.with_name(f".{final.name}.partial")
    try:
        write(temporary)
        os.replace(temporary, final)
    finally:
        temporary.unlink(missing_ok=True)


class DreamerV2(OffPolicyAlgorithm):
    """DreamerV2 (Hafner et al. 2021, "Mastering Atari with Discrete World Models", arXiv 2010.02193).

    A world model with 32x32 discrete latents learns from replayed sequences; an actor and a critic learn
    purely from trajectories imagined by the world model. Defaults are the paper's Atari settings
    (danijar/dreamerv2 ``configs.yaml``, ``atari``); ``DreamerV2.from_preset`` gives the other configs.

    :param policy: ``CnnPolicy``, ``MlpPolicy``, ``MultiInputPolicy`` or a ``DreamerPolicy`` subclass.
    :param env: the environment (a Gymnasium env, a ``VecEnv`` with any number of envs, or an env id).
    :param learning_rate: world-model learning rate (a constant or SB3 schedule).
    :param buffer_size: replay capacity in environment steps.
    :param learning_starts: random-action steps before training (``prefill``).
    :param prioritize_ends: oversample episode ends in replay (``replay.prioritize_ends``).
    :param batch_size: number B of replay windows per update.
    :param sequence_length: length T of each window.
    :param train_freq: update every ``train_freq`` calls to ``env.step`` (``train_every``); each call adds
        ``n_envs`` steps.
    :param gradient_steps: updates each time (``train_steps``).
    :param pretrain_steps: extra updates done once, when training starts (``pretrain``).
    :param gamma: discount factor of imagined returns.
    :param return_lambda: lambda of the lambda-returns.
    :param imagination_horizon: imagined steps from each posterior state.
    :param imagination_starts: imagine only from the last ``imagination_starts`` posterior states of each
        replayed window (DreamerV3's ``imag_last``; the states with the most context), fewer starts and so a
        cheaper actor-critic update; None imagines from all ``sequence_length`` of them, as the paper does.
    :param deter_size: GRU state size. :param stoch_size: number of categorical latents.
    :param stoch_classes: classes per latent. :param hidden_size: width of the RSSM's other layers.
    :param cnn_depth: base depth of the image encoder/decoder.
    :param mlp_layers: / :param mlp_units: depth and width of every MLP.
    :param norm: ``none`` or ``layer`` (LayerNorm in the MLPs and RSSM, GroupNorm(1) in the CNNs).
    :param pred_discount: learn the discount (continue) head.
    :param normalize_obs: standardise vector observations per dimension with the mean and std of the replay
        when training starts (then fixed, saved with the model); the reconstruction loss then weighs every
        dimension by its spread, not its units. Not in the paper (off in every preset); the CartPole benchmark
        turns it on.
    :param reward_transform: ``tanh`` squashes rewards inside the world model (Atari); ``identity``; ``sign``.
    :param kl_scale: / :param kl_balance: / :param kl_free: / :param kl_free_avg: KL loss scale, balancing
        alpha, free nats and whether the free nats apply to the average.
    :param reward_scale: / :param discount_scale: loss scales of the reward and discount heads.
    :param actor_lr: / :param critic_lr: learning rates of the actor and critic.
    :param adam_eps: Adam's epsilon. :param weight_decay: decoupled weight decay per update.
    :param grad_clip: global gradient-norm clip of each optimiser.
    :param actor_grad: ``auto`` (``reinforce`` for Discrete, ``dynamics`` for Box), ``reinforce``,
        ``dynamics`` or ``both``. :param actor_grad_mix: weight of ``dynamics`` in ``both``.
    :param actor_entropy: entropy bonus scale. :param actor_min_std: minimum std of the continuous actor.
    :param slow_target_update: updates between copies of the critic into the slow critic.
    :param slow_target_fraction: interpolation of those copies (1 = hard copy).
    :param expl_noise: exploration while collecting: epsilon (Discrete) or Gaussian std (Box).
    :param mixed_precision: ``no``, ``bf16`` or ``fp16`` autocast for the update (``fp16`` with a loss scaler, meant for CUDA).
    :param compile_model: ``torch.compile`` the world model's loss and its imagination as whole functions
        (recurrent loops unrolled, fused kernels): the same maths and random numbers; the first update pays the
        compilation (minutes; cached on disk for later processes). 1.4x faster updates at the ``classic`` size
        on a CPU.
    :param cuda_graph: on a CUDA device, capture the whole update (world model, actor, critic, backward passes
        and optimiser steps) and the acting step in CUDA graphs after a few eager calls and replay them: the same
        maths without thousands of kernel launches from Python (~5x the updates/s on an H100). Needs
        ``mixed_precision`` ``no`` or ``bf16`` (fp16's loss scaler asks the host) and a fixed batch shape; a
        changed learning rate or hyperparameter captures again (use a constant learning rate). Ignored on a CPU.
    :param keep_host_memory: on a CPU under Linux (glibc), have malloc keep freed memory for reuse, for the whole
        process (:func:`~sb3_dreamer.common.host_memory.keep_freed_memory`): an update's large activations then
        reuse pages instead of page-faulting fresh ones (8-10 % of an ``atari`` update). The process keeps its peak
        memory until it exits; False leaves malloc as it is.
    :param max_nonfinite_updates: stop (with a checkpoint and a message) after this many updates in a row
        whose loss or gradients were not finite; such optimiser steps are always skipped.
    :param replay_dir: keep the replay in memory-mapped files in this folder instead of RAM (bounded resident
        memory; ``save_replay_buffer`` then writes a pointer to the folder, not a copy).
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "MlpPolicy": MlpPolicy,
        "CnnPolicy": CnnPolicy,
        "MultiInputPolicy": MultiInputPolicy,
    }
    policy: DreamerPolicy
    replay_buffer: SequenceReplayBuffer  # type: ignore[assignment]

    def __init__(
        self,
        policy: str | type[DreamerPolicy],
        env: GymEnv | str | None,
        learning_rate: float | Schedule = 2e-4,
        buffer_size: int = 2_000_000,
        learning_starts: int = 50_000,
        prioritize_ends: bool = True,
        batch_size: int = 16,
        sequence_length: int = 50,
        train_freq: int = 16,
        gradient_steps: int = 1,
        pretrain_steps: int = 1,
        gamma: float = 0.999,
        return_lambda: float = 0.95,
        imagination_horizon: int = 15,
        imagination_starts: int | None = None,
        deter_size: int = 600,
        stoch_size: int = 32,
        stoch_classes: int = 32,
        hidden_size: int = 600,
        cnn_depth: int = 48,
        mlp_layers: int = 4,
        mlp_units: int = 400,
        norm: Literal["none", "layer"] = "none",
        pred_discount: bool = True,
        normalize_obs: bool = False,
        reward_transform: Literal["identity", "tanh", "sign"] = "tanh",
        kl_scale: float = 0.1,
        kl_balance: float = 0.8,
        kl_free: float = 0.0,
        kl_free_avg: bool = True,
        reward_scale: float = 1.0,
        discount_scale: float = 5.0,
        actor_lr: float = 4e-5,
        critic_lr: float = 1e-4,
        adam_eps: float = 1e-5,
        weight_decay: float = 1e-6,
        grad_clip: float = 100.0,
        actor_grad: Literal["auto", "reinforce", "dynamics", "both"] = "auto",
        actor_grad_mix: float = 0.1,
        actor_entropy: float = 1e-3,
        actor_min_std: float = 0.1,
        slow_target_update: int = 100,
        slow_target_fraction: float = 1.0,
        expl_noise: float = 0.0,
        mixed_precision: MixedPrecision = "no",
        compile_model: bool = False,
        cuda_graph: bool = False,
        keep_host_memory: bool = True,
        max_nonfinite_updates: int = 100,
        replay_dir: str | None = None,
        policy_kwargs: dict[str, Any] | None = None,
        stats_window_size: int = 100,
        tensorboard_log: str | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: th.device | str = "auto",
        _init_setup_model: bool = True,
    ):
        check_hyperparameters(locals())
        super().__init__(
            policy,
            env,  # type: ignore[arg-type]
            learning_rate,
            buffer_size=buffer_size,
            learning_starts=learning_starts,
            batch_size=batch_size,
            gamma=gamma,
            train_freq=train_freq,
            gradient_steps=gradient_steps,
            policy_kwargs=policy_kwargs,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            verbose=verbose,
            device=device,
            support_multi_env=True,
            seed=seed,
            sde_support=False,
            supported_action_spaces=(spaces.Discrete, spaces.Box),
        )
        _check_choice("actor_grad", actor_grad, ("auto", "reinforce", "dynamics", "both"))
        _check_choice("reward_transform", reward_transform, ("identity", "tanh", "sign"))
        _check_choice("mixed_precision", mixed_precision, ("no", "bf16", "fp16"))
        _check_choice("norm", norm, ("none", "layer"))
        self.sequence_length = sequence_length
        self.prioritize_ends = prioritize_ends
        self.pretrain_steps = pretrain_steps
        self.return_lambda = return_lambda
        self.imagination_horizon = imagination_horizon
        self.imagination_starts = imagination_starts
        self.deter_size, self.stoch_size, self.stoch_classes = deter_size, stoch_size, stoch_classes
        self.hidden_size, self.cnn_depth, self.mlp_layers, self.mlp_units = hidden_size, cnn_depth, mlp_layers, mlp_units
        self.norm, self.pred_discount, self.reward_transform = norm, pred_discount, reward_transform
        self.normalize_obs = normalize_obs
        self.kl_scale, self.kl_balance, self.kl_free, self.kl_free_avg = kl_scale, kl_balance, kl_free, kl_free_avg
        self.reward_scale, self.discount_scale = reward_scale, discount_scale
        self.actor_lr, self.critic_lr, self.adam_eps, self.weight_decay = actor_lr, critic_lr, adam_eps, weight_decay
        self.grad_clip = grad_clip
        self.actor_grad, self.actor_grad_mix, self.actor_entropy = actor_grad, actor_grad_mix, actor_entropy
        self.actor_min_std = actor_min_std
        self.slow_target_update, self.slow_target_fraction = slow_target_update, slow_target_fraction
        self.expl_noise = expl_noise
        self.mixed_precision = mixed_precision
        self.compile_model = compile_model
        self.cuda_graph = cuda_graph
        self.keep_host_memory = keep_host_memory
        self.max_nonfinite_updates = max_nonfinite_updates
        self.replay_dir = replay_dir
        self._skipped_steps = 0
        self._nonfinite_streak = 0
        self._pretrained = False
        self._policy_state: PolicyState | None = None
        self._episode_starts: np.ndarray | None = None
        self._frames_per_step = 1
        if _init_setup_model:
            self._setup_model()

    @staticmethod
    def _wrap_env(env: GymEnv, verbose: int = 0, monitor_wrapper: bool = True) -> VecEnv:
        """SB3's wrapping between our checks of the spaces (clearer than SB3's assertions: they name the fix)."""
        check_observation_space(env.observation_space)
        vec_env = OffPolicyAlgorithm._wrap_env(env, verbose, monitor_wrapper)
        action_dim(vec_env.action_space)
        return vec_env

    @classmethod
    def from_preset(
        cls: type[SelfDreamerV2], preset: str, policy: str | type[DreamerPolicy], env: GymEnv | str | None, **kwargs: Any
    ) -> SelfDreamerV2:
        """Build the agent with a reference configuration, ``kwargs`` overriding it.

        :param preset: one of ``atari``, ``dmc_vision``, ``dmc_proprio``, ``crafter``, ``classic``, ``debug``.
        """
        if preset not in PRESETS:
            raise ValueError(f"Unknown preset {preset!r}; choose one of {sorted(PRESETS)}.")
        return cls(policy, env, **{**PRESETS[preset], **kwargs})

    # ----------------------------------------------------------------- setup

    def _policy_arguments(self) -> dict[str, Any]:
        return dict(
            deter_size=self.deter_size, stoch_size=self.stoch_size, stoch_classes=self.stoch_classes,
            hidden_size=self.hidden_size, cnn_depth=self.cnn_depth, mlp_layers=self.mlp_layers,
            mlp_units=self.mlp_units, norm=self.norm, pred_discount=self.pred_discount, normalize_obs=self.normalize_obs,
            actor_min_std=self.actor_min_std, actor_lr=self.actor_lr, critic_lr=self.critic_lr,
            adam_eps=self.adam_eps, weight_decay=self.weight_decay,
        )  # fmt: skip

    def _setup_model(self) -> None:
        if self.cuda_graph and self.mixed_precision == "fp16":
            raise ValueError(
                "cuda_graph=True needs mixed_precision 'no' or 'bf16', got 'fp16': its loss scaler checks the "
                "gradients on the host every step. Use mixed_precision='bf16'."
            )
        if self.keep_host_memory and self.device.type == "cpu":
            keep_freed_memory()
        self._setup_lr_schedule()
        self.set_random_seed(self.seed)
        self.replay_buffer = SequenceReplayBuffer(
            self.buffer_size,
            self.observation_space,
            self.action_space,
            self.n_envs,
            self.device,
            prioritize_ends=self.prioritize_ends,
            seed=self.seed,
            storage_dir=self.replay_dir,
        )
        self.policy = self.policy_class(  # type: ignore[assignment]
            self.observation_space, self.action_space, self.lr_schedule, **{**self._policy_arguments(), **self.policy_kwargs}
        )
        self.policy = self.policy.to(self.device)
        self._compiled: tuple[tuple[nn.Module, ...], UpdateFns] | None = None  # (the modules they compile, fns)
        self._convert_train_freq()
        # fp16's loss scale starts at 1, not PyTorch's 65536: the image loss sums over pixels, so the decoder's
        # gradients overflow fp16 at scales above ~16 (the default would skip the first ~13 updates).
        self._scaler = th.amp.GradScaler(self.device.type, init_scale=1.0, enabled=self.mixed_precision == "fp16")
        self._graphed_update: GraphedUpdate | None = None
        self._graphed_act: GraphedCall | None = None
        if self.cuda_graph and self.device.type != "cuda":
            warnings.warn(f"cuda_graph=True has no effect on device {self.device}: updates run eagerly.", stacklevel=2)

    def _excluded_save_params(self) -> list[str]:
        return [
            *super()._excluded_save_params(),
            "_policy_state",
            "_episode_starts",
            "_scaler",
            "_graphed_update",
            "_graphed_act",
            "_compiled",
        ]

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        optimizers = ["policy.model_optimizer", "policy.actor_optimizer", "policy.critic_optimizer"]
        return ["policy", *optimizers], []

    def _setup_learn(
        self,
        total_timesteps: int,
        callback: MaybeCallback = None,
        reset_num_timesteps: bool = True,
        tb_log_name: str = "run",
        progress_bar: bool = False,
    ) -> tuple[int, Any]:
        env_reset = reset_num_timesteps or self._last_obs is None
        result = super()._setup_learn(total_timesteps, callback, reset_num_timesteps, tb_log_name, progress_bar)
        if env_reset or self._policy_state is None:
            self._policy_state = self.policy.initial_state(self.n_envs)
            self._episode_starts = np.ones(self.n_envs, dtype=bool)
            self.replay_buffer.start_episodes()
        if self.tensorboard_log is not None and not self._custom_logger:
            # Metrics also as JSON lines (progress.json), readable with pandas.read_json(..., lines=True).
            self._logger.output_formats.append(make_output_format("json", self._logger.get_dir() or "."))
        self._frames_per_step = frames_per_step(self.env)
        return result

    def dump_logs(self) -> None:
        """SB3's ``time/...`` keys plus ``time/frames`` (agent steps x action repeat), the paper's x-axis."""
        self.logger.record("time/frames", self.num_timesteps * self._frames_per_step)
        self.logger.record("replay/steps", self.replay_buffer.size())
        self.logger.record("replay/mib", round(self.replay_buffer.nbytes() / 2**20, 1))
        super().dump_logs()

    def save(self, path: str | pathlib.Path | io.BufferedIOBase, exclude: Any = None, include: Any = None) -> None:
        """SB3's ``save``, written beside the target and renamed into place: a crash mid-write leaves the
        previous file intact (``CheckpointCallback`` and rl-zoo3 save through this). Files (not streams) also
        get ``sb3_dreamer.json``, the plain-data description :meth:`load_safe` reads.
        """

        def write(target: Any) -> None:
            super(DreamerV2, self).save(target, exclude, include)
            if not isinstance(target, io.BufferedIOBase):
                write_spec(target, self.plain_spec())

        atomic_write(path, "zip", write)

    def plain_spec(self) -> dict[str, Any]:
        """The policy alias, the hyperparameters, spaces and counters as JSON-able data (see :meth:`load_safe`)."""
        named = {"train_freq": self.train_freq.frequency, "stats_window_size": self._stats_window_size}  # type: ignore[union-attr]
        hyperparameters = {}
        for name in _SPEC_HYPERPARAMETERS:
            value = named[name] if name in named else getattr(self, name)
            hyperparameters[name] = value.item() if isinstance(value, np.generic) else value
        if callable(self.learning_rate):  # a schedule is code: keep its value at the start
            hyperparameters["learning_rate"] = float(self.learning_rate(1.0))
        policy_name = {cls: name for name, cls in self.policy_aliases.items()}.get(self.policy_class)
        policy_kwargs = self.policy_kwargs if _is_plain(self.policy_kwargs) else None
        return dict(
            algo="DreamerV2", policy=policy_name, hyperparameters=hyperparameters, policy_kwargs=policy_kwargs,
            observation_space=encode_space(self.observation_space), action_space=encode_space(self.action_space),
            num_timesteps=self.num_timesteps, n_updates=self._n_updates,
        )  # fmt: skip

    @classmethod
    def load_safe(
        cls: type[SelfDreamerV2],
        path: str | pathlib.Path,
        env: GymEnv | None = None,
        device: th.device | str = "auto",
        sha256: str | None = None,
    ) -> SelfDreamerV2:
        """Load a saved agent without unpickling anything (``load`` unpickles SB3's ``data``; see
        :mod:`sb3_dreamer.common.safe_load`): the networks, hyperparameters, spaces and counters, ready for
        ``predict``, ``evaluate_policy`` or more training (optimiser states and the replay are not restored).

        :param sha256: the file's expected SHA-256 (hex); a different file is refused.
        """
        spec, state_dict = read_safe(path, sha256)
        if spec["policy"] not in cls.policy_aliases or (spec["policy_kwargs"] is None):
            raise ValueError(
                f"{path} uses a custom policy class or non-plain policy_kwargs, which cannot be rebuilt from plain "
                "data; use DreamerV2.load only if you trust its source."
            )
        unknown = set(spec["hyperparameters"]) - set(_SPEC_HYPERPARAMETERS)
        if unknown:  # the file is untrusted: only the hyperparameters we write are taken (no paths, no logging)
            raise ValueError(f"{path}: unexpected entries {sorted(unknown)} in its sb3_dreamer.json; refusing it.")
        model = cls(
            spec["policy"], None, device=device, policy_kwargs=spec["policy_kwargs"], _init_setup_model=False,
            **spec["hyperparameters"],
        )  # fmt: skip
        model.observation_space = decode_space(spec["observation_space"])
        model.action_space = decode_space(spec["action_space"])
        vec_env = None if env is None else cls._wrap_env(env)
        model.n_envs = 1 if vec_env is None else vec_env.num_envs
        model._setup_model()
        model.policy.load_state_dict({k: v.to(model.device) for k, v in state_dict.items()})
        model.num_timesteps, model._n_updates = spec["num_timesteps"], spec["n_updates"]
        if vec_env is not None:
            model.set_env(vec_env)
        return model

    @classmethod
    def load(  # type: ignore[override]
        cls: type[SelfDreamerV2],
        path: str | pathlib.Path | io.BufferedIOBase,
        env: GymEnv | None = None,
        device: th.device | str = "auto",
        custom_objects: dict[str, Any] | None = None,
        print_system_info: bool = False,
        force_reset: bool = True,
        **kwargs: Any,
    ) -> SelfDreamerV2:
        """SB3's ``load``, with errors that say what is wrong and what to do.

        It unpickles the file's ``data``: load only files you trust, or use :meth:`load_safe`.
        """
        try:
            return super().load(path, env, device, custom_objects, print_system_info, force_reset, **kwargs)
        except (zipfile.BadZipFile, zlib.error, EOFError) as error:
            raise ValueError(_damaged(path)) from error
        except ValueError as error:
            if "wasn't a zip-file" in str(error):
                raise ValueError(_damaged(path)) from error
            if "spaces do not match" in str(error):
                raise ValueError(
                    f"{error}. The model was trained with other spaces: pass an env with the same observation and "
                    "action spaces (the env it was trained on, same wrappers), or load it without env to predict."
                ) from error
            raise

    def save_replay_buffer(self, path: str | pathlib.Path | io.BufferedIOBase) -> None:
        """SB3's ``save_replay_buffer`` (a pickle), written atomically like :meth:`save`."""
        atomic_write(path, "pkl", lambda target: super(DreamerV2, self).save_replay_buffer(target))

    def load_replay_buffer(self, path: str | pathlib.Path | io.BufferedIOBase, truncate_last_traj: bool = True) -> None:
        """Load a replay buffer written by ``save_replay_buffer`` (replacing the current one, never appending).

        To resume a run: ``model = DreamerV2.load(path, env=env)``, ``model.load_replay_buffer(buffer_path)``,
        then ``model.learn(steps, reset_num_timesteps=False)``; each stream continues with a new episode.

        :param truncate_last_traj: each env stream starts a new episode (the envs were reset); ``False`` only
            when the envs continue exactly where the buffer stopped (:meth:`resume` with pickled envs).
        """
        buffer = load_from_pkl(path, self.verbose)
        if not isinstance(buffer, SequenceReplayBuffer):
            raise TypeError(
                f"Expected a SequenceReplayBuffer saved by DreamerV2.save_replay_buffer, got {type(buffer).__name__}"
            )
        if buffer.n_envs != self.n_envs:
            raise ValueError(
                f"The replay buffer has {buffer.n_envs} env streams but the model has {self.n_envs} envs; "
                "resume with the same number of envs (make_vec_env(..., n_envs=buffer.n_envs))."
            )
        buffer.device = self.device
        if truncate_last_traj:
            buffer.start_episodes()
        self.replay_buffer = buffer  # type: ignore[assignment]

    # ------------------------------------------------------------ exact resume

    def resume_state(self) -> dict[str, Any]:
        """What a checkpoint needs beyond ``save`` and the replay buffer to continue exactly: random states,
        the acting latent and episode starts, the grad scaler. Tensors and plain data only.
        """
        state: dict[str, Any] = {"random": capture_random_state(self), "scaler": self._scaler.state_dict()}
        if self._policy_state is not None and self._episode_starts is not None:
            state["policy_state"] = {**self._policy_state.latent._asdict(), "action": self._policy_state.action}
            state["episode_starts"] = th.as_tensor(self._episode_starts)
        return state

    def restore_resume_state(self, state: dict[str, Any], continue_episodes: bool) -> None:
        """Inverse of :meth:`resume_state`; ``continue_episodes`` when the envs were restored mid-episode."""
        restore_random_state(self, state["random"])
        self._scaler.load_state_dict(state["scaler"])
        if continue_episodes and "policy_state" in state:
            saved = {k: v.to(self.device) for k, v in state["policy_state"].items()}
            action = saved.pop("action")
            self._policy_state = PolicyState(RSSMState(**saved), action)
            self._episode_starts = state["episode_starts"].numpy()

    @classmethod
    def resume(
        cls: type[SelfDreamerV2], path: str | pathlib.Path, env: GymEnv | None = None, device: th.device | str = "auto"
    ) -> SelfDreamerV2:
        """Continue a run from the newest complete checkpoint in ``path`` (written by
        :class:`~sb3_dreamer.ResumableCheckpointCallback`): networks, optimisers, slow critic, counters,
        replay, random states, and the envs mid-episode when they could be pickled. Then call
        ``learn(remaining, reset_num_timesteps=False)``: the counters, TensorBoard curves and frames continue.

        :param path: a checkpoint folder or the callback's ``save_path``.
        :param env: the env to continue in; by default the checkpoint's pickled envs, else required. A given
            env starts new episodes (the run is then no longer step-for-step the uninterrupted one).
        """
        checkpoint = latest_checkpoint(path)
        envs_file = checkpoint.file("envs.pkl")
        continue_episodes = env is None and envs_file is not None
        if continue_episodes:
            env = cloudpickle.loads(envs_file.read_bytes())  # type: ignore[union-attr]
        if env is None:
            raise ValueError(
                f"The checkpoint {checkpoint.path} holds no pickled envs (they could not be pickled, e.g. "
                "SubprocVecEnv); pass the env to continue in: DreamerV2.resume(path, env=make_vec_env(...))."
            )
        model = cls.load(checkpoint.path / "model.zip", env=env, device=device, force_reset=not continue_episodes)
        model.load_replay_buffer(checkpoint.path / "replay.pkl", truncate_last_traj=not continue_episodes)
        model.restore_resume_state(th.load(checkpoint.path / "state.pt", weights_only=True), continue_episodes)
        return model

    # -------------------------------------------------------------- collecting

    def _sample_action(
        self, learning_starts: int, action_noise: ActionNoise | None = None, n_envs: int = 1
    ) -> tuple[np.ndarray, np.ndarray]:
        """Random actions during the prefill, then the actor with the latent carried per environment."""
        if self.num_timesteps < learning_starts:
            action = np.array([self.action_space.sample() for _ in range(n_envs)])
            buffer_action = self.policy.scale_action(action) if isinstance(self.action_space, spaces.Box) else action
            return action, buffer_action
        assert self._policy_state is not None and self._episode_starts is not None
        obs_tensor, _ = self.policy.obs_to_tensor(self._last_obs)  # type: ignore[arg-type]
        obs = self.policy.obs_dict(obs_tensor)
        starts = th.as_tensor(self._episode_starts, dtype=th.float32, device=self.device)
        latent, prev_action = self._policy_state
        inputs = (*(obs[k] for k in sorted(obs)), latent.deter, latent.stoch, latent.logits, prev_action, starts)
        with th.no_grad():
            if self._uses_graph():
                if self._graphed_act is None:
                    self._graphed_act = GraphedCall(self._act_step, warmup=2, key=self._act_graph_key)
                outputs = self._graphed_act(*inputs)
            else:
                outputs = self._act_step(*inputs)
        model_action, deter, stoch, logits = outputs
        assert isinstance(model_action, th.Tensor)
        self._policy_state = PolicyState(RSSMState(deter, stoch, logits), model_action)  # type: ignore[arg-type]
        action = self.policy.to_env_action(model_action)
        buffer_action = action if self.policy.discrete else model_action.clamp(-1, 1).cpu().numpy()
        return action, buffer_action

    def _act_graph_key(self) -> tuple:
        """What the acting graph bakes in: the policy, the exploration noise, the update graph's captures (a
        recapture there means parameters moved)."""
        captures = self._graphed_update.captures if self._graphed_update is not None else 0
        return id(self.policy), self.expl_noise, captures

    def _act_step(self, *tensors: th.Tensor) -> tuple[th.Tensor, ...]:
        """One acting step on flat tensors (what the acting CUDA graph captures).

        :param tensors: the observation tensors (keys sorted), then deter, stoch, logits and action of the
            carried state, and (B,) episode starts.
        :return: (B, A) the explored model action, and the new latent's deter, stoch, logits.
        """
        *obs_values, deter, stoch, logits, action, starts = tensors
        obs = dict(zip(sorted(self.policy.shapes), obs_values))
        new_action, state = self.policy.act(obs, PolicyState(RSSMState(deter, stoch, logits), action), starts)
        latent = state.latent
        return self._explore(new_action), latent.deter, latent.stoch, latent.logits

    def _explore(self, action: th.Tensor) -> th.Tensor:
        """Epsilon-uniform (Discrete) or Gaussian (Box) exploration noise, ``expl_noise`` of the reference."""
        if self.expl_noise == 0:
            return action
        if self.policy.discrete:
            random = th.nn.functional.one_hot(th.randint_like(action[:, 0], action.shape[-1]).long(), action.shape[-1])
            take = th.rand_like(action[:, :1]) < self.expl_noise
            return th.where(take, random.to(action.dtype), action)
        return (action + self.expl_noise * th.randn_like(action)).clamp(-1, 1)

    def _store_transition(
        self,
        replay_buffer: ReplayBuffer,
        buffer_action: np.ndarray,
        new_obs: np.ndarray | dict[str, np.ndarray],
        reward: np.ndarray,
        dones: np.ndarray,
        infos: list[dict[str, Any]],
    ) -> None:
        """Store the step (observations once, terminal observations kept) and remember episode starts."""
        check_finite_observation(new_obs)
        for info in infos:
            if info.get("terminal_observation") is not None:  # stored too, in place of the reset observation
                check_finite_observation(info["terminal_observation"])
        self.replay_buffer.add(self._last_obs, new_obs, buffer_action, reward, dones, infos)  # type: ignore[arg-type]
        self._last_obs = new_obs  # type: ignore[assignment]
        self._episode_starts = dones

    # ---------------------------------------------------------------- training

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.mixed_precision == "no":
            return contextlib.nullcontext()
        dtype = th.bfloat16 if self.mixed_precision == "bf16" else th.float16
        # A captured graph must not keep autocast's cache of cast weights (PyTorch's CUDA-graph notes).
        return th.autocast(self.device.type, dtype=dtype, cache_enabled=not self._uses_graph())

    def _optimize(
        self, optimizer: th.optim.Optimizer, loss: th.Tensor, module: nn.Module, sync_free: bool = False
    ) -> tuple[th.Tensor, th.Tensor]:
        """Backward, clip the global gradient norm, step, unless the loss or a gradient is not finite: then
        the step is skipped and counted (``train/skipped_steps``). fp16's scaler makes the same check itself,
        and lowers its scale instead of counting.

        :param sync_free: never ask the host (for CUDA graphs): always step, then put the parameters and the
            optimiser state back where the norm is not finite. Otherwise one host sync decides.
        :return: the norm before clipping, and 1.0 if the step was skipped else 0.0 (scalar tensors).
        """
        optimizer.zero_grad(set_to_none=True)
        self._scaler.scale(loss).backward()
        self._scaler.unscale_(optimizer)
        norm = th.nn.utils.clip_grad_norm_(module.parameters(), self.grad_clip)
        finite = th.isfinite(norm)
        skipped = (~finite).float()
        if self._scaler.is_enabled():
            self._scaler.step(optimizer)
            skipped = th.zeros_like(skipped)
        elif sync_free:
            step_where_finite(optimizer, finite)
        elif bool(finite):
            optimizer.step()
        return norm, skipped

    def _resolved_actor_grad(self) -> ActorGrad:
        if self.actor_grad == "auto":
            return "reinforce" if self.policy.discrete else "dynamics"
        return self.actor_grad  # type: ignore[return-value]

    def behavior_loss(self, post: RSSMState, is_terminal: th.Tensor) -> BehaviorLoss:
        """Actor and critic losses on trajectories imagined from the posterior states of the batch (the last
        ``imagination_starts`` of each window, or all of them).

        In ``reinforce`` mode nothing needs a gradient through the imagination, so it runs without autograd;
        otherwise gradients flow through the frozen world model into the actions.

        :param post: (T, B, ...) posterior states of the replay batch. :param is_terminal: (T, B).
        """
        policy, world_model = self.policy, self.policy.world_model
        first = -self.imagination_starts if self.imagination_starts else 0  # the window's last states
        start = post.map(lambda x: x[first:].detach().flatten(0, 1))  # (N, ...)
        actor_grad = self._resolved_actor_grad()
        grad_mode = th.no_grad() if actor_grad == "reinforce" else frozen(world_model)
        with grad_mode, self._autocast():
            fns = self._update_fns()
            horizon = self.imagination_horizon
            traj = fns.imagine(policy.actor, start, is_terminal[first:].flatten(), horizon, self.gamma, last_heads=False)
            value = fns.slow_critic(traj.feat, traj.onehot).squeeze(-1).float()  # (H + 1, N)
            target = lambda_return(traj.reward, value[:-1], traj.discount, value[-1], self.return_lambda)  # (H, N)
        with self._autocast():
            # Actions:   0   [a1]  [a2]   a3      the action at index t + 1 is taken in state t
            # States:   [z0]->[z1]->[z2]-> z3
            # Targets:  t0   [t1]  [t2]           objective of a_{t+1}: target[t + 1] vs baseline value[t]
            dist = policy.actor.dist(traj.actor_out[:-1])  # states 0..H-2, computed while imagining
            log_prob = dist.log_prob(traj.action[1:-1].detach())
            objective = actor_objective(log_prob, target[1:], value[:-2], actor_grad, self.actor_grad_mix)
            entropy = dist.entropy()
            a_loss = actor_loss(objective, entropy, traj.weight[:-2], self.actor_entropy)
            critic_value = fns.critic(traj.feat[:-1].detach(), traj.onehot.at(slice(None, -1))).squeeze(-1).float()
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

    def _update_fns(self) -> UpdateFns:
        """The world model's ``loss`` and ``imagine``, the critic's and the slow critic's ``forward``; with
        ``compile_model``, compiled as whole functions (their recurrent loops unrolled and fused, with
        ``update_compile_options``). Compiling the two critics too (their bias and ELU passes fused): 65 ms less
        per ``atari`` update on a 2-core CPU (in-process A/B, 14 updates each).
        """
        policy = self.policy
        world_model, critic, slow_critic = modules = (policy.world_model, policy.critic, policy.slow_critic)
        fns = UpdateFns(world_model.loss, world_model.imagine, critic.forward, slow_critic.forward)
        if not self.compile_model:
            return fns
        if self._compiled is None or any(a is not b for a, b in zip(self._compiled[0], modules)):
            options = update_compile_options(self.device)
            self._compiled = (modules, UpdateFns(*(th.compile(fn, options=options) for fn in fns)))
        return self._compiled[1]

    def _graph_key(self) -> tuple:
        """The hyperparameters the update reads as Python numbers (a captured graph bakes them in)."""
        return (
            self.kl_scale, self.kl_balance, self.kl_free, self.kl_free_avg, self.reward_scale, self.discount_scale,
            self.reward_transform, self.gamma, self.return_lambda, self.imagination_horizon, self.imagination_starts,
            self.actor_grad, self.actor_grad_mix, self.actor_entropy, self.grad_clip, self.mixed_precision,
        )  # fmt: skip

    def _uses_graph(self) -> bool:
        return self.cuda_graph and self.device.type == "cuda"

    def update(self, batch: SequenceBatch, sync_free: bool = False) -> dict[str, th.Tensor]:
        """The tensor work of one update: world model, then actor and critic, with their optimiser steps.

        :param sync_free: no host synchronisation (what a CUDA graph captures); the same maths.
        :return: detached metrics, ``skipped_steps`` (0-3) among them.
        """
        policy = self.policy
        with self._autocast():
            model = self._update_fns().loss(
                batch, self.kl_scale, self.kl_balance, self.kl_free, self.kl_free_avg,
                self.reward_scale, self.discount_scale, self.reward_transform,
            )  # fmt: skip
        model_norm, model_skip = self._optimize(policy.model_optimizer, model.loss, policy.world_model, sync_free)
        behavior = self.behavior_loss(model.post, batch.is_terminal)
        actor_norm, actor_skip = self._optimize(policy.actor_optimizer, behavior.actor_loss, policy.actor, sync_free)
        critic_norm, critic_skip = self._optimize(policy.critic_optimizer, behavior.critic_loss, policy.critic, sync_free)
        metrics = {k: v.detach() for k, v in model.metrics.items()}
        metrics.update(behavior.metrics, model_grad_norm=model_norm, actor_grad_norm=actor_norm, critic_grad_norm=critic_norm)
        metrics["skipped_steps"] = model_skip + actor_skip + critic_skip
        return metrics

    def train_step(self, batch: SequenceBatch) -> dict[str, th.Tensor]:
        """One update (replayed from a CUDA graph with ``cuda_graph``), then the slow critic's.

        :return: detached metrics, ``skipped_steps`` among them (not yet added to the run's count).
        """
        optimizers = [self.policy.model_optimizer, self.policy.actor_optimizer, self.policy.critic_optimizer]
        for optimizer in optimizers:
            choose_step_kernel(optimizer)
        if self._uses_graph():
            if self._graphed_update is None or self._graphed_update.optimizers != optimizers:
                self._graphed_update = GraphedUpdate(lambda b: self.update(b, sync_free=True), optimizers, self._graph_key)
            metrics = self._graphed_update(batch)
        else:
            for optimizer in optimizers:
                set_capturable(optimizer, False)  # a model trained with graphs, loaded for eager training
            metrics = self.update(batch)
        self._scaler.update()
        self._update_slow_critic()
        return metrics

    def _update_slow_critic(self) -> None:
        if self._n_updates % self.slow_target_update == 0:
            mix = 1.0 if self._n_updates == 0 else self.slow_target_fraction
            with th.no_grad():
                for slow, fast in zip(self.policy.slow_critic.parameters(), self.policy.critic.parameters()):
                    slow.lerp_(fast, mix)
        self._n_updates += 1

    def _count_skipped(self, skipped: list[int]) -> None:
        """Count the updates' skipped steps; stop, with a checkpoint, after ``max_nonfinite_updates`` updates
        in a row that skipped a step.

        :param skipped: skipped optimiser steps of each update since the last call.
        """
        for n in skipped:
            self._skipped_steps += n
            self._nonfinite_streak = self._nonfinite_streak + 1 if n > 0 else 0
            if self._nonfinite_streak >= self.max_nonfinite_updates:
                break
        else:
            return
        path = f"{self.logger.get_dir() or '.'}/dreamerv2_nonfinite_stop.zip"
        self.save(path)
        raise RuntimeError(
            f"DreamerV2 stopped: {self._nonfinite_streak} updates in a row had a non-finite loss or gradient "
            f"(their steps were skipped, the weights are the last finite ones, saved to {path}). Check the "
            "observations and rewards for NaN/inf, or lower the learning rates; with mixed_precision='fp16' "
            "try 'bf16' or 'no'. max_nonfinite_updates sets the patience."
        )

    def _set_obs_statistics(self) -> None:
        """With ``normalize_obs``: before the first update, fix the vector statistics from the replay (a loaded
        model, or parameters set from one, keeps the statistics it was trained with)."""
        obs_norm = self.policy.world_model.obs_norm
        if obs_norm is not None and not bool(obs_norm.is_set):
            stored = self.replay_buffer.stored_observations(list(obs_norm.sizes))
            obs_norm.set_statistics({k: th.as_tensor(v, device=self.device) for k, v in stored.items()})

    def train(self, gradient_steps: int, batch_size: int) -> None:
        """``gradient_steps`` updates (plus ``pretrain_steps`` the first time), metrics averaged into ``train/``."""
        if not self.replay_buffer.can_sample(self.sequence_length):
            return
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.model_optimizer)
        self._set_obs_statistics()
        if not self._pretrained:
            gradient_steps += self.pretrain_steps
            self._pretrained = True
        totals: dict[str, th.Tensor] = {}
        skipped = []
        for _ in range(gradient_steps):
            batch = self.replay_buffer.sample(batch_size, self.sequence_length)
            metrics = self.train_step(batch)
            skipped.append(metrics.pop("skipped_steps"))
            for key, value in metrics.items():
                totals[key] = totals.get(key, 0.0) + value.float()
        host = th.stack([*totals.values(), *skipped]).cpu().numpy()  # one device sync per call
        values = host[: len(totals)] / gradient_steps
        for key, value in zip(totals, values):
            self.logger.record(f"train/{key}", float(value))
        skipped_host = [int(round(n)) for n in host[len(totals) :]]
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/skipped_steps", sum(skipped_host))
        self._count_skipped(skipped_host)

    def learn(
        self: SelfDreamerV2,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 4,
        tb_log_name: str = "DreamerV2",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> SelfDreamerV2:
        return super().learn(
            total_timesteps=total_timesteps,
            callback=callback,
            log_interval=log_interval,
            tb_log_name=tb_log_name,
            reset_num_timesteps=reset_num_timesteps,
            progress_bar=progress_bar,
        )


# The constructor arguments a saved spec carries (and load_safe accepts): no env, paths, logging or device.
_SPEC_HYPERPARAMETERS: tuple[str, ...] = tuple(
    name
    for name in inspect.signature(DreamerV2.__init__).parameters
    if name not in {"self", "policy", "env", "policy_kwargs", "tensorboard_log", "verbose", "device", "_init_setup_model",
                    "replay_dir"}
)  # fmt: skip

__all__ = ["DreamerV2"]
