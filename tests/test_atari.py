"""The paper's Atari protocol (sb3_dreamer.envs.atari) against its specification."""

import gymnasium as gym
import numpy as np
import pytest

import sb3_dreamer  # noqa: F401  (registers the ids)
from sb3_dreamer.envs.atari import FRAMES_PER_STEP, MAX_EPISODE_STEPS, PAPER_GAMES, ale_name, env_id, make_atari

pytest.importorskip("ale_py")
pytest.importorskip("cv2")


def test_every_paper_game_has_an_id_and_names_map_to_ale():
    assert len(PAPER_GAMES) == 55
    for game in PAPER_GAMES:
        assert env_id(game) in gym.registry, game
    assert ale_name("atari_james_bond") == "Jamesbond"
    assert ale_name("up_n_down") == "UpNDown"
    assert ale_name("ms_pacman") == "MsPacman"
    assert ale_name("Pong") == "Pong" and env_id("pong") == "sb3_dreamer/Pong-v0"


def test_pong_matches_the_protocol():
    env = gym.make("sb3_dreamer/Pong-v0")
    assert env.observation_space == gym.spaces.Box(0, 255, (64, 64, 1), np.uint8)
    assert env.action_space == gym.spaces.Discrete(18)
    assert env.spec is not None and env.spec.max_episode_steps == MAX_EPISODE_STEPS == 108_000 // FRAMES_PER_STEP
    assert env.get_wrapper_attr("action_repeat") == 4
    ale = env.unwrapped.ale
    assert ale.getFloat("repeat_action_probability") == pytest.approx(0.25)
    assert env.unwrapped._frameskip == 1  # the emulator steps single frames; repeat and max-pool are ours
    obs, info = env.reset(seed=0)
    assert obs.shape == (64, 64, 1) and obs.dtype == np.uint8
    assert 1 <= info["episode_frame_number"] <= 30  # no-op start
    start = info["episode_frame_number"]
    for step in range(1, 6):
        obs, reward, terminated, truncated, info = env.step(0)
        assert info["episode_frame_number"] == start + step * FRAMES_PER_STEP
    assert isinstance(reward, float)


def test_minimal_action_set_is_one_argument_away():
    assert make_atari("pong", full_action_space=False).action_space == gym.spaces.Discrete(6)


def test_losing_a_life_is_not_a_terminal():
    env = make_atari("breakout")
    env.reset(seed=0)
    start_lives = env.unwrapped.ale.lives()
    for _ in range(2_000):
        _, _, terminated, _, _ = env.step(env.action_space.sample())
        if 0 < env.unwrapped.ale.lives() < start_lives:
            assert not terminated
            return
        assert not terminated
    pytest.fail("the random policy should lose a life in 2,000 steps of Breakout")


def test_the_episode_cap_truncates():
    env = make_atari("pong", max_episode_steps=50)
    env.reset(seed=0)
    for step in range(1, 51):
        _, _, terminated, truncated, _ = env.step(0)
        assert truncated == (step == 50) and not terminated


def test_unknown_game_names_the_choices():
    with pytest.raises(ValueError, match="paper games: alien"):
        make_atari("pongg")


def test_frames_per_step_is_read_from_the_env():
    from stable_baselines3.common.env_util import make_vec_env

    from sb3_dreamer.dreamer.dreamer import frames_per_step

    assert frames_per_step(make_vec_env("sb3_dreamer/Pong-v0", n_envs=1)) == 4
    assert frames_per_step(make_vec_env("CartPole-v1", n_envs=1)) == 1
