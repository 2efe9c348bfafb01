"""The SB3 contract, modelled on stable-baselines3's own tests, with the tiny ``debug`` preset."""

import io
import json
import zipfile

import numpy as np
import pandas as pd
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3.common.callbacks import BaseCallback, CheckpointCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import DummyVecEnv

from sb3_dreamer import PRESETS, DreamerV2
from tests.conftest import ImageEnv, SpacesEnv

DEBUG = PRESETS["debug"]


def _model(policy, env, **kwargs) -> DreamerV2:
    return DreamerV2(policy, env, **{**DEBUG, "seed": 0, **kwargs})


@pytest.mark.parametrize(
    ("policy", "env"),
    [
        ("MlpPolicy", "CartPole-v1"),
        ("MlpPolicy", "Pendulum-v1"),
        ("CnnPolicy", lambda: ImageEnv()),
        ("CnnPolicy", lambda: ImageEnv(channel_first=True, channels=1, continuous=True)),
        ("MultiInputPolicy", lambda: ImageEnv(dict_obs=True)),
    ],
    ids=["discrete-vector", "box-vector", "image-hwc", "image-chw-gray-box", "dict"],
)
def test_learn_predict_spaces(policy, env):
    vec = make_vec_env(env, n_envs=1, seed=0)
    model = _model(policy, vec)
    model.learn(120)
    assert model._n_updates > 0
    obs = vec.reset()
    action, state = model.predict(obs, deterministic=True)
    assert action.shape == (1, *vec.action_space.shape)
    assert vec.action_space.contains(action[0])
    deter, stoch, prev_action = state
    assert deter.shape == (1, DEBUG["deter_size"]) and stoch.shape == (1, DEBUG["stoch_size"], DEBUG["stoch_classes"])


def test_predict_single_and_batched_hwc_and_chw():
    model = _model("CnnPolicy", ImageEnv())
    env = ImageEnv()
    obs, _ = env.reset(seed=0)
    action, state = model.predict(obs)  # one HWC observation
    assert np.ndim(action) == 0 and state[0].shape[0] == 1
    batch = np.stack([obs] * 4)
    th.manual_seed(0)
    actions, state = model.predict(batch, deterministic=True)
    assert actions.shape == (4,) and state[0].shape[0] == 4
    chw = np.transpose(batch, (0, 3, 1, 2))
    th.manual_seed(0)
    actions_chw, _ = model.predict(chw, deterministic=True)
    assert np.array_equal(actions, actions_chw)


def test_predict_carries_state_and_resets_on_episode_start():
    model = _model("MlpPolicy", "CartPole-v1")
    obs = np.random.default_rng(0).normal(size=(2, 4)).astype(np.float32)
    _, state0 = model.predict(obs, deterministic=True)
    _, state1 = model.predict(obs, state=state0, episode_start=np.array([False, False]), deterministic=True)
    assert not np.allclose(state0[0], state1[0])
    _, reset = model.predict(obs, state=state1, episode_start=np.array([True, True]), deterministic=True)
    assert np.allclose(reset[0], state0[0], atol=1e-6)


def test_save_load_identical_predictions(tmp_path):
    model = _model("MlpPolicy", "CartPole-v1")
    model.learn(150)
    obs = model.get_env().reset()
    th.manual_seed(0)
    before = model.predict(obs, deterministic=True)
    model.save(tmp_path / "dreamer")
    loaded = DreamerV2.load(tmp_path / "dreamer", device="cpu")
    th.manual_seed(0)
    after = loaded.predict(obs, deterministic=True)
    assert np.array_equal(before[0], after[0])
    for a, b in zip(before[1], after[1]):
        np.testing.assert_allclose(a, b, atol=1e-6)
    assert loaded.replay_buffer.storage is None  # loading to predict allocates no replay memory
    assert loaded._n_updates == model._n_updates and loaded.config == model.config
    # Every .pth in the zip loads with weights_only=True.
    with zipfile.ZipFile(tmp_path / "dreamer.zip") as archive:
        names = [n for n in archive.namelist() if n.endswith(".pth")]
        assert {"policy.pth", "policy.model_optimizer.pth"} <= set(names)
        for name in names:
            th.load(io.BytesIO(archive.read(name)), weights_only=True)
    # Training continues after loading.
    loaded.set_env(make_vec_env("CartPole-v1", n_envs=1, seed=1))
    loaded.learn(100)


def test_get_set_parameters_round_trip():
    a, b = _model("MlpPolicy", "CartPole-v1", seed=0), _model("MlpPolicy", "CartPole-v1", seed=1)
    obs = np.zeros((1, 4), np.float32)
    b.set_parameters(a.get_parameters())
    assert np.array_equal(a.predict(obs, deterministic=True)[1][0], b.predict(obs, deterministic=True)[1][0])


def test_seed_determinism():
    def run() -> np.ndarray:
        model = _model("MlpPolicy", "CartPole-v1", seed=3)
        model.learn(150)
        return th.nn.utils.parameters_to_vector(model.policy.parameters()).detach().numpy()

    assert np.array_equal(run(), run())


def test_callbacks_and_checkpoint(tmp_path):
    class Count(BaseCallback):
        def __init__(self):
            super().__init__()
            self.calls = {"start": 0, "step": 0, "end": 0}

        def _on_training_start(self):
            self.calls["start"] += 1

        def _on_step(self):
            self.calls["step"] += 1
            return True

        def _on_training_end(self):
            self.calls["end"] += 1

    count = Count()
    checkpoint = CheckpointCallback(save_freq=48, save_path=str(tmp_path), name_prefix="dreamer")
    model = _model("MlpPolicy", "CartPole-v1")
    model.learn(96, callback=[count, checkpoint])  # a multiple of train_freq (8): SB3 collects whole chunks
    assert count.calls == {"start": 1, "step": 96, "end": 1}
    assert len(list(tmp_path.glob("dreamer_*_steps.zip"))) == 2


def test_callback_can_stop_training():
    class Stop(BaseCallback):
        def _on_step(self):
            return self.num_timesteps < 30

    model = _model("MlpPolicy", "CartPole-v1")
    model.learn(1000, callback=Stop())
    assert model.num_timesteps == 30


def test_evaluate_policy_with_two_envs():
    env = make_vec_env("CartPole-v1", n_envs=2, seed=0)
    model = _model("MlpPolicy", env)
    model.learn(100)
    assert model.replay_buffer.count.min() > 0  # one stream per env
    mean, std = evaluate_policy(model, env, n_eval_episodes=4, deterministic=True)
    assert np.isfinite(mean) and mean >= 8


def test_tensorboard_and_json_logs(tmp_path):
    model = _model("MlpPolicy", "CartPole-v1", tensorboard_log=str(tmp_path), verbose=0)
    model.learn(200, log_interval=1, tb_log_name="dreamer", progress_bar=True)
    run_dir = tmp_path / "dreamer_1"
    assert list(run_dir.glob("events.out.tfevents.*"))
    frame = pd.read_json(run_dir / "progress.json", lines=True)
    assert {"train/model_loss", "train/kl", "train/actor_loss", "train/critic_loss"} <= set(frame.columns)
    assert frame["train/model_loss"].notna().any()
    json.loads((run_dir / "progress.json").read_text().splitlines()[-1])
    last = frame.dropna(subset=["train/post_entropy"]).iloc[-1]
    max_entropy = model.config.stoch_size * np.log(model.config.stoch_classes)  # uniform latents
    for key in ("train/post_entropy", "train/prior_entropy"):
        assert 0 <= last[key] <= max_entropy + 1e-4, key
    assert 0 <= last["train/discount_acc"] <= 1 and last["train/reward_mae"] >= 0 and np.isfinite(last["train/imag_return"])


def test_learn_twice_without_reset_continues():
    model = _model("MlpPolicy", "CartPole-v1")
    model.learn(100)
    steps = model.num_timesteps
    model.learn(48, reset_num_timesteps=False)
    assert model.num_timesteps == steps + 48


@pytest.mark.parametrize("actor_grad", ["reinforce", "dynamics", "both"])
def test_actor_gradient_modes_update_only_their_networks(actor_grad):
    model = _model("MlpPolicy", "Pendulum-v1", actor_grad=actor_grad)
    model.learn(100)
    policy = model.policy
    batch = model.replay_buffer.sample(4, 8)
    post = model._updater.model_loss(batch).post
    policy.zero_grad(set_to_none=True)
    behavior = model._updater.behavior_loss(post, batch.is_terminal)
    behavior.actor_loss.backward()
    assert all(p.grad is None for p in policy.world_model.parameters())  # no gradient into the world model
    assert all(p.grad is None for p in policy.critic.parameters())
    assert all(p.grad is not None for p in policy.actor.parameters())
    assert all(p.requires_grad for p in policy.world_model.parameters())  # unfrozen afterwards
    behavior.critic_loss.backward()
    assert all(p.grad is not None for p in policy.critic.parameters())
    assert all(p.grad is None for p in policy.slow_critic.parameters())


def test_imagination_starts_imagines_from_the_last_states_of_each_window():
    model = _model("MlpPolicy", "Pendulum-v1", actor_grad="dynamics")
    model.learn(100)
    batch = model.replay_buffer.sample(4, 8)
    updater = model._updater
    post = updater.model_loss(batch).post
    th.manual_seed(0)
    sliced = updater.behavior_loss(post.map(lambda x: x[-3:]), batch.is_terminal[-3:])  # all of a 3-step window
    updater.config = model.config.replace(imagination_starts=3)
    th.manual_seed(0)
    last = updater.behavior_loss(post, batch.is_terminal)
    assert th.equal(last.actor_loss, sliced.actor_loss) and th.equal(last.critic_loss, sliced.critic_loss)
    updater.config = model.config.replace(imagination_starts=None)
    th.manual_seed(0)
    assert not th.equal(updater.behavior_loss(post, batch.is_terminal).critic_loss, sliced.critic_loss)


def test_slow_critic_hard_copy_every_n_updates():
    model = _model("MlpPolicy", "CartPole-v1", slow_target_update=3)
    model.learn(80)
    critic = th.nn.utils.parameters_to_vector(model.policy.critic.parameters())
    slow = th.nn.utils.parameters_to_vector(model.policy.slow_critic.parameters())
    copied_at = ((model._n_updates - 1) // 3) * 3
    assert (copied_at == model._n_updates - 1) == th.equal(critic, slow)


def test_bad_inputs_have_clear_errors():
    with pytest.raises(ValueError, match="ResizeObservation"):
        _model("CnnPolicy", DummyVecEnv([lambda: _WrongSize()]))
    with pytest.raises(ValueError, match="MlpPolicy expects a 1-D Box"):
        _model("MlpPolicy", ImageEnv())
    with pytest.raises(ValueError, match="actor_grad must be one of"):
        _model("MlpPolicy", "CartPole-v1", actor_grad="bogus")
    with pytest.raises(ValueError, match="Unknown preset"):
        DreamerV2.from_preset("nope", "MlpPolicy", "CartPole-v1")
    float_images = spaces.Box(0.0, 1.0, (64, 64, 3), np.float32)
    with pytest.raises(ValueError, match="takes uint8 images"):
        DreamerV2("CnnPolicy", SpacesEnv(float_images, spaces.Discrete(2)))
    with pytest.raises(ValueError, match=r"batch_size must be >= 1, got 0; gamma must be in \(0, 1\], got 1.5"):
        _model("MlpPolicy", "CartPole-v1", batch_size=0, gamma=1.5)
    with pytest.raises(ValueError, match="stoch_size must be an integer"):
        _model("MlpPolicy", "CartPole-v1", stoch_size=3.5)
    vector = spaces.Box(-1.0, 1.0, (3,), np.float32)
    with pytest.raises(ValueError, match="FlattenObservation"):
        DreamerV2("MlpPolicy", SpacesEnv(spaces.Tuple((vector, spaces.Discrete(2))), spaces.Discrete(2)))
    with pytest.raises(ValueError, match="fixed-size observations"):
        DreamerV2("MlpPolicy", SpacesEnv(spaces.Sequence(vector), spaces.Discrete(2)))
    for action_space in (spaces.MultiDiscrete([2, 3]), spaces.MultiBinary(3)):
        with pytest.raises(ValueError, match="one Discrete over the combinations"):
            DreamerV2("MlpPolicy", SpacesEnv(vector, action_space))


class _WrongSize(ImageEnv):
    def __init__(self):
        super().__init__()
        self.observation_space = spaces.Box(0, 255, (84, 84, 3), np.uint8)


def test_fp16_loss_scale_starts_low_enough_for_the_pixel_loss():
    # At PyTorch's default scale (65536) the decoder's bias gradient (a sum over every pixel) overflows fp16,
    # and the first ~13 updates were skipped while the scaler halved; found on an H100, reproduced on the CPU.
    model = _model("CnnPolicy", ImageEnv(), mixed_precision="fp16")
    model.learn(100)
    metrics = model.train_step(model.replay_buffer.sample(4, 8))
    assert all(th.isfinite(v).all() for v in metrics.values())
    assert model._updater.scaler.get_scale() == 1.0  # never lowered: no step overflowed


def test_bf16_autocast_trains_with_finite_losses():
    model = _model("CnnPolicy", ImageEnv(), mixed_precision="bf16")
    model.learn(100)
    metrics = model.train_step(model.replay_buffer.sample(4, 8))
    assert all(th.isfinite(v).all() for v in metrics.values())
    assert all(p.dtype == th.float32 for p in model.policy.parameters())  # weights stay fp32


def test_deterministic_predictions_repeat_and_sample_the_latent():
    """``deterministic=True`` (``eval_latent="hashed"``): the same observations and state give the same action and
    state, without seeding torch; the latent is still a sample (noise hashed from the input), not the mode."""
    model = _model("MlpPolicy", "CartPole-v1")
    model.learn(100)
    obs = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)
    runs = [model.predict(obs, deterministic=True) for _ in range(2)]
    assert np.array_equal(runs[0][0], runs[1][0])
    for a, b in zip(runs[0][1], runs[1][1]):
        assert np.array_equal(a, b)
    model.config = model.config.replace(eval_latent="mode")
    mode_stoch = model.predict(obs, deterministic=True)[1][1]
    assert not np.array_equal(mode_stoch, runs[0][1][1])  # some of 64 latents differ from the argmax
    model.config = model.config.replace(eval_latent="sample")
    assert not np.array_equal(model.predict(obs, deterministic=True)[1][1], model.predict(obs, deterministic=True)[1][1])
