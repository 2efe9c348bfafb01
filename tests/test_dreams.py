"""What the model dreams: open-loop videos, imagined episodes, real vs model, the callback and the CLI."""

import gymnasium as gym
import pytest
import torch as th
from stable_baselines3.common.logger import KVWriter, Logger, Video

from sb3_dreamer import DreamerV2
from sb3_dreamer.dream import main
from sb3_dreamer.dreamer.callbacks import OpenLoopVideoCallback, tensorboard_can_write_videos
from sb3_dreamer.dreamer.dreams import (
    as_rgb,
    decode_image,
    image_key,
    imagined_rollout,
    open_loop_prediction,
    real_vs_imagined,
    to_uint8,
)
from tests.conftest import ImageEnv

T = 8  # the debug preset's sequence_length
ENV_ID = "sb3_dreamer_test/DreamImage-v0"


@pytest.fixture(scope="module")
def model() -> DreamerV2:
    """A tiny CnnPolicy model after a few updates (its replay holds ~100 steps of ImageEnv)."""
    th.manual_seed(0)
    model = DreamerV2.from_preset("debug", "CnnPolicy", ImageEnv(), seed=0)
    return model.learn(100)


@pytest.fixture(scope="module")
def vector_model() -> DreamerV2:
    return DreamerV2.from_preset("debug", "MlpPolicy", "CartPole-v1", seed=0)


@pytest.fixture
def batch(model):
    th.manual_seed(0)
    return model.replay_buffer.sample(4, T)


def _model_row(frames: th.Tensor, window: int) -> th.Tensor:
    """:param frames: (T, C, 3H, nW). :return: the model row of one window, (T, C, H, W)."""
    return frames[:, :, 64:128, 64 * window : 64 * (window + 1)]


def test_open_loop_prediction_layout(model, batch):
    rng_state = model.replay_buffer.rng.bit_generator.state
    frames = open_loop_prediction(model, batch, context=3, n=2)
    assert frames.shape == (T, 3, 3 * 64, 2 * 64) and frames.dtype == th.uint8
    for window in range(2):
        true_row = frames[:, :, :64, 64 * window : 64 * (window + 1)]
        assert th.equal(true_row, batch.obs["obs"][:, window])
        error_row = frames[:, :, 128:, 64 * window : 64 * (window + 1)].float() / 255
        expected = (_model_row(frames, window).float() / 255 - true_row.float() / 255 + 1) / 2
        assert (error_row - expected).abs().max() <= 1 / 255 + 1e-6  # quantisation of each row
    assert model.policy.training  # the mode learn() left is restored
    assert model.replay_buffer.rng.bit_generator.state == rng_state  # the replay is only read


def test_open_loop_with_full_context_is_the_posterior_reconstruction(model, batch):
    th.manual_seed(1)
    full = open_loop_prediction(model, batch, context=T, n=2)
    th.manual_seed(1)
    world_model = model.policy.world_model
    with th.no_grad():
        embed = world_model.embed({"obs": batch.obs["obs"][:, :2]})
        post = world_model.rssm.observe(embed, batch.action[:, :2], batch.is_first[:, :2]).post
        reconstruction = to_uint8(decode_image(world_model, post.feat(), "obs"))  # (T, 2, C, H, W)
    for window in range(2):
        assert th.equal(_model_row(full, window), reconstruction[:, window])
    th.manual_seed(1)
    open_loop = open_loop_prediction(model, batch, context=3, n=2)
    # The same draws up to the context, then the prior alone: the first 3 frames agree, the rest do not.
    assert th.equal(open_loop[:3], full[:3])
    assert not th.equal(_model_row(open_loop, 0)[3:], _model_row(full, 0)[3:])
    assert th.equal(open_loop[:, :, :64], full[:, :, :64])


def test_open_loop_prediction_refuses_bad_arguments(model, batch):
    with pytest.raises(ValueError, match=r"context must be in \[1, 8\]"):
        open_loop_prediction(model, batch, context=0)
    with pytest.raises(ValueError, match=r"context must be in \[1, 8\]"):
        open_loop_prediction(model, batch, context=T + 1)
    with pytest.raises(ValueError, match=r"n must be in \[1, 4\]"):
        open_loop_prediction(model, batch, n=5)


def test_vector_only_models_are_refused_clearly(vector_model):
    with pytest.raises(ValueError, match="observes no images"):
        image_key(vector_model)
    with pytest.raises(ValueError, match="observes no images"):
        imagined_rollout(vector_model, vector_model.observation_space.sample())
    with pytest.raises(ValueError, match="observes no images"):
        vector_model.learn(10, callback=OpenLoopVideoCallback())


def test_image_key_of_a_dict_observation():
    model = DreamerV2.from_preset("debug", "MultiInputPolicy", ImageEnv(dict_obs=True), seed=0)
    assert image_key(model) == "image"
    dream = imagined_rollout(model, ImageEnv(dict_obs=True).reset(seed=0)[0], horizon=3, seed=0)
    assert dream.frames.shape == (4, 64, 64, 3)


def test_imagined_rollout(model):
    observation, _ = ImageEnv().reset(seed=0)
    torch_state = th.get_rng_state()
    dream = imagined_rollout(model, observation, horizon=10, seed=0)
    assert th.equal(th.get_rng_state(), torch_state)  # draws happen on a forked generator
    assert dream.frames.shape == (11, 64, 64, 3) and dream.frames.dtype == th.uint8
    assert dream.action.shape == (11, 3) and th.equal(dream.action[0], th.zeros(3))
    th.testing.assert_close(dream.action[1:].sum(-1), th.ones(10))  # one-hot actions (straight-through: sample + p - p)
    assert dream.reward.shape == dream.cont.shape == (11,)
    assert dream.cont[0] == 1 and ((dream.cont >= 0) & (dream.cont <= 1)).all()
    again = imagined_rollout(model, observation, horizon=10, seed=0)
    assert all(th.equal(a, b) for a, b in zip(dream, again))
    with pytest.raises(ValueError, match="horizon"):
        imagined_rollout(model, observation, horizon=0)


def test_real_vs_imagined(model):
    frames = real_vs_imagined(model, ImageEnv(), steps=30, context=5, seed=0)
    assert frames.shape == (21, 64, 3 * 64, 3) and frames.dtype == th.uint8  # ImageEnv ends after 20 steps
    first, _ = ImageEnv().reset(seed=0)
    assert (frames[0, :, :64].numpy() == first).all()  # the real column is the env's observations
    assert th.equal(frames, real_vs_imagined(model, ImageEnv(), steps=30, context=5, seed=0))
    assert real_vs_imagined(model, ImageEnv(), steps=6, context=10, seed=0).shape == (7, 64, 192, 3)
    with pytest.raises(ValueError, match="differ from the model's"):
        real_vs_imagined(model, ImageEnv(continuous=True), steps=3)


def test_as_rgb():
    gray = th.randint(0, 255, (2, 1, 4, 4), dtype=th.uint8)
    assert th.equal(as_rgb(gray, 1), gray.expand(2, 3, 4, 4))
    rgb = th.zeros(2, 4, 4, 3, dtype=th.uint8)
    assert as_rgb(rgb, -1) is rgb


class VideoCapture(KVWriter):
    """An SB3 output format that keeps every Video it is given, with its exclusions."""

    def __init__(self):
        self.videos: list[tuple[str, Video, tuple[str, ...]]] = []

    def write(self, key_values, key_excluded, step=0):
        self.videos += [(k, v, key_excluded[k]) for k, v in key_values.items() if isinstance(v, Video)]


@pytest.mark.parametrize("channels", [3, 1])
def test_open_loop_video_callback_records_a_video(channels):
    th.manual_seed(0)
    model = DreamerV2.from_preset("debug", "CnnPolicy", ImageEnv(channels=channels), seed=0)
    capture = VideoCapture()
    model.set_logger(Logger(None, [capture]))
    model.learn(200, callback=OpenLoopVideoCallback(log_freq=100, context=3, n=2, fps=5))
    model.logger.dump(model.num_timesteps)
    assert capture.videos, "no video was recorded"
    key, video, excluded = capture.videos[-1]
    assert key == "world_model/open_loop" and video.fps == 5
    assert set(excluded) == {"stdout", "log", "json", "csv"}
    assert video.frames.shape == (1, T, 3, 3 * 64, 2 * 64) and video.frames.dtype == th.uint8  # grayscale as RGB


def test_open_loop_video_callback_checks_its_context():
    model = DreamerV2.from_preset("debug", "CnnPolicy", ImageEnv(), seed=0)
    with pytest.raises(ValueError, match="sequence_length"):
        model.learn(1, callback=OpenLoopVideoCallback(context=T + 1))


@pytest.mark.skipif(not tensorboard_can_write_videos(), reason="torch's add_video needs moviepy<2 (moviepy.editor)")
def test_open_loop_video_reaches_tensorboard(model, tmp_path):
    from stable_baselines3.common.logger import configure
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    callback = OpenLoopVideoCallback(n=2)
    callback.init_callback(model)
    logger = configure(str(tmp_path), ["tensorboard"])
    logger.record("world_model/open_loop", callback.video(), exclude=("stdout", "log", "json", "csv"))
    logger.dump(0)
    logger.close()
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    assert "world_model/open_loop" in events.Tags()["images"]


def test_open_loop_video_callback_warns_when_tensorboard_cannot_write_videos(tmp_path, monkeypatch):
    from stable_baselines3.common.logger import configure

    from sb3_dreamer.dreamer import callbacks

    monkeypatch.setattr(callbacks, "tensorboard_can_write_videos", lambda: False)
    model = DreamerV2.from_preset("debug", "CnnPolicy", ImageEnv(), seed=0)
    model.set_logger(configure(str(tmp_path), ["tensorboard"]))
    with pytest.warns(UserWarning, match="moviepy<2"):
        OpenLoopVideoCallback().init_callback(model)


@pytest.fixture
def registered_env():
    gym.register(ENV_ID, entry_point=ImageEnv)
    yield ENV_ID
    gym.registry.pop(ENV_ID)


@pytest.mark.parametrize("safe", [False, True])
def test_cli_writes_both_gifs(model, registered_env, tmp_path, safe):
    model.save(tmp_path / "model.zip")
    out = tmp_path / "dreams"
    argv = ["--model", str(tmp_path / "model.zip"), "--env", registered_env, "--steps", "12", "--out", str(out)]
    assert main(argv + ["--safe"] * safe) == out
    for name in ("real_vs_model", "dream"):
        gif = out / f"{name}.gif"
        assert gif.read_bytes()[:6] == b"GIF89a"


def test_cli_refuses_a_vector_only_model(vector_model, tmp_path, capsys):
    vector_model.save(tmp_path / "model.zip")
    with pytest.raises(SystemExit):
        main(["--model", str(tmp_path / "model.zip"), "--env", "CartPole-v1", "--out", str(tmp_path)])
    assert "observes no images" in capsys.readouterr().err
