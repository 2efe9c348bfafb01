"""Every shipped agent: its checksum, a safe load, and a score within its manifest's spread; rl-zoo3 enjoys it."""

import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.pretrained_agents import evaluate
from sb3_dreamer.pretrained import AGENTS as AGENTS_FOLDER
from sb3_dreamer.pretrained import load_pretrained, read_manifest

FOLDER = AGENTS_FOLDER
AGENTS = read_manifest()


def test_agents_are_shipped():
    assert {"CartPole-v1", "Pendulum-v1", "sb3_dreamer/DMC-cartpole-balance-v0"} <= set(AGENTS)
    for entry in AGENTS.values():  # small files: 2.7 MB for the classic preset, 4.2 MB for the pixel agent's
        assert entry["size_bytes"] < 5 * 2**20, entry["env_id"]  # float16 weights


@pytest.mark.parametrize("env_id", sorted(AGENTS))
def test_shipped_agent_loads_and_scores_within_its_spread(env_id):
    entry = AGENTS[env_id]
    model = load_pretrained(env_id, FOLDER)  # checks the SHA-256, unpickles nothing
    returns = evaluate(model, env_id, episodes=2, first_seed=5000)  # seeds the manifest evaluation did not use
    spread = entry["evaluation"]
    assert spread["min"] <= sum(returns) / len(returns) <= spread["max"], (returns, spread)


def test_agents_load_from_any_folder_after_install(tmp_path):
    """Installed with the package: ``load_pretrained`` finds them from any working directory."""
    script = (
        "from sb3_dreamer.pretrained import load_pretrained\n"
        "model = load_pretrained('CartPole-v1')\n"
        "print(type(model).__name__, model.num_timesteps)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith("DreamerV2")
    listed = subprocess.run([sys.executable, "-m", "sb3_dreamer.pretrained"], cwd=tmp_path, capture_output=True, text=True)
    assert listed.returncode == 0 and "CartPole-v1" in listed.stdout, listed.stderr


def test_the_package_data_ships_the_agents():
    """The wheel's package data names every file of the agents (setuptools' globs in pyproject.toml)."""
    import tomllib

    data = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    package = FOLDER.parent
    matched = {p for pattern in data["sb3_dreamer"] for p in package.glob(pattern) if p.is_file()}
    shipped = {p for p in FOLDER.rglob("*") if p.is_file()}
    assert shipped <= matched, sorted(map(str, shipped - matched))


def test_a_changed_file_is_refused(tmp_path):
    import shutil

    shutil.copytree(FOLDER, tmp_path / "agents")
    path = tmp_path / "agents" / AGENTS["CartPole-v1"]["path"]
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(ValueError, match="not the one published"):
        load_pretrained("CartPole-v1", tmp_path / "agents")
    with pytest.raises(KeyError, match="available"):
        load_pretrained("Acrobot-v1", FOLDER)


def test_rl_zoo3_enjoy_plays_a_shipped_agent(tmp_path):
    pytest.importorskip("rl_zoo3")
    command = [sys.executable, "-m", "sb3_dreamer.zoo", "enjoy", "--algo", "dreamerv2", "--env", "CartPole-v1",
               "-f", str(FOLDER), "-n", "1200", "--no-render"]  # fmt: skip  (CartPole episodes last 500 steps)
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Episode Reward" in result.stdout or "Atari Episode" in result.stdout or "episode" in result.stdout.lower()


def test_float16_weights_halve_the_file_and_load_as_float32(tmp_path):
    import numpy as np
    import torch as th

    from sb3_dreamer import DreamerV2
    from sb3_dreamer.dreamer.safe_load import sha256
    from sb3_dreamer.pretrained import store_weights_in_float16

    model = DreamerV2("MlpPolicy", "CartPole-v1", deter_size=32, hidden_size=32, mlp_units=32, seed=0, device="cpu")
    path = tmp_path / "agent.zip"
    model.save(path)
    size = path.stat().st_size
    store_weights_in_float16(path)
    assert path.stat().st_size < 0.6 * size
    loaded = DreamerV2.load_safe(path, sha256=sha256(path))
    for (name, got), expected in zip(loaded.policy.state_dict().items(), model.policy.state_dict().values()):
        assert got.dtype == expected.dtype, name  # float32 again (bool and integer buffers untouched)
        th.testing.assert_close(got, expected.half().to(expected.dtype) if expected.is_floating_point() else expected)
    obs = np.zeros((1, 4), np.float32)
    assert loaded.predict(obs, deterministic=True)[0].shape == (1,)
    assert DreamerV2.load(path).policy.state_dict().keys() == model.policy.state_dict().keys()  # SB3's load too
