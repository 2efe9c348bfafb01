"""Saving and loading DreamerV2: SB3's ``save``/``load`` made atomic and explicit about damaged files, the
pickle-free :meth:`~Persistence.load_safe`, the replay buffer, and exact resume from checkpoints."""

import io
import json
import os
import pathlib
import re
import zipfile
import zlib
from collections.abc import Callable
from typing import Any, TypeVar

import cloudpickle
import numpy as np
import torch as th
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.save_util import load_from_pkl
from stable_baselines3.common.type_aliases import GymEnv

from sb3_dreamer.common.buffers import SequenceReplayBuffer
from sb3_dreamer.common.type_aliases import RSSMState
from sb3_dreamer.dreamer.checkpoint import capture_random_state, latest_checkpoint, restore_random_state
from sb3_dreamer.dreamer.config import DreamerConfig
from sb3_dreamer.dreamer.policies import PolicyState
from sb3_dreamer.dreamer.safe_load import decode_space, encode_space, read_safe, write_spec

SelfPersistence = TypeVar("SelfPersistence", bound="Persistence")

# SB3's constructor arguments that a saved spec carries besides the DreamerConfig (no env, paths, logging or device).
SB3_SPEC_ARGUMENTS = ("learning_rate", "buffer_size", "learning_starts", "batch_size", "train_freq", "gradient_steps",
                      "stats_window_size", "seed")  # fmt: skip
SPEC_HYPERPARAMETERS = SB3_SPEC_ARGUMENTS + DreamerConfig.names()


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


def upgrade_state_dict(state: dict[str, th.Tensor], expected: dict[str, th.Tensor]) -> dict[str, th.Tensor]:
    """A policy ``state_dict`` saved by sb3_dreamer 0.3, in today's layout: its image encoder's CNN had a layout
    module at index 0 and its decoder's at index 2, so their later layers' indices are one lower now; its linear
    layers before a LayerNorm (the GRU's, and the MLPs' with ``norm="layer"``) had no bias, which is zero here.

    :param expected: the ``state_dict`` of the policy it is loaded into.
    :return: ``state`` itself when it is in today's layout.
    """
    state = _shift_cnn_indices(state)
    missing = [k for k in expected if k not in state and k.endswith(".bias") and k[: -len("bias")] + "weight" in state]
    return {**state, **{k: th.zeros_like(expected[k]) for k in missing}} if missing else state


def _upgrade_optimizer_state(state: dict[str, Any], names: list[str], added: set[str]) -> dict[str, Any]:
    """An optimiser ``state_dict`` saved without the parameters ``added`` (see :func:`upgrade_state_dict`), for
    today's parameters ``names`` (in the optimiser's order): the saved moments move to their parameters' new
    positions; the added parameters start without any (as at a first step).
    """
    new_index = {name: i for i, name in enumerate(names)}
    old_to_new = [new_index[name] for name in names if name not in added]
    groups = [{**group, "params": list(range(len(names)))} for group in state["param_groups"]]
    moments = {old_to_new[int(i)]: value for i, value in state["state"].items()}
    return {"state": moments, "param_groups": groups}


def _shift_cnn_indices(state: dict[str, th.Tensor]) -> dict[str, th.Tensor]:
    shifts = {"world_model.encoder.cnn.": 1, "world_model.decoder.cnn.": 3}  # prefix -> first index that moved
    moved = {
        p: first for p, first in shifts.items() if f"{p}{first}.weight" in state and f"{p}{first - 1}.weight" not in state
    }
    if not moved:
        return state
    pattern = re.compile(r"^(" + "|".join(re.escape(p) for p in moved) + r")(\d+)\.(.*)$")

    def renamed(key: str) -> str:
        match = pattern.match(key)
        if match is None or int(match[2]) < moved[match[1]]:
            return key
        return f"{match[1]}{int(match[2]) - 1}.{match[3]}"

    return {renamed(k): v for k, v in state.items()}


class Persistence(OffPolicyAlgorithm):
    """DreamerV2's save, load, load_safe, replay buffer and resume (a base of :class:`DreamerV2`)."""

    config: DreamerConfig

    def _excluded_save_params(self) -> list[str]:
        excluded = ["_policy_state", "_episode_starts", "_execution", "_updater", "_save_optimizer_state"]
        return [*super()._excluded_save_params(), *excluded]

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        optimizers = ["policy.model_optimizer", "policy.actor_optimizer", "policy.critic_optimizer"]
        return ["policy", *optimizers], []

    def _adopt_saved_attributes(self) -> None:
        """Hyperparameters found as attributes go into ``config`` (validated): keyword arguments of ``load``, and
        every hyperparameter of a zip saved by sb3_dreamer 0.3."""
        values = {n: self.__dict__.pop(n) for n in DreamerConfig.names() if n in self.__dict__ and n != "gamma"}
        if "deter_size" in values:  # a 0.3 zip: its discount is SB3's attribute
            values["gamma"] = self.gamma
            for name in ("_scaler", "_graphed_update", "_graphed_act", "_compiled"):
                self.__dict__.pop(name, None)
        if values:
            self.config = self.config.replace(**values)

    def set_parameters(self, load_path_or_dict: Any, exact_match: bool = True, device: th.device | str = "auto") -> None:
        """SB3's ``set_parameters``, also for files saved by sb3_dreamer 0.3 (see :func:`upgrade_state_dict`)."""
        if isinstance(load_path_or_dict, dict) and "policy" in load_path_or_dict:
            saved = load_path_or_dict["policy"]
            state = upgrade_state_dict(saved, self.policy.state_dict())
            load_path_or_dict = {**load_path_or_dict, "policy": state}
            added = set(state) - set(_shift_cnn_indices(saved))  # the biases it lacked
            for name, module in (("model", "world_model"), ("actor", "actor"), ("critic", "critic")):
                key = f"policy.{name}_optimizer"
                if added and key in load_path_or_dict:
                    names = [f"{module}.{n}" for n, _ in getattr(self.policy, module).named_parameters()]
                    load_path_or_dict[key] = _upgrade_optimizer_state(load_path_or_dict[key], names, added)
        super().set_parameters(load_path_or_dict, exact_match, device)

    def save(
        self,
        path: str | pathlib.Path | io.BufferedIOBase,
        exclude: Any = None,
        include: Any = None,
        optimizer_state: bool = False,
    ) -> None:
        """SB3's ``save``, written beside the target and renamed into place: a crash mid-write leaves the
        previous file intact (``CheckpointCallback`` and rl-zoo3 save through this). Files (not streams) also
        get ``sb3_dreamer.json``, the plain-data description :meth:`load_safe` reads.

        :param optimizer_state: also save the optimisers' Adam moments (twice the networks' size): what an exact
            continuation needs (:class:`~sb3_dreamer.ResumableCheckpointCallback` saves them). Without them, training
            a loaded model starts Adam afresh.
        """

        def write(target: Any) -> None:
            self.__dict__["_save_optimizer_state"] = optimizer_state
            try:
                super(Persistence, self).save(target, exclude, include)
            finally:
                del self.__dict__["_save_optimizer_state"]
            if not isinstance(target, io.BufferedIOBase):
                write_spec(target, self.plain_spec())

        atomic_write(path, "zip", write)

    def get_parameters(self) -> dict[str, dict]:
        """SB3's parameters to save: the policy's and the optimisers' state dicts (while :meth:`save` runs without
        ``optimizer_state``, the optimisers' settings only)."""
        params = super().get_parameters()
        if not self.__dict__.get("_save_optimizer_state", True):
            for name in params:
                if name.endswith("_optimizer"):
                    params[name] = {"state": {}, "param_groups": params[name]["param_groups"]}
        return params

    def plain_spec(self) -> dict[str, Any]:
        """The policy alias, the hyperparameters, spaces and counters as JSON-able data (see :meth:`load_safe`)."""
        sb3 = {
            "learning_rate": self.learning_rate, "buffer_size": self.buffer_size, "learning_starts": self.learning_starts,
            "batch_size": self.batch_size, "train_freq": self.train_freq.frequency,  # type: ignore[union-attr]
            "gradient_steps": self.gradient_steps, "stats_window_size": self._stats_window_size, "seed": self.seed,
        }  # fmt: skip
        if callable(sb3["learning_rate"]):  # a schedule is code: keep its value at the start
            sb3["learning_rate"] = float(self.learning_rate(1.0))  # type: ignore[operator]
        hyperparameters = {
            k: v.item() if isinstance(v, np.generic) else v for k, v in {**sb3, **self.config.to_dict()}.items()
        }
        policy_name = {cls: name for name, cls in self.policy_aliases.items()}.get(self.policy_class)
        policy_kwargs = self.policy_kwargs if _is_plain(self.policy_kwargs) else None
        return dict(
            algo="DreamerV2", policy=policy_name, hyperparameters=hyperparameters, policy_kwargs=policy_kwargs,
            observation_space=encode_space(self.observation_space), action_space=encode_space(self.action_space),
            num_timesteps=self.num_timesteps, n_updates=self._n_updates,
        )  # fmt: skip

    @classmethod
    def load_safe(
        cls: type[SelfPersistence],
        path: str | pathlib.Path,
        env: GymEnv | None = None,
        device: th.device | str = "auto",
        sha256: str | None = None,
    ) -> SelfPersistence:
        """Load a saved agent without unpickling anything (``load`` unpickles SB3's ``data``; see
        :mod:`sb3_dreamer.dreamer.safe_load`): the networks, hyperparameters, spaces and counters, ready for
        ``predict``, ``evaluate_policy`` or more training (optimiser states and the replay are not restored).

        :param sha256: the file's expected SHA-256 (hex); a different file is refused.
        """
        spec, state_dict = read_safe(path, sha256)
        if spec["policy"] not in cls.policy_aliases or (spec["policy_kwargs"] is None):
            raise ValueError(
                f"{path} uses a custom policy class or non-plain policy_kwargs, which cannot be rebuilt from plain "
                "data; use DreamerV2.load only if you trust its source."
            )
        unknown = set(spec["hyperparameters"]) - set(SPEC_HYPERPARAMETERS)
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
        state_dict = upgrade_state_dict(state_dict, model.policy.state_dict())
        model.policy.load_state_dict({k: v.to(model.device) for k, v in state_dict.items()})
        model.num_timesteps, model._n_updates = spec["num_timesteps"], spec["n_updates"]
        if vec_env is not None:
            model.set_env(vec_env)
        return model

    @classmethod
    def load(  # type: ignore[override]
        cls: type[SelfPersistence],
        path: str | pathlib.Path | io.BufferedIOBase,
        env: GymEnv | None = None,
        device: th.device | str = "auto",
        custom_objects: dict[str, Any] | None = None,
        print_system_info: bool = False,
        force_reset: bool = True,
        **kwargs: Any,
    ) -> SelfPersistence:
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
        atomic_write(path, "pkl", lambda target: super(Persistence, self).save_replay_buffer(target))

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
        self.replay_buffer = buffer

    def resume_state(self) -> dict[str, Any]:
        """What a checkpoint needs beyond ``save`` and the replay buffer to continue exactly: random states,
        the acting latent and episode starts, the grad scaler. Tensors and plain data only.
        """
        state: dict[str, Any] = {"random": capture_random_state(self), "scaler": self._updater.scaler.state_dict()}
        if self._policy_state is not None and self._episode_starts is not None:
            state["policy_state"] = {**self._policy_state.latent._asdict(), "action": self._policy_state.action}
            state["episode_starts"] = th.as_tensor(self._episode_starts)
        return state

    def restore_resume_state(self, state: dict[str, Any], continue_episodes: bool) -> None:
        """Inverse of :meth:`resume_state`; ``continue_episodes`` when the envs were restored mid-episode."""
        restore_random_state(self, state["random"])
        self._updater.scaler.load_state_dict(state["scaler"])
        if continue_episodes and "policy_state" in state:
            saved = {k: v.to(self.device) for k, v in state["policy_state"].items()}
            action = saved.pop("action")
            self._policy_state = PolicyState(RSSMState(**saved), action)
            self._episode_starts = state["episode_starts"].numpy()

    @classmethod
    def resume(
        cls: type[SelfPersistence], path: str | pathlib.Path, env: GymEnv | None = None, device: th.device | str = "auto"
    ) -> SelfPersistence:
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
