"""rl-zoo3 integration: the plain commands after install, the explicit entry point, the hyperparameter file."""

import filecmp
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import yaml
from gymnasium import spaces

from sb3_dreamer import PRESETS, DreamerV2
from sb3_dreamer.zoo import DEFAULT_CONFIG

pytest.importorskip("rl_zoo3")
pytest.importorskip("ale_py")

ROOT = Path(__file__).parents[1]


def _run(args: list[str], cwd: Path, hook: bool = True) -> subprocess.CompletedProcess:
    if args[0] == "rl_zoo3":  # the console script of this interpreter's environment, activated or not
        script = Path(sys.executable).parent / "rl_zoo3"
        args = [str(script) if script.exists() else "rl_zoo3", *args[1:]]
    env = {**os.environ, "SB3_DREAMER_ZOO_HOOK": "1" if hook else "0", "OMP_NUM_THREADS": "1"}
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def _ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout + result.stderr


@pytest.fixture(scope="module")
def debug_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ``-conf`` file with the debug preset for Atari and CartPole."""
    path = tmp_path_factory.mktemp("conf") / "debug.yml"
    debug = dict(PRESETS["debug"], n_timesteps=200)
    path.write_text(yaml.safe_dump({"atari": dict(debug, policy="CnnPolicy"), "CartPole-v1": dict(debug, policy="MlpPolicy")}))
    return path


@pytest.fixture(scope="module")
def pong_run(tmp_path_factory: pytest.TempPathFactory, debug_config: Path) -> Path:
    """``rl_zoo3 train`` (the console script, through the installed hook) on the paper's Pong, tiny budget."""
    folder = tmp_path_factory.mktemp("zoo")
    command = ["rl_zoo3", "train", "--algo", "dreamerv2", "--env", "sb3_dreamer/Pong-v0", "-n", "150"]
    _ok(_run([*command, "-conf", str(debug_config), "--eval-freq", "-1", "--seed", "0", "-f", "logs"], folder))
    return folder


def test_plain_rl_zoo3_train_writes_the_zoo_layout(pong_run: Path):
    run = pong_run / "logs" / "dreamerv2" / "sb3_dreamer-Pong-v0_1"
    for name in ("sb3_dreamer-Pong-v0.zip", "0.monitor.csv", "sb3_dreamer-Pong-v0/config.yml", "sb3_dreamer-Pong-v0/args.yml"):
        assert (run / name).exists(), name
    config = yaml.unsafe_load((run / "sb3_dreamer-Pong-v0" / "config.yml").read_text())
    assert dict(config)["deter_size"] == PRESETS["debug"]["deter_size"]  # the explicit -conf won
    model = DreamerV2.load(run / "sb3_dreamer-Pong-v0.zip")
    assert model.replay_buffer.storage is None  # loading for enjoy/record_video allocates no replay memory
    assert model.observation_space.shape == (1, 64, 64)


def test_enjoy_and_record_video(pong_run: Path):
    common = ["--algo", "dreamerv2", "--env", "sb3_dreamer/Pong-v0", "-f", "logs", "-n", "40"]
    _ok(_run(["rl_zoo3", "enjoy", *common, "--no-render"], pong_run))
    _ok(_run([sys.executable, "-m", "rl_zoo3.record_video", *common, "-o", "videos"], pong_run))
    assert list((pong_run / "videos").glob("*.mp4"))


def test_default_config_plot_train_entry_point_and_hub_round_trip(tmp_path: Path):
    command = ["train", "--algo", "dreamerv2", "--env", "CartPole-v1", "-n", "120", "--eval-freq", "-1", "-f", "logs"]
    out = _ok(_run([sys.executable, "-m", "sb3_dreamer.zoo", *command], tmp_path, hook=False))
    assert f"Loading hyperparameters from: {DEFAULT_CONFIG}" in out
    _ok(_run(["rl_zoo3", "plot_train", "--algo", "dreamerv2", "--env", "CartPole-v1", "-f", "logs"], tmp_path))

    # Round trip through the Hugging Face SB3 layout in a local folder, and back into rl-zoo3's layout.
    hub = [sys.executable, "-m", "sb3_dreamer.hub"]
    _ok(
        _run([*hub, "package", "--env", "CartPole-v1", "-f", "logs", "--repo-dir", "repo", "--n-eval-episodes", "1"], tmp_path)
    )
    names = {p.name for p in (tmp_path / "repo").iterdir()}
    assert {"dreamerv2-CartPole-v1.zip", "config.yml", "args.yml", "env_kwargs.yml", "train_eval_metrics.zip"} <= names
    assert "library_name: stable-baselines3" in (tmp_path / "repo" / "README.md").read_text()
    _ok(_run([*hub, "install", "--env", "CartPole-v1", "--repo-dir", "repo", "-f", "downloaded"], tmp_path))
    original, restored = tmp_path / "logs/dreamerv2/CartPole-v1_1", tmp_path / "downloaded/dreamerv2/CartPole-v1_1"
    assert filecmp.cmp(original / "CartPole-v1.zip", restored / "CartPole-v1.zip", shallow=False)
    assert (restored / "0.monitor.csv").exists()
    _ok(
        _run(
            ["rl_zoo3", "enjoy", "--algo", "dreamerv2", "--env", "CartPole-v1", "-f", "downloaded", "-n", "50", "--no-render"],
            tmp_path,
        )
    )


def test_the_hook_can_be_turned_off(tmp_path: Path):
    check = "import rl_zoo3; print('dreamerv2' in rl_zoo3.ALGOS)"
    assert _ok(_run([sys.executable, "-c", check], tmp_path, hook=True)).strip().endswith("True")
    assert _ok(_run([sys.executable, "-c", check], tmp_path, hook=False)).strip().endswith("False")


def test_the_hook_ships_in_the_wheel(tmp_path: Path):
    pytest.importorskip("setuptools")
    source = tmp_path / "src"  # a copy, so the build leaves nothing in the checkout
    shutil.copytree(ROOT / "sb3_dreamer", source / "sb3_dreamer", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "setup.py", "README.md", "sb3_dreamer_zoo.pth", "_sb3_dreamer_zoo_hook.py"):
        shutil.copy(ROOT / name, source / name)
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path)]
    _ok(_run([*build, str(source)], tmp_path))
    (wheel,) = tmp_path.glob("sb3_dreamer-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    shipped = {
        "sb3_dreamer_zoo.pth",
        "_sb3_dreamer_zoo_hook.py",
        "sb3_dreamer/hyperparams/dreamerv2.yml",
        "sb3_dreamer/atari_benchmark/data/baselines.json",
        "sb3_dreamer/atari_benchmark/data/atari-dreamerv2.json.gz",
    }
    assert shipped <= set(names)


class _Spaces(gym.Env):
    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space):
        self.observation_space, self.action_space = observation_space, action_space


@pytest.mark.parametrize("key", list(yaml.safe_load(DEFAULT_CONFIG.read_text())))
def test_every_yml_entry_builds_a_model(key: str):
    params = dict(yaml.safe_load(DEFAULT_CONFIG.read_text())[key])
    params.pop("n_timesteps")
    params.pop("callback", None)
    policy = params.pop("policy")
    if key == "atari":
        env: gym.Env = _Spaces(spaces.Box(0, 255, (64, 64, 1), np.uint8), spaces.Discrete(18))
    elif key.startswith(("dmc_vision", "sb3_dreamer/DMC-")):  # pixels: rendering is tested in test_envs
        env = _Spaces(spaces.Box(0, 255, (64, 64, 3), np.uint8), spaces.Box(-1, 1, (6,), np.float32))
    elif key == "dmc_proprio":
        env = gym.make("sb3_dreamer/DMCProprio-walker-walk-v0")
    else:
        env = gym.make(key)
    model = DreamerV2(policy, env, **params)
    assert model.replay_buffer is not None and model.policy is not None


def test_rl_zoo3_trained_agent_resumes_counters_and_replay(tmp_path: Path, debug_config: Path):
    common = ["rl_zoo3", "train", "--algo", "dreamerv2", "--env", "CartPole-v1", "-conf", str(debug_config)]
    common += ["--eval-freq", "-1", "-f", "logs", "--seed", "0"]
    _ok(_run([*common, "--save-replay-buffer"], tmp_path))
    first = tmp_path / "logs/dreamerv2/CartPole-v1_1"
    out = _ok(_run([*common, "-i", str(first / "CartPole-v1.zip"), "-n", "150"], tmp_path))
    assert "Loading replay buffer" in out
    before = DreamerV2.load(first / "CartPole-v1.zip")
    after = DreamerV2.load(tmp_path / "logs/dreamerv2/CartPole-v1_2/CartPole-v1.zip")
    assert after.num_timesteps >= before.num_timesteps + 150  # counted on, not restarted
    assert after._n_updates > before._n_updates
