"""The sequence replay buffer of DreamerV2.

One FIFO stream per environment. Each stream stores observations once, in the order they were seen, with
the action that led to them, the reward received on arrival and the flags::

    stream:    x_0   x_1   x_2   x_T(terminal)   x'_0   x'_1 ...
    action:    0     a_0   a_1   a_{T-1}         0      a'_0
    reward:    0     r_1   r_2   r_T             0      r'_1
    is_first:  1     0     0     0               1      0
    terminal:  0     0     0     1 (unless truncated by a time limit)

Windows of length T are sampled from one stream and never cross the write position. Without
``prioritize_ends`` they are uniform and may cross episode boundaries (``is_first`` resets the latent there).
With it, a window that crosses the end of an episode is moved back to end there, as the reference's
``replay.prioritize_ends`` does: episode ends (the only steps where the discount head sees a termination)
are oversampled, and windows stay inside one episode where it is at least T long. Storage is allocated on
the first ``add``, so building an agent to call ``predict`` costs no memory.
"""

import pathlib
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces

from sb3_dreamer.common.type_aliases import SequenceBatch


class SequenceReplayBuffer:
    """:param buffer_size: capacity in transitions, over all environments.
    :param observation_space: Box or Dict (images channel first, uint8 kept as uint8).
    :param action_space: Discrete (stored as an index, returned one-hot) or Box (stored in [-1, 1]).
    :param n_envs: number of parallel environments (one stream each).
    :param device: where ``sample`` puts the batch.
    :param prioritize_ends: move windows that cross an episode end back to end there (see the module doc).
    :param seed: seed of the sampling generator.
    :param storage_dir: keep the arrays in memory-mapped ``.npy`` files in this folder instead of RAM (the OS
        pages them in and out, so resident memory stays bounded). The buffer then pickles as a pointer to the
        folder (``save_replay_buffer`` writes a few KiB; loading reopens the files).
    """

    def __init__(
        self,
        buffer_size: int,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        n_envs: int = 1,
        device: th.device | str = "cpu",
        prioritize_ends: bool = False,
        seed: int | None = None,
        storage_dir: str | None = None,
    ):
        self.storage_dir = storage_dir
        self.capacity = max(buffer_size // n_envs, 1)
        self.observation_space, self.action_space = observation_space, action_space
        self.n_envs, self.device, self.prioritize_ends = n_envs, th.device(device), prioritize_ends
        self.discrete = isinstance(action_space, spaces.Discrete)
        self.action_dim = int(action_space.n) if self.discrete else int(np.prod(action_space.shape))  # type: ignore[attr-defined, arg-type]
        self.rng = np.random.default_rng(seed)
        self.pos = np.zeros(n_envs, dtype=np.int64)  # next write index per stream
        self.count = np.zeros(n_envs, dtype=np.int64)  # valid entries per stream (<= capacity)
        self.needs_first = np.ones(n_envs, dtype=bool)
        self.storage: dict[str, np.ndarray] | None = None

    # --------------------------------------------------------------- storage

    def _obs_spaces(self) -> dict[str, spaces.Box]:
        if isinstance(self.observation_space, spaces.Dict):
            return dict(self.observation_space.spaces)  # type: ignore[arg-type]
        return {"obs": self.observation_space}  # type: ignore[dict-item]

    def _layout(self) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
        """Storage key -> (shape, dtype) of its (capacity, n_envs, ...) array."""
        shape = (self.capacity, self.n_envs)
        layout: dict[str, tuple[tuple[int, ...], np.dtype]] = {
            f"obs/{k}": (shape + s.shape, np.dtype(s.dtype)) for k, s in self._obs_spaces().items()
        }
        layout["action"] = (shape, np.dtype(np.int64)) if self.discrete else (shape + (self.action_dim,), np.dtype(np.float32))
        layout["reward"] = (shape, np.dtype(np.float32))
        layout["is_first"] = layout["is_terminal"] = (shape, np.dtype(bool))
        return layout

    def _file(self, key: str) -> pathlib.Path:
        return pathlib.Path(self.storage_dir) / f"{key.replace('/', '.')}.npy"  # type: ignore[arg-type]

    def _allocate(self) -> dict[str, np.ndarray]:
        if self.storage_dir is None:
            return {key: np.zeros(shape, dtype) for key, (shape, dtype) in self._layout().items()}
        folder = pathlib.Path(self.storage_dir)
        if any(self._file(key).exists() for key in self._layout()):
            raise ValueError(
                f"replay_dir {folder} already holds a replay (another run's, or an earlier one of this run): "
                "give each run its own empty folder, or delete the old files; to continue a run, load its "
                "saved buffer (load_replay_buffer / DreamerV2.resume), which reopens them."
            )
        folder.mkdir(parents=True, exist_ok=True)
        return {
            key: np.lib.format.open_memmap(self._file(key), mode="w+", dtype=dtype, shape=shape)
            for key, (shape, dtype) in self._layout().items()
        }

    def __getstate__(self) -> dict[str, Any]:
        """Pickle the rows written so far (not the whole reserved capacity), or, memory-mapped, only a pointer."""
        state = dict(self.__dict__)
        if self.storage is None:
            return state
        if self.storage_dir is not None:
            for array in self.storage.values():
                array.flush()  # type: ignore[attr-defined]
            state["storage"] = None  # a pointer to the folder, not a copy
            return state
        rows = self.capacity if (self.count >= self.capacity).any() else int(self.pos.max())
        state["storage"] = {key: array[:rows] for key, array in self.storage.items()}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if self.storage_dir is None and self.storage is not None and len(next(iter(self.storage.values()))) < self.capacity:
            written, self.storage = self.storage, self._allocate()
            for key, array in written.items():
                self.storage[key][: len(array)] = array
        if self.storage_dir is not None and self.storage is None and self.count.any():
            missing = [str(self._file(k)) for k in self._layout() if not self._file(k).exists()]
            if missing:
                raise FileNotFoundError(
                    f"The memory-mapped replay files are gone: {missing}. The saved buffer only points to them; "
                    "restore the folder, or continue without this replay (a fresh buffer)."
                )
            self.storage = {key: np.load(self._file(key), mmap_mode="r+") for key in self._layout()}

    def bytes_per_step(self) -> int:
        """Bytes one stored step takes: each observation once (uint8 kept), action, reward and two flags."""
        obs = sum(int(np.prod(s.shape)) * np.dtype(s.dtype).itemsize for s in self._obs_spaces().values())
        return obs + (8 if self.discrete else 4 * self.action_dim) + 4 + 2

    def nbytes(self) -> int:
        """Bytes of the stored steps (the arrays are reserved for the whole capacity, but the OS only backs the
        pages written so far, so this is what the buffer costs in RAM).
        """
        return self.size() * self.bytes_per_step()

    def size(self) -> int:
        """:return: number of stored entries over all streams."""
        return int(self.count.sum())

    @property
    def full(self) -> bool:
        return bool((self.count == self.capacity).all())

    def _write(self, env: int, obs: dict[str, np.ndarray], action: Any, reward: float, first: bool, terminal: bool) -> None:
        assert self.storage is not None
        i = self.pos[env]
        for key, value in obs.items():
            self.storage[f"obs/{key}"][i, env] = value
        self.storage["action"][i, env] = action
        self.storage["reward"][i, env] = reward
        self.storage["is_first"][i, env] = first
        self.storage["is_terminal"][i, env] = terminal
        self.pos[env] = (i + 1) % self.capacity
        self.count[env] = min(self.count[env] + 1, self.capacity)

    def add(
        self,
        obs: np.ndarray | dict[str, np.ndarray],
        next_obs: np.ndarray | dict[str, np.ndarray],
        action: np.ndarray,
        reward: np.ndarray,
        done: np.ndarray,
        infos: list[dict[str, Any]],
    ) -> None:
        """Store one vectorised step (SB3's ``ReplayBuffer.add`` signature).

        :param obs: (n_envs, ...) observations the actions were taken in; written only where a stream
            starts an episode (after a reset).
        :param next_obs: (n_envs, ...) observations the actions led to, as returned by ``VecEnv.step``:
            where ``done``, the terminal observation is read from ``infos[i]["terminal_observation"]``.
        :param action: (n_envs,) indices or (n_envs, A) actions in [-1, 1].
        """
        if self.storage is None:
            self.storage = self._allocate()
        obs_d = obs if isinstance(obs, dict) else {"obs": obs}
        next_d = next_obs if isinstance(next_obs, dict) else {"obs": next_obs}
        zero_action = 0 if self.discrete else np.zeros(self.action_dim, np.float32)
        for env in range(self.n_envs):
            if self.needs_first[env]:
                self._write(env, {k: v[env] for k, v in obs_d.items()}, zero_action, 0.0, True, False)
                self.needs_first[env] = False
            info = infos[env] if env < len(infos) else {}
            arrived = {k: v[env] for k, v in next_d.items()}
            if done[env] and info.get("terminal_observation") is not None:
                terminal_obs = info["terminal_observation"]
                arrived = terminal_obs if isinstance(terminal_obs, dict) else {"obs": terminal_obs}
            terminal = bool(done[env]) and not info.get("TimeLimit.truncated", False)
            self._write(env, arrived, action[env], float(reward[env]), False, terminal)
            if done[env]:
                self.needs_first[env] = True

    def start_episodes(self) -> None:
        """Mark the next observation of every stream as the first of an episode (after ``env.reset()``)."""
        self.needs_first[:] = True

    # -------------------------------------------------------------- sampling

    def stored_observations(self, keys: list[str]) -> dict[str, np.ndarray]:
        """:param keys: observation keys. :return: key -> (size, *shape) every stored observation of it."""
        if self.storage is None:
            raise ValueError("The replay buffer is empty: nothing is stored yet.")
        return {
            key: np.concatenate([self.storage[f"obs/{key}"][: self.count[env], env] for env in range(self.n_envs)])
            for key in keys
        }

    def can_sample(self, seq_len: int) -> bool:
        return bool((self.count >= seq_len).any())

    def sample_indices(self, batch_size: int, seq_len: int) -> tuple[np.ndarray, np.ndarray]:
        """:return: time indices (T, B) and stream indices (B,) of ``batch_size`` windows."""
        eligible = np.flatnonzero(self.count >= seq_len)
        if len(eligible) == 0:
            raise ValueError(
                f"Cannot sample windows of length {seq_len}: the longest stream has {self.count.max()} entries. "
                "Collect more steps first (learning_starts) or reduce sequence_length."
            )
        envs = self.rng.choice(eligible, size=batch_size)
        count, pos = self.count[envs], self.pos[envs]
        offset = (self.rng.random(batch_size) * (count - seq_len + 1)).astype(np.int64)
        # The oldest valid entry is at pos when the stream is full, at 0 otherwise.
        oldest = np.where(count == self.capacity, pos, 0)
        if self.prioritize_ends:
            offset = self._end_aligned(offset, oldest, envs, seq_len)
        starts = (oldest + offset) % self.capacity
        time = (starts[None, :] + np.arange(seq_len)[:, None]) % self.capacity
        return time, envs

    def _end_aligned(self, offset: np.ndarray, oldest: np.ndarray, envs: np.ndarray, seq_len: int) -> np.ndarray:
        """Offsets moved back so that windows crossing an episode end finish at that end.

        :param offset: (B,) window starts relative to the oldest entry of each stream.
        """
        assert self.storage is not None
        time = (oldest + offset)[None, :] + np.arange(1, seq_len)[:, None]  # (T - 1, B) steps after the start
        first = self.storage["is_first"][time % self.capacity, envs[None, :]]
        crosses = first.any(0)
        k = first.argmax(0) + 1  # index in the window of the next episode's first step
        return np.where(crosses, np.maximum(offset - (seq_len - k), 0), offset)

    def sample(self, batch_size: int, seq_len: int) -> SequenceBatch:
        """:return: ``batch_size`` windows of ``seq_len`` steps, time-major (T, B, ...), on ``device``."""
        assert self.storage is not None, "The buffer is empty: call add() first."
        time, envs = self.sample_indices(batch_size, seq_len)
        data = {k: v[time, envs[None, :]] for k, v in self.storage.items()}

        def to(x: np.ndarray, dtype: th.dtype | None = None) -> th.Tensor:
            return th.as_tensor(x, device=self.device, dtype=dtype)

        action = to(data["action"])
        if self.discrete:
            action = th.nn.functional.one_hot(action, self.action_dim)
        obs = {k[4:]: to(v) for k, v in data.items() if k.startswith("obs/")}
        return SequenceBatch(
            obs=obs,
            action=action.float(),
            reward=to(data["reward"]),
            is_first=to(data["is_first"], th.float32),
            is_terminal=to(data["is_terminal"], th.float32),
        )
