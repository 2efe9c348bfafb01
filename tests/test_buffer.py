import numpy as np
import pytest
from gymnasium import spaces

from sb3_dreamer.common.buffers import SequenceReplayBuffer

OBS = spaces.Box(-np.inf, np.inf, (1,), np.float32)


def _step(buffer, obs, next_obs, action, reward, done, infos=None):
    n = buffer.n_envs
    buffer.add(
        np.asarray(obs, np.float32).reshape(n, 1),
        np.asarray(next_obs, np.float32).reshape(n, 1),
        np.asarray(action).reshape(n),
        np.asarray(reward, np.float32).reshape(n),
        np.asarray(done, bool).reshape(n),
        infos or [{} for _ in range(n)],
    )


def test_storage_is_lazy():
    buffer = SequenceReplayBuffer(2_000_000, spaces.Box(0, 255, (1, 64, 64), np.uint8), spaces.Discrete(4))
    assert buffer.storage is None and buffer.size() == 0


def test_stream_layout_flags_and_terminal_observation():
    buffer = SequenceReplayBuffer(100, OBS, spaces.Discrete(3))
    # Episode 1: 0 -> 1 -> 2 (terminal observation 2, true termination); VecEnv returns the reset obs 10.
    _step(buffer, 0, 1, 2, 0.5, False)
    _step(buffer, 1, 10, 1, 1.0, True, [{"terminal_observation": np.array([2.0], np.float32)}])
    # Episode 2: 10 -> 11 truncated by a time limit (terminal observation 11); reset obs 20.
    _step(buffer, 10, 20, 0, 2.0, True, [{"terminal_observation": np.array([11.0]), "TimeLimit.truncated": True}])
    _step(buffer, 20, 21, 1, 3.0, False)
    s = buffer.storage
    n = buffer.size()
    assert s["obs/obs"][:n, 0, 0].tolist() == [0, 1, 2, 10, 11, 20, 21]
    assert s["action"][:n, 0].tolist() == [0, 2, 1, 0, 0, 0, 1]
    assert s["reward"][:n, 0].tolist() == [0, 0.5, 1.0, 0, 2.0, 0, 3.0]
    assert s["is_first"][:n, 0].tolist() == [1, 0, 0, 1, 0, 1, 0]
    assert s["is_terminal"][:n, 0].tolist() == [0, 0, 1, 0, 0, 0, 0]  # truncation is not termination


def test_sample_windows_one_hot_and_time_major():
    buffer = SequenceReplayBuffer(100, OBS, spaces.Discrete(3), seed=0)
    for t in range(30):
        _step(buffer, t, t + 1, t % 3, t, False)
    batch = buffer.sample(batch_size=5, seq_len=4)
    assert batch.obs["obs"].shape == (4, 5, 1)
    assert batch.action.shape == (4, 5, 3) and batch.reward.shape == batch.is_first.shape == (4, 5)
    assert (batch.action.sum(-1) == 1).all()
    obs = batch.obs["obs"][..., 0]
    assert ((obs[1:] - obs[:-1]) == 1).all()  # consecutive steps of one stream


def test_wrap_around_never_crosses_write_position():
    buffer = SequenceReplayBuffer(10, OBS, spaces.Discrete(2), seed=0)
    for t in range(25):
        _step(buffer, t, t + 1, 0, 0.0, False)
    assert buffer.full and buffer.size() == 10
    stored = sorted(buffer.storage["obs/obs"][:, 0, 0].tolist())
    assert stored == list(range(16, 26))  # FIFO: the oldest entries were overwritten
    for _ in range(50):
        obs = buffer.sample(8, 4).obs["obs"][..., 0]
        assert ((obs[1:] - obs[:-1]) == 1).all()
        assert obs.min() >= 16


def test_streams_per_env_and_box_actions():
    space = spaces.Box(-1, 1, (2,), np.float32)
    buffer = SequenceReplayBuffer(100, OBS, space, n_envs=2, seed=0)
    for t in range(10):
        buffer.add(
            np.array([[t], [100 + t]], np.float32),
            np.array([[t + 1], [101 + t]], np.float32),
            np.full((2, 2), 0.5, np.float32),
            np.zeros(2, np.float32),
            np.zeros(2, bool),
            [{}, {}],
        )
    assert buffer.capacity == 50 and buffer.count.tolist() == [11, 11]
    batch = buffer.sample(16, 5)
    obs = batch.obs["obs"][..., 0]
    assert ((obs[1:] - obs[:-1]) == 1).all()  # never mixes the two envs
    assert batch.action.shape == (5, 16, 2)


def test_sample_before_enough_data_explains():
    buffer = SequenceReplayBuffer(100, OBS, spaces.Discrete(2))
    _step(buffer, 0, 1, 0, 0.0, False)
    with pytest.raises(ValueError, match="sequence_length"):
        buffer.sample(2, 50)


def test_prioritize_ends_moves_crossing_windows_to_the_episode_end():
    buffer = SequenceReplayBuffer(1000, OBS, spaces.Discrete(2), prioritize_ends=True, seed=0)
    value = 0
    for _ in range(6):  # six episodes of 20 transitions each (21 stream entries with the first observation)
        for t in range(20):
            done = t == 19
            info = [{"terminal_observation": np.array([value + 1], np.float32)}] if done else None
            _step(buffer, value, value + 1 if not done else -1, 0, 1.0, done, info)
            value += 1
        value += 1000
    ends = 0
    for _ in range(20):
        batch = buffer.sample(32, 8)
        assert (batch.is_first[1:] == 0).all()  # no window crosses into the next episode
        ends += int(batch.is_terminal[-1].sum())
    uniform = SequenceReplayBuffer(1000, OBS, spaces.Discrete(2), seed=0)
    uniform.storage, uniform.count, uniform.pos = buffer.storage, buffer.count, buffer.pos
    uniform_ends = sum(int(uniform.sample(32, 8).is_terminal[-1].sum()) for _ in range(20))
    assert ends > 3 * uniform_ends  # episode ends are oversampled


def test_buffer_reports_its_memory():
    from gymnasium import spaces as gym_spaces

    from sb3_dreamer.common.buffers import SequenceReplayBuffer

    image = gym_spaces.Box(0, 255, (1, 64, 64), np.uint8)
    buffer = SequenceReplayBuffer(1000, image, gym_spaces.Discrete(18))
    assert buffer.bytes_per_step() == 64 * 64 + 8 + 4 + 2  # one uint8 frame, action index, reward, two flags
    assert buffer.nbytes() == 0
    frame = np.zeros((1, 1, 64, 64), np.uint8)
    for _ in range(10):
        buffer.add(frame, frame, np.array([0]), np.array([0.0], np.float32), np.array([False]), [{}])
    assert buffer.nbytes() == buffer.size() * buffer.bytes_per_step()


def test_memory_mapped_storage_pickles_as_a_pointer(tmp_path):
    import pickle

    buffer = SequenceReplayBuffer(200, OBS, spaces.Discrete(3), n_envs=2, storage_dir=str(tmp_path / "replay"), seed=0)
    for t in range(40):
        _step(buffer, [t, -t], [t + 1, -t - 1], [t % 3, 1], [0.5, 1.0], [t % 9 == 8, False])
    assert all(isinstance(array, np.memmap) for array in buffer.storage.values())
    assert sorted(p.name for p in (tmp_path / "replay").iterdir()) == [
        "action.npy", "is_first.npy", "is_terminal.npy", "obs.obs.npy", "reward.npy",
    ]  # fmt: skip
    payload = pickle.dumps(buffer)
    assert len(payload) < 4096  # the folder, counters and generator, not the arrays
    restored = pickle.loads(payload)
    for key, value in buffer.storage.items():
        np.testing.assert_array_equal(restored.storage[key], value)
    np.testing.assert_array_equal(restored.sample(4, 8).obs["obs"], buffer.sample(4, 8).obs["obs"])  # same generator
    _step(restored, [0, 0], [1, 1], [0, 0], [0.0, 0.0], [False, False])
    assert restored.size() == buffer.size() + 2


def test_a_saved_buffer_holds_the_rows_written_not_the_capacity():
    import pickle

    image = spaces.Box(0, 255, (1, 64, 64), np.uint8)
    buffer = SequenceReplayBuffer(20_000, image, spaces.Discrete(4), n_envs=2, seed=0)
    frame = np.full((2, 1, 64, 64), 7, np.uint8)
    for _ in range(30):
        buffer.add(frame, frame, np.array([1, 2]), np.zeros(2, np.float32), np.zeros(2, bool), [{}, {}])
    payload = pickle.dumps(buffer)
    assert len(payload) < 40 * 2 * 64 * 64 * 2  # ~31 rows x 2 streams of frames, not 10,000 rows
    restored = pickle.loads(payload)
    assert restored.storage["obs/obs"].shape == buffer.storage["obs/obs"].shape  # full capacity again
    for key, value in buffer.storage.items():
        np.testing.assert_array_equal(restored.storage[key], value)
    restored.add(frame, frame, np.array([0, 0]), np.zeros(2, np.float32), np.zeros(2, bool), [{}, {}])
    assert restored.size() == buffer.size() + 2
