"""Property-based checks (hypothesis, derandomized so runs repeat): ``predict`` over shapes and batch sizes,
and the replay buffer's windows over random episode structures.
"""

import numpy as np
import pytest
from gymnasium import spaces

from sb3_dreamer import DreamerV2
from sb3_dreamer.common.buffers import SequenceReplayBuffer
from tests.conftest import SpacesEnv

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

FUZZ = settings(max_examples=25, derandomize=True, deadline=None)


@pytest.fixture(scope="module")
def models() -> dict[str, DreamerV2]:
    vec = spaces.Box(-5, 5, (3,), np.float32)
    return {
        "discrete": DreamerV2.from_preset("debug", "MlpPolicy", SpacesEnv(vec, spaces.Discrete(4)), seed=0),
        "box": DreamerV2.from_preset("debug", "MlpPolicy", SpacesEnv(vec, spaces.Box(-2, 3, (2,), np.float32)), seed=0),
    }


@FUZZ
@given(kind=st.sampled_from(["discrete", "box"]), n=st.integers(1, 5), steps=st.integers(1, 3),
       scale=st.floats(0, 1e3), deterministic=st.booleans())  # fmt: skip
def test_predict_returns_valid_actions_and_states(models, kind, n, steps, scale, deterministic):  # noqa: ANN001
    model = models[kind]
    rng = np.random.default_rng(n)
    state, starts = None, np.ones(n, dtype=bool)
    for _ in range(steps):
        obs = (rng.uniform(-1, 1, (n, 3)) * scale).astype(np.float32)
        action, state = model.predict(obs, state=state, episode_start=starts, deterministic=deterministic)
        starts = rng.random(n) < 0.3
        assert action.shape == ((n,) if kind == "discrete" else (n, 2))
        assert all(model.action_space.contains(np.asarray(a, dtype=model.action_space.dtype)) for a in action)
        assert all(np.isfinite(part).all() and part.shape[0] == n for part in state)


@FUZZ
@given(lengths=st.lists(st.integers(1, 12), min_size=1, max_size=8), truncate=st.lists(st.booleans(), min_size=8, max_size=8),
       capacity=st.integers(8, 60), seq_len=st.integers(1, 6))  # fmt: skip
def test_buffer_windows_respect_episode_structure(lengths, truncate, capacity, seq_len):  # noqa: ANN001
    buffer = SequenceReplayBuffer(capacity, spaces.Box(-1, 1, (1,), np.float32), spaces.Discrete(3), seed=0)
    counter = 0.0
    for episode, length in enumerate(lengths):
        for t in range(length):
            done = t == length - 1
            obs, nxt = np.array([[counter]], np.float32), np.array([[counter + 1]], np.float32)
            info = {"terminal_observation": nxt[0], "TimeLimit.truncated": truncate[episode]} if done else {}
            buffer.add(obs, nxt, np.array([t % 3]), np.array([counter + 1], np.float32), np.array([done]), [info])
            counter += 1
        counter += 1000  # the next episode starts elsewhere, so a window joining two episodes would show it
    assert buffer.size() <= max(capacity, 1)
    if not buffer.can_sample(seq_len):
        return
    batch = buffer.sample(4, seq_len)
    obs, reward = batch.obs["obs"][..., 0].numpy(), batch.reward.numpy()
    is_first, is_terminal = batch.is_first.numpy().astype(bool), batch.is_terminal.numpy().astype(bool)
    for b in range(4):
        for t in range(1, seq_len):
            if not is_first[t, b]:  # inside an episode: consecutive observations, reward of arriving there
                assert obs[t, b] == obs[t - 1, b] + 1 and reward[t, b] == obs[t, b]
        assert not (is_terminal[:-1, b] & ~is_first[1:, b]).any()  # after a terminal comes a new episode
