"""Checkpoints a run can continue from exactly: model, optimisers, replay, random states and the envs.

A checkpoint is a folder ``<save_path>/<prefix>_<steps>_steps/``::

    model.zip        DreamerV2.save: networks, slow critic, the three optimisers, counters, schedules
    replay.pkl       the replay buffer, with its sampling generator
    state.pt         random states (python, numpy, torch, CUDA, action space), the acting latent, the grad
                     scaler (loads with ``weights_only=True``)
    envs.pkl         the VecEnv itself (cloudpickle), when it can be pickled faithfully (a DummyVecEnv of
                     pure-Python envs); otherwise absent, and a resumed run starts new episodes
    checkpoint.json  written last: counters and the SHA-256 of every file above

The folder is written under a hidden temporary name and renamed into place, so a process killed mid-write
leaves only complete checkpoints behind; :func:`latest_checkpoint` also checks the checksums.
"""

from __future__ import annotations

import json
import os
import pathlib
import random
import shutil
from typing import Any, NamedTuple

import cloudpickle
import numpy as np
import torch as th
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.vec_env import DummyVecEnv

from sb3_dreamer.dreamer.safe_load import sha256

MANIFEST = "checkpoint.json"
_FILES = ("model.zip", "replay.pkl", "state.pt", "envs.pkl")


class Checkpoint(NamedTuple):
    """A complete checkpoint folder and its manifest."""

    path: pathlib.Path
    num_timesteps: int
    n_updates: int
    replay_steps: int
    files: dict[str, str]  # name -> sha256

    def file(self, name: str) -> pathlib.Path | None:
        return self.path / name if name in self.files else None


def capture_random_state(model: OffPolicyAlgorithm) -> dict[str, Any]:
    """Every random state a run draws from, as tensors and plain data (``weights_only``-loadable)."""
    legacy: tuple[Any, ...] = np.random.get_state(legacy=True)  # type: ignore[assignment]
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": (legacy[0], th.from_numpy(legacy[1].astype(np.int64)), *legacy[2:]),
        "torch": th.get_rng_state(),
        "action_space": model.action_space.np_random.bit_generator.state,
    }
    if th.cuda.is_available():
        state["cuda"] = th.cuda.get_rng_state_all()
    return state


def restore_random_state(model: OffPolicyAlgorithm, state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_random_state`."""
    random.setstate(state["python"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    th.set_rng_state(state["torch"])
    model.action_space.np_random.bit_generator.state = state["action_space"]
    if "cuda" in state and th.cuda.is_available():
        th.cuda.set_rng_state_all(state["cuda"])


# Simulators whose state lives in C: their envs pickle, but come back in another state (an ALE emulator
# restarts, MuJoCo's physics is rebuilt), so they are never pickled.
_SIMULATOR_MODULES = ("ale_py", "shimmy", "dm_control", "mujoco", "gymnasium.envs.mujoco", "gymnasium.envs.box2d")


def _pickle_envs(model: OffPolicyAlgorithm, target: pathlib.Path) -> bool:
    env = model.get_env()
    if env is None or not isinstance(env.unwrapped, DummyVecEnv):
        return False
    if any(type(e.unwrapped).__module__.startswith(_SIMULATOR_MODULES) for e in env.unwrapped.envs):
        return False
    try:
        payload = cloudpickle.dumps(env)
    except Exception:  # an env holding an unpicklable handle: the resumed run starts new episodes
        return False
    target.write_bytes(payload)
    return True


def write_checkpoint(model: OffPolicyAlgorithm, folder: str | pathlib.Path, save_envs: bool = True) -> Checkpoint:
    """Write a complete checkpoint of ``model`` to ``folder`` (atomically: temporary folder, then rename).

    Call it between two rollouts (as :class:`ResumableCheckpointCallback` does), when the last transition is
    stored and the acting latent is current; then a resumed run continues exactly.
    """
    final = pathlib.Path(folder)
    temporary = final.with_name(f".{final.name}.partial")
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir(parents=True)
    try:
        model.save(temporary / "model.zip", optimizer_state=True)  # type: ignore[call-arg]
        model.save_replay_buffer(temporary / "replay.pkl")
        th.save(model.resume_state(), temporary / "state.pt")
        if save_envs:
            _pickle_envs(model, temporary / "envs.pkl")
        files = {name: sha256(temporary / name) for name in _FILES if (temporary / name).exists()}
        manifest = dict(
            num_timesteps=model.num_timesteps, n_updates=model._n_updates, replay_steps=model.replay_buffer.size(),
            files=files,
        )  # fmt: skip
        (temporary / MANIFEST).write_text(json.dumps(manifest, indent=1))
        shutil.rmtree(final, ignore_errors=True)
        os.replace(temporary, final)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    return read_checkpoint(final, verify=False)


def read_checkpoint(folder: str | pathlib.Path, verify: bool = True) -> Checkpoint:
    """The checkpoint in ``folder``; with ``verify``, every file's SHA-256 is checked against the manifest.

    :raises ValueError: when the manifest is missing or a file is missing or differs (names the file).
    """
    folder = pathlib.Path(folder)
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise ValueError(f"{folder} is not a complete DreamerV2 checkpoint: it has no {MANIFEST}.")
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{manifest_path} is damaged ({error}); resume from an earlier checkpoint.") from error
    if verify:
        for name, digest in manifest["files"].items():
            if not (folder / name).is_file() or sha256(folder / name) != digest:
                raise ValueError(
                    f"Checkpoint file {folder / name} is missing or does not match its SHA-256 in {manifest_path} "
                    "(changed or damaged after it was written); resume from an earlier checkpoint."
                )
    return Checkpoint(folder, manifest["num_timesteps"], manifest["n_updates"], manifest["replay_steps"], manifest["files"])


def latest_checkpoint(path: str | pathlib.Path, verify: bool = True) -> Checkpoint:
    """The newest complete checkpoint in ``path`` (a checkpoint folder, or a folder of them).

    Incomplete folders (a process killed while writing) are never returned; a damaged one is skipped for
    the one before it.

    :raises FileNotFoundError: when there is none.
    """
    path = pathlib.Path(path)
    if (path / MANIFEST).is_file():
        return read_checkpoint(path, verify)
    candidates = []
    for folder in path.iterdir() if path.is_dir() else []:
        if folder.name.startswith(".") or not (folder / MANIFEST).is_file():
            continue
        try:
            candidates.append(read_checkpoint(folder, verify=False))
        except (ValueError, KeyError):  # an unreadable manifest: skipped like a damaged file
            continue
    for candidate in sorted(candidates, key=lambda c: c.num_timesteps, reverse=True):
        try:
            return read_checkpoint(candidate.path, verify) if verify else candidate
        except ValueError:
            continue
    raise FileNotFoundError(f"No complete DreamerV2 checkpoint in {path}.")


class ResumableCheckpointCallback(BaseCallback):
    """Every ``save_freq`` calls to ``env.step``, write a checkpoint a run can continue from exactly
    (:func:`write_checkpoint`), keeping the newest ``keep``. Resume with ``DreamerV2.resume(save_path)``.

    SB3's ``CheckpointCallback`` saves inside ``env.step``'s callback, before the step's transition is stored;
    this one waits for the start of the next rollout, after the update, so nothing is half done.

    :param save_freq: calls to ``env.step`` between checkpoints (each call is ``n_envs`` steps).
    :param save_path: folder of the checkpoint folders. :param name_prefix: their name prefix.
    :param keep: how many checkpoints to keep (older ones are deleted once a newer one is complete).
    :param save_envs: pickle the VecEnv too when possible, so that episodes continue where they were.
    """

    def __init__(
        self,
        save_freq: int,
        save_path: str,
        name_prefix: str = "dreamerv2",
        keep: int = 2,
        save_envs: bool = True,
        verbose: int = 0,
    ):
        super().__init__(verbose)
        if save_freq < 1 or keep < 1:
            raise ValueError(f"save_freq and keep must be >= 1, got {save_freq} and {keep}.")
        self.save_freq, self.save_path, self.name_prefix = save_freq, pathlib.Path(save_path), name_prefix
        self.keep, self.save_envs = keep, save_envs
        self._due = False

    def _on_step(self) -> bool:
        if self.n_calls % self.save_freq == 0:
            self._due = True
        return True

    def _on_rollout_start(self) -> None:
        if self._due:
            self._write()

    def _on_training_end(self) -> None:
        if self._due:  # due during the last rollout: learn() ends after its update, a consistent point too
            self._write()

    def _write(self) -> None:
        self._due = False
        folder = self.save_path / f"{self.name_prefix}_{self.model.num_timesteps:012d}_steps"
        write_checkpoint(self.model, folder, self.save_envs)  # type: ignore[arg-type]
        if self.verbose >= 1:
            print(f"Checkpoint written to {folder}")
        self._prune(keep=folder)

    def _prune(self, keep: pathlib.Path) -> None:
        """Delete all but the newest ``self.keep`` checkpoints, never the one just written."""
        folders = sorted(p for p in self.save_path.glob(f"{self.name_prefix}_*_steps") if p != keep)
        for old in folders[: max(len(folders) - (self.keep - 1), 0)]:
            shutil.rmtree(old, ignore_errors=True)
