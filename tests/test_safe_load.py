"""Loading without unpickling, checksums, and clear errors for damaged files and mismatched envs."""

import io
import json
import zipfile

import gymnasium as gym
import numpy as np
import pytest
import torch as th

from sb3_dreamer import DreamerV2
from sb3_dreamer.dreamer.safe_load import SPEC, decode_space, encode_space, sha256
from tests.conftest import ImageEnv


@pytest.mark.parametrize(("policy", "env"), [("MlpPolicy", "Pendulum-v1"), ("CnnPolicy", ImageEnv())])
def test_safe_load_rebuilds_the_same_agent(tmp_path, policy, env):
    model = DreamerV2.from_preset("debug", policy, env, seed=0, learning_rate=lambda progress: 1e-3 * progress)
    model.learn(120)
    model.save(tmp_path / "agent")
    loaded = DreamerV2.load_safe(tmp_path / "agent.zip", sha256=sha256(tmp_path / "agent.zip"))
    assert loaded.num_timesteps == model.num_timesteps and loaded._n_updates == model._n_updates
    assert loaded.learning_rate == pytest.approx(1e-3)  # a schedule is code: its start value is kept
    for key, value in model.policy.state_dict().items():
        assert th.equal(loaded.policy.state_dict()[key], value), key
    obs = np.stack([model.observation_space.sample() for _ in range(3)])
    th.manual_seed(0)  # acting samples the latent, as the reference does; same seed, same actions
    expected, _ = model.predict(obs, deterministic=True)
    th.manual_seed(0)
    np.testing.assert_array_equal(loaded.predict(obs, deterministic=True)[0], expected)


def test_spaces_round_trip_as_plain_data():
    box = gym.spaces.Box(np.array([-1.0, -np.inf]), np.array([2.0, np.inf]), dtype=np.float32)
    space = gym.spaces.Dict({"image": gym.spaces.Box(0, 255, (3, 64, 64), np.uint8), "vector": box})
    assert decode_space(encode_space(space)) == space
    assert decode_space(encode_space(gym.spaces.Discrete(5, start=1))) == gym.spaces.Discrete(5, start=1)


def test_safe_load_refuses_what_it_cannot_trust(tmp_path, capsys):
    model = DreamerV2.from_preset("debug", "MlpPolicy", "CartPole-v1", seed=0)
    model.save(tmp_path / "agent")
    path = tmp_path / "agent.zip"
    with pytest.raises(ValueError, match="not the one published"):
        DreamerV2.load_safe(path, sha256="0" * 64)

    class Payload:  # anything but tensors and plain data is refused, never unpickled
        def __reduce__(self):
            return (print, ("pickled code ran",))

    _rewrite(path, tmp_path / "pickled.zip", {"policy.pth": _torch_bytes({"weight": Payload()})})
    with pytest.raises(ValueError, match="more than tensors and plain data"):
        DreamerV2.load_safe(tmp_path / "pickled.zip")
    assert "pickled code ran" not in capsys.readouterr().out
    spec = json.loads(zipfile.ZipFile(path).read(SPEC))
    spec["hyperparameters"]["replay_dir"] = "/somewhere/else"  # a path from an untrusted file is never taken
    _rewrite(path, tmp_path / "paths.zip", {SPEC: json.dumps(spec)})
    with pytest.raises(ValueError, match="unexpected entries"):
        DreamerV2.load_safe(tmp_path / "paths.zip")
    _rewrite(path, tmp_path / "nospec.zip", {SPEC: None})
    with pytest.raises(ValueError, match="only if you trust its source"):
        DreamerV2.load_safe(tmp_path / "nospec.zip")


def test_damaged_files_and_other_envs_have_clear_errors(tmp_path):
    model = DreamerV2.from_preset("debug", "MlpPolicy", "CartPole-v1", seed=0)
    model.save(tmp_path / "agent")
    data = (tmp_path / "agent.zip").read_bytes()
    (tmp_path / "truncated.zip").write_bytes(data[: len(data) // 2])
    for load in (DreamerV2.load, DreamerV2.load_safe):
        with pytest.raises(ValueError, match="truncated or damaged"):
            load(tmp_path / "truncated.zip")
    with pytest.raises(ValueError, match="pass an env with the same observation and action spaces"):
        DreamerV2.load(tmp_path / "agent.zip", env=gym.make("MountainCar-v0"))


def _torch_bytes(obj) -> bytes:
    buffer = io.BytesIO()
    th.save(obj, buffer)
    return buffer.getvalue()


def _rewrite(source, target, replace: dict) -> None:
    """Copy a zip, replacing entries (``None`` drops one)."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for name in old.namelist():
            if name not in replace:
                new.writestr(name, old.read(name))
            elif replace[name] is not None:
                new.writestr(name, replace[name])


def test_safe_load_into_several_envs_and_numpy_hyperparameters(tmp_path):
    from stable_baselines3.common.env_util import make_vec_env

    model = DreamerV2.from_preset("debug", "MlpPolicy", "CartPole-v1", seed=0, batch_size=np.int64(4))
    model.save(tmp_path / "agent")  # numpy scalars are written as plain numbers
    loaded = DreamerV2.load_safe(tmp_path / "agent.zip", env=make_vec_env("CartPole-v1", n_envs=2, seed=0))
    assert loaded.n_envs == 2 and loaded.batch_size == 4
    loaded.learn(80)
