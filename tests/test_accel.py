"""``sb3_dreamer.accel`` only makes DreamerV2 faster: a whole update with its fast forms equals the plain update,
the package enters through one door, and without it the agent still trains."""

import ast
import os
import pathlib
import shutil
import site
import subprocess
import sys

import numpy as np
import pytest
import torch as th
from gymnasium import spaces

from sb3_dreamer import DreamerV2
from sb3_dreamer.dreamer.execution import Execution
from sb3_dreamer.dreamer.update import Updater
from tests.conftest import SpacesEnv

PACKAGE = pathlib.Path(__file__).parents[1] / "sb3_dreamer"


def _model(discrete: bool, image: bool) -> DreamerV2:
    obs = spaces.Dict({"image": spaces.Box(0, 255, (64, 64, 1), np.uint8), "vec": spaces.Box(-1, 1, (3,), np.float32)})
    action = spaces.Discrete(3) if discrete else spaces.Box(-1, 1, (2,), np.float32)
    env = SpacesEnv(obs if image else obs["vec"], action)
    return DreamerV2.from_preset("debug", "MultiInputPolicy" if image else "MlpPolicy", env, seed=0, actor_grad="both")


def _plain_copy(model: DreamerV2) -> Updater:
    """An updater of a plain policy (the modules as written, eager) with ``model``'s weights."""
    policy = model.policy_class(model.observation_space, model.action_space, model.lr_schedule, config=model.config)
    policy.load_state_dict(model.policy.state_dict())
    return Updater(policy, model.config, Execution())


@pytest.mark.parametrize(("discrete", "image"), [(True, False), (False, False), (True, True)])
def test_an_accelerated_update_equals_the_plain_update(discrete: bool, image: bool):
    model = _model(discrete, image)
    plain = _plain_copy(model)
    assert type(plain.policy.world_model.rssm) is not type(model.policy.world_model.rssm)  # the fast form is in
    for _ in range(3):  # the first steps create the optimisers' state, the later ones read it
        batch = _batch(model)
        th.manual_seed(1)
        fast_metrics = model._updater(batch)
        th.manual_seed(1)
        plain_metrics = plain(batch)
        for key, value in plain_metrics.items():
            th.testing.assert_close(fast_metrics[key], value, rtol=1e-4, atol=1e-5, msg=key)
    for (name, fast), plain_param in zip(model.policy.named_parameters(), plain.policy.parameters()):
        th.testing.assert_close(fast, plain_param, rtol=1e-4, atol=1e-5, msg=name)


def _batch(model: DreamerV2):
    buffer = model.replay_buffer
    if buffer.size() == 0:
        env = model.get_env()
        obs = env.reset()
        rng = np.random.default_rng(0)
        for step in range(40):
            action = np.array([env.action_space.sample()])
            new_obs, reward, done, info = env.step(action)
            reward = rng.normal(size=1).astype(np.float32)
            done = np.array([step % 13 == 12])
            buffer_action = action if model.policy.discrete else model.policy.scale_action(action)
            buffer.add(obs, new_obs, buffer_action, reward, done, info)
            obs = new_obs
    return buffer.sample(model.batch_size, model.config.sequence_length)


def test_only_the_execution_module_imports_the_speed_package():
    """The door: ``sb3_dreamer.dreamer.execution`` finds ``sb3_dreamer.accel``; nothing else outside it imports it."""
    importers = []
    for path in PACKAGE.rglob("*.py"):
        if "accel" in path.relative_to(PACKAGE).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(name.startswith("sb3_dreamer.accel") for name in names):
                importers.append(path.relative_to(PACKAGE).as_posix())
    assert importers == ["dreamer/execution.py"]


def test_without_the_speed_package_the_agent_still_learns(tmp_path: pathlib.Path):
    """A copy of the package with ``accel/`` deleted builds, trains, saves and loads a model."""
    shutil.copytree(PACKAGE, tmp_path / "sb3_dreamer", ignore=shutil.ignore_patterns("accel", "__pycache__"))
    script = (
        "import torch as th, sb3_dreamer\n"
        "from sb3_dreamer import DreamerV2\n"
        "th.set_num_threads(1)\n"
        f"assert sb3_dreamer.__path__[0] == {str(tmp_path / 'sb3_dreamer')!r}, sb3_dreamer.__path__\n"
        "model = DreamerV2.from_preset('debug', 'MlpPolicy', 'CartPole-v1', seed=0, learning_starts=64)\n"
        "assert type(model._execution).__name__ == 'Execution'\n"
        "model.learn(200)\n"
        "assert model._n_updates > 0\n"
        f"model.save({str(tmp_path / 'plain.zip')!r})\n"
        f"DreamerV2.load({str(tmp_path / 'plain.zip')!r}).predict(model.env.reset())\n"
        "print('plain agent ok')\n"
    )
    # -S: no site hooks, so the editable install of the full package cannot take precedence over the copy.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *site.getsitepackages()])}
    command = [sys.executable, "-S", "-c", script]
    result = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "plain agent ok" in result.stdout
