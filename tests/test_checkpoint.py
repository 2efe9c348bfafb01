"""Checkpoints that survive SIGKILL, and a resumed run that equals the uninterrupted one."""

import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch as th
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.save_util import load_from_pkl
from stable_baselines3.common.vec_env import SubprocVecEnv

from sb3_dreamer import DreamerV2, ResumableCheckpointCallback
from sb3_dreamer.dreamer.checkpoint import latest_checkpoint, read_checkpoint

TRAIN = """
import sys
from stable_baselines3.common.env_util import make_vec_env
from sb3_dreamer import DreamerV2, ResumableCheckpointCallback
model = DreamerV2.from_preset("debug", "MlpPolicy", make_vec_env("CartPole-v1", n_envs=2, seed=0), seed=0)
model.learn(10**7, callback=ResumableCheckpointCallback(20, sys.argv[1], keep=3))
"""


def _make(seed: int = 0) -> DreamerV2:
    return DreamerV2.from_preset("debug", "MlpPolicy", make_vec_env("CartPole-v1", n_envs=2, seed=seed), seed=seed)


def _params(model: DreamerV2) -> th.Tensor:
    return th.nn.utils.parameters_to_vector(model.policy.parameters()).detach()


def _wait_for_checkpoints(folder, count: int, process: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"training exited early: {process.stderr.read().decode()[-2000:]}")
        done = [p for p in folder.glob("dreamerv2_*_steps") if (p / "checkpoint.json").exists()] if folder.exists() else []
        if len(done) >= count:
            return
        time.sleep(0.05)
    raise AssertionError("no checkpoints were written in time")


def test_sigkill_at_a_random_point_loses_nothing_checkpointed(tmp_path):
    folder = tmp_path / "ckpt"
    process = subprocess.Popen([sys.executable, "-c", TRAIN, str(folder)], stderr=subprocess.PIPE)
    try:
        _wait_for_checkpoints(folder, 2, process)
        time.sleep(random.Random(0).uniform(0.0, 1.0))  # a fixed "random" point: the test stays deterministic
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()

    checkpoint = latest_checkpoint(folder)  # verifies every file's SHA-256; never a half-written folder
    assert not checkpoint.path.name.startswith(".")
    model = DreamerV2.resume(folder)
    assert (model.num_timesteps, model._n_updates) == (checkpoint.num_timesteps, checkpoint.n_updates)
    assert model.replay_buffer.size() == checkpoint.replay_steps >= checkpoint.num_timesteps
    saved_buffer = load_from_pkl(checkpoint.path / "replay.pkl")
    for key, value in saved_buffer.storage.items():
        np.testing.assert_array_equal(model.replay_buffer.storage[key], value)
    reloaded = DreamerV2.load(checkpoint.path / "model.zip")
    assert th.equal(_params(model), _params(reloaded))

    steps = model.num_timesteps
    model.learn(60, reset_num_timesteps=False)
    assert model.num_timesteps >= steps + 60 and model.replay_buffer.size() > checkpoint.replay_steps


def test_a_resumed_run_equals_the_uninterrupted_one(tmp_path):
    uninterrupted = _make()
    uninterrupted.learn(600, callback=ResumableCheckpointCallback(150, str(tmp_path), keep=2))
    assert latest_checkpoint(tmp_path).num_timesteps == 608  # due in the last rollout: written at the end
    middle = tmp_path / "dreamerv2_000000000304_steps"  # the first rollout start after 150 calls of 2 envs
    assert read_checkpoint(middle).num_timesteps == 304

    resumed = DreamerV2.resume(middle)
    resumed.learn(600 - resumed.num_timesteps, reset_num_timesteps=False)
    assert (resumed.num_timesteps, resumed._n_updates) == (uninterrupted.num_timesteps, uninterrupted._n_updates)
    assert th.equal(_params(resumed), _params(uninterrupted))
    for key, value in uninterrupted.replay_buffer.storage.items():
        np.testing.assert_array_equal(resumed.replay_buffer.storage[key], value)

    # With fresh envs the episodes restart: the run continues, but is no longer the same run.
    fresh = DreamerV2.resume(middle, env=make_vec_env("CartPole-v1", n_envs=2, seed=0))
    fresh.learn(600 - fresh.num_timesteps, reset_num_timesteps=False)
    assert not th.equal(_params(fresh), _params(uninterrupted))


def test_damaged_or_partial_checkpoints_are_skipped(tmp_path):
    model = _make()
    callback = ResumableCheckpointCallback(50, str(tmp_path), keep=2)
    model.learn(400, callback=callback)
    folders = sorted(p for p in tmp_path.iterdir() if not p.name.startswith("."))
    assert len(folders) == 2  # older ones pruned
    (tmp_path / ".dreamerv2_999999999999_steps.partial").mkdir()  # a write that was killed
    newest = folders[-1]
    with open(newest / "replay.pkl", "r+b") as handle:  # damaged after it was written
        handle.seek(100)
        handle.write(b"\x00" * 16)
    with pytest.raises(ValueError, match="does not match its SHA-256"):
        read_checkpoint(newest)
    assert latest_checkpoint(tmp_path).path == folders[0]
    with pytest.raises(FileNotFoundError, match="No complete DreamerV2 checkpoint"):
        latest_checkpoint(tmp_path / "nothing")


def test_unpicklable_envs_need_the_env_at_resume(tmp_path):
    env = make_vec_env("CartPole-v1", n_envs=2, seed=0, vec_env_cls=SubprocVecEnv)
    try:
        model = DreamerV2.from_preset("debug", "MlpPolicy", env, seed=0)
        model.learn(200, callback=ResumableCheckpointCallback(50, str(tmp_path)))
    finally:
        env.close()
    assert "envs.pkl" not in latest_checkpoint(tmp_path).files
    with pytest.raises(ValueError, match="pass the env to continue in"):
        DreamerV2.resume(tmp_path)
    resumed = DreamerV2.resume(tmp_path, env=make_vec_env("CartPole-v1", n_envs=2, seed=1))
    resumed.learn(50, reset_num_timesteps=False)


def test_simulator_envs_are_not_pickled(tmp_path):
    pytest.importorskip("ale_py")
    from sb3_dreamer.dreamer.checkpoint import write_checkpoint

    model = DreamerV2.from_preset("debug", "CnnPolicy", make_vec_env("sb3_dreamer/Pong-v0", n_envs=1, seed=0), seed=0)
    checkpoint = write_checkpoint(model, tmp_path / "ckpt")  # an ALE emulator would come back in another state
    assert "envs.pkl" not in checkpoint.files and "model.zip" in checkpoint.files


def test_a_replay_folder_is_never_shared(tmp_path):
    first = DreamerV2.from_preset("debug", "MlpPolicy", "CartPole-v1", seed=0, replay_dir=str(tmp_path / "replay"))
    first.learn(70)
    second = DreamerV2.from_preset("debug", "MlpPolicy", "CartPole-v1", seed=1, replay_dir=str(tmp_path / "replay"))
    with pytest.raises(ValueError, match="already holds a replay"):
        second.learn(70)
