"""DreamerV2 as a Stable-Baselines3 off-policy algorithm: collect, train, predict."""

from typing import Any, ClassVar, TypeVar

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.logger import make_output_format
from stable_baselines3.common.noise import ActionNoise
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback, Schedule
from stable_baselines3.common.vec_env import VecEnv

from sb3_dreamer.common.buffers import SequenceReplayBuffer
from sb3_dreamer.common.type_aliases import RSSMState, SequenceBatch
from sb3_dreamer.dreamer.behavior import update_slow_critic
from sb3_dreamer.dreamer.config import DreamerConfig, check_hyperparameters
from sb3_dreamer.dreamer.execution import Execution, make_execution
from sb3_dreamer.dreamer.persistence import Persistence
from sb3_dreamer.dreamer.policies import (
    CnnPolicy,
    DreamerPolicy,
    MlpPolicy,
    MultiInputPolicy,
    PolicyState,
    action_dim,
    check_finite_observation,
    check_observation_space,
)
from sb3_dreamer.dreamer.presets import PRESETS
from sb3_dreamer.dreamer.update import Updater

SelfDreamerV2 = TypeVar("SelfDreamerV2", bound="DreamerV2")


def frames_per_step(env: VecEnv | None) -> int:
    """Environment frames per agent step: the ``action_repeat`` attribute of a wrapper (the Atari and DMC
    makers of :mod:`sb3_dreamer.envs` set it), else 1.
    """
    if env is None or not env.has_attr("action_repeat"):  # (get_attr of a missing name kills a SubprocVecEnv worker)
        return 1
    return int(env.get_attr("action_repeat", indices=[0])[0])


class DreamerV2(Persistence, OffPolicyAlgorithm):
    """DreamerV2 (Hafner et al. 2021, "Mastering Atari with Discrete World Models", arXiv 2010.02193).

    A world model with 32x32 discrete latents learns from replayed sequences; an actor and a critic learn
    purely from trajectories imagined by the world model. Defaults are the paper's Atari settings
    (danijar/dreamerv2 ``configs.yaml``, ``atari``); ``DreamerV2.from_preset`` gives the other configs.

    :param policy: ``CnnPolicy``, ``MlpPolicy``, ``MultiInputPolicy`` or a ``DreamerPolicy`` subclass.
    :param env: the environment (a Gymnasium env, a ``VecEnv`` with any number of envs, or an env id).
    :param learning_rate: world-model learning rate (a constant or SB3 schedule).
    :param buffer_size: replay capacity in environment steps.
    :param learning_starts: random-action steps before training (``prefill``).
    :param batch_size: number B of replay windows per update.
    :param train_freq: update every ``train_freq`` calls to ``env.step`` (``train_every``); each call adds
        ``n_envs`` steps.
    :param gradient_steps: updates each time (``train_steps``).
    :param replay_dir: keep the replay in memory-mapped files in this folder instead of RAM (bounded resident
        memory; ``save_replay_buffer`` then writes a pointer to the folder, not a copy).
    :param policy_kwargs: extra arguments of the policy class (fields of :class:`DreamerConfig` among them are
        taken into ``config``).
    :param hyperparameters: the fields of :class:`~sb3_dreamer.dreamer.config.DreamerConfig` (``gamma``,
        ``deter_size``, ``imagination_horizon``, ``actor_grad``, ``compile_model``, ...), by name; they are kept,
        validated, as ``model.config``.
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
        batch_size: int = 16,
        train_freq: int = 16,
        gradient_steps: int = 1,
        replay_dir: str | None = None,
        policy_kwargs: dict[str, Any] | None = None,
        stats_window_size: int = 100,
        tensorboard_log: str | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: th.device | str = "auto",
        _init_setup_model: bool = True,
        **hyperparameters: Any,
    ):
        sb3 = dict(learning_rate=learning_rate, buffer_size=buffer_size, learning_starts=learning_starts,
                   batch_size=batch_size, train_freq=train_freq, gradient_steps=gradient_steps)  # fmt: skip
        policy_kwargs = dict(policy_kwargs or {})
        in_config = {k: policy_kwargs.pop(k) for k in list(policy_kwargs) if k in DreamerConfig.names()}
        check_hyperparameters({**sb3, **hyperparameters, **in_config})  # every problem in one message
        config = DreamerConfig.from_kwargs({**hyperparameters, **in_config})
        super().__init__(
            policy,
            env,  # type: ignore[arg-type]
            learning_rate,
            buffer_size=buffer_size,
            learning_starts=learning_starts,
            batch_size=batch_size,
            gamma=config.gamma,
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
        self.config = config
        self.replay_dir = replay_dir
        self._skipped_steps = 0
        self._nonfinite_streak = 0
        self._pretrained = False
        self._policy_state: PolicyState | None = None
        self._episode_starts: np.ndarray | None = None
        self._frames_per_step = 1
        if _init_setup_model:
            self._setup_model()

    @property
    def config(self) -> DreamerConfig:
        """The hyperparameters, frozen: ``model.config = model.config.replace(expl_noise=0.1)`` changes them for the
        update and acting that follow (the sizes of the networks are those the model was built with)."""
        return self.__dict__["config"]

    @config.setter
    def config(self, value: DreamerConfig) -> None:
        self.__dict__["config"] = value
        for owner in ("policy", "_updater"):  # they read it too
            if owner in self.__dict__:
                self.__dict__[owner].config = value

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

    def _setup_model(self) -> None:
        self._adopt_saved_attributes()
        self._setup_lr_schedule()
        self.set_random_seed(self.seed)
        self.replay_buffer = SequenceReplayBuffer(
            self.buffer_size,
            self.observation_space,
            self.action_space,
            self.n_envs,
            self.device,
            prioritize_ends=self.config.prioritize_ends,
            seed=self.seed,
            storage_dir=self.replay_dir,
        )
        self.policy = self.policy_class(  # type: ignore[assignment]
            self.observation_space, self.action_space, self.lr_schedule, config=self.config, **self.policy_kwargs
        )
        self.policy = self.policy.to(self.device)
        self._execution: Execution = make_execution(self.config, self.device)
        self._execution.prepare(self.policy)
        self._execution.configure(self.config, self.device)
        self._updater = Updater(self.policy, self.config, self._execution)
        self._convert_train_freq()

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
            model_action, deter, stoch, logits = self._execution.act(self._act_step, inputs, self.config)
        self._policy_state = PolicyState(RSSMState(deter, stoch, logits), model_action)
        action = self.policy.to_env_action(model_action)
        buffer_action = action if self.policy.discrete else model_action.clamp(-1, 1).cpu().numpy()
        return action, buffer_action

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
        noise = self.config.expl_noise
        if noise == 0:
            return action
        if self.policy.discrete:
            random = th.nn.functional.one_hot(th.randint_like(action[:, 0], action.shape[-1]).long(), action.shape[-1])
            take = th.rand_like(action[:, :1]) < noise
            return th.where(take, random.to(action.dtype), action)
        return (action + noise * th.randn_like(action)).clamp(-1, 1)

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

    def train(self, gradient_steps: int, batch_size: int) -> None:
        """``gradient_steps`` updates (plus ``pretrain_steps`` the first time), metrics averaged into ``train/``."""
        config = self.config
        if not self.replay_buffer.can_sample(config.sequence_length):
            return
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.model_optimizer)
        self._set_obs_statistics()
        if not self._pretrained:
            gradient_steps += config.pretrain_steps
            self._pretrained = True
        totals: dict[str, th.Tensor] = {}
        skipped = []
        for _ in range(gradient_steps):
            metrics = self.train_step(self.replay_buffer.sample(batch_size, config.sequence_length))
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

    def train_step(self, batch: SequenceBatch) -> dict[str, th.Tensor]:
        """One update on ``batch`` (world model, then actor and critic), then the slow critic's.

        :return: detached metrics, ``skipped_steps`` among them (not yet added to the run's count).
        """
        metrics = self._updater(batch)
        update_slow_critic(self.policy.slow_critic, self.policy.critic, self._n_updates, self.config)
        self._n_updates += 1
        return metrics

    def _count_skipped(self, skipped: list[int]) -> None:
        """Count the updates' skipped steps; stop, with a checkpoint, after ``max_nonfinite_updates`` updates
        in a row that skipped a step.

        :param skipped: skipped optimiser steps of each update since the last call.
        """
        for n in skipped:
            self._skipped_steps += n
            self._nonfinite_streak = self._nonfinite_streak + 1 if n > 0 else 0
            if self._nonfinite_streak >= self.config.max_nonfinite_updates:
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


__all__ = ["DreamerV2", "frames_per_step"]
