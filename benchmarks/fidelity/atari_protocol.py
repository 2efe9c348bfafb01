"""Our Atari env (``sb3_dreamer/<Game>-v0``) against the reference's ``common.Atari`` wrapper (danijar/dreamerv2
2.2.0, MIT), step by step: frames, rewards, terminations, resets and no-op start counts, with sticky actions on
and off, for the same seed and action sequence.

The reference's wrapper needs the old ``gym`` API (``gym.envs.atari.AtariEnv``, 4-tuple steps, ``np_random.randint``)
and gym 0.21's ``AtariPreprocessing``, which today's Python / ale-py cannot install. So this script runs in the
project's venv and builds a stand-in ``gym`` module in ``sys.modules`` (nothing is installed, nothing edited):

- ``gym.wrappers.AtariPreprocessing``: gym 0.21.0's own source file, executed verbatim (``--gym021``; from the
  gym repository's tag ``v0.21.0``, ``gym/wrappers/atari_preprocessing.py``);
- ``gym.envs.atari.AtariEnv``: :class:`OldApiAtariEnv`, the old (gym 0.19) env interface over today's ALE
  (ale-py's ``AtariEnv`` with ``frameskip=1``: ``reset() -> obs``, ``step() -> (obs, reward, done, info)``,
  ``np_random.randint``, ``ale``, ``get_action_meanings``, ``_get_ram``);
- the reference's ``common/envs.py`` is executed from its installed file (``--ref-envs``) against that module.

Both sides therefore run the same emulator (today's ale-py) and differ only in the wrapper code. Seeding: ours
``env.reset(seed=s)`` seeds ale-py's two RNGs (the no-op count's numpy generator, ALE's sticky-action RNG) and
resets; the reference side gets the same seeding before its first ``reset()`` (:meth:`OldApiAtariEnv.seed`), so
the sticky-action draws and no-op counts can line up.

    .venv/bin/python benchmarks/fidelity/atari_protocol.py --golden tests/data/fidelity_atari_protocol.npz

Writes ``benchmarks/results/fidelity/atari_protocol.json`` (the per-case comparison) and, with ``--golden``, the
reference wrapper's outputs as a small compressed npz for ``tests/test_fidelity_atari_env.py``.
"""

import argparse
import json
import pathlib
import sys
import types
from typing import Any

import gymnasium
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results" / "fidelity"
REF_ENVS = pathlib.Path("/tmp/ref/lib/python3.11/site-packages/dreamerv2/common/envs.py")
GYM021 = pathlib.Path("/tmp/gym021/atari_preprocessing.py")
# name -> (sticky actions, noop_max); all with the full 18 actions, 64x64 grayscale, action repeat 4
CASES = {"sticky_off": (False, 30), "sticky_on": (True, 30)}


class _RandomState:
    """``np_random`` with the old RandomState method the gym 0.21 wrapper calls, on ale-py's Generator."""

    def __init__(self, generator: np.random.Generator):
        self.generator = generator

    def randint(self, low: int, high: int) -> int:
        return int(self.generator.integers(low, high))


class OldApiAtariEnv:
    """gym 0.19's ``gym.envs.atari.AtariEnv`` interface over today's ale-py env (``frameskip=1``)."""

    def __init__(self, game: str, obs_type: str = "image", frameskip: int = 1, repeat_action_probability: float = 0.0,
                 full_action_space: bool = False):  # fmt: skip
        from ale_py.env import AtariEnv  # noqa: PLC0415

        assert obs_type == "image" and frameskip == 1
        name = "".join(w.capitalize() for w in game.split("_")) if "_" in game or game.islower() else game
        self._env = AtariEnv(game=_snake(name), obs_type="rgb", frameskip=1,
                             repeat_action_probability=repeat_action_probability, full_action_space=full_action_space,
                             max_num_frames_per_episode=None)  # fmt: skip
        self.ale = self._env.ale
        self.action_space = self._env.action_space
        self.observation_space = self._env.observation_space
        self.spec = None
        self.unwrapped = self

    @property
    def np_random(self) -> _RandomState:
        return _RandomState(self._env.np_random)

    def seed(self, seed: int) -> None:
        """What ale-py's ``reset(seed=seed)`` does before its ``reset_game``."""
        self._env.seed_game(seed)
        self._env.load_game()

    def reset(self, **_: Any) -> np.ndarray:
        return self._env.reset()[0]

    def step(self, action: int) -> tuple[np.ndarray, float, bool, dict]:
        obs, reward, terminated, truncated, info = self._env.step(action)
        return obs, reward, terminated or truncated, info

    def get_action_meanings(self) -> list[str]:
        return self._env.get_action_meanings()

    def _get_ram(self) -> np.ndarray:
        return self.ale.getRAM()

    def close(self) -> None:
        self._env.close()


def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() and i else c.lower() for i, c in enumerate(name))


class _Wrapper:
    """Old gym's ``Wrapper``: attribute passthrough, ``reset``/``step`` delegate."""

    def __init__(self, env: Any):
        self.env = env
        self.action_space = env.action_space
        self.observation_space = env.observation_space

    def __getattr__(self, name: str) -> Any:
        return getattr(self.env, name)

    @property
    def unwrapped(self) -> Any:
        return self.env.unwrapped

    def close(self) -> None:
        self.env.close()


def old_gym(gym021: pathlib.Path) -> types.ModuleType:
    """A stand-in ``gym`` package with what the reference's ``Atari`` and gym 0.21's wrapper use."""
    gym = types.ModuleType("gym")
    gym.Wrapper = _Wrapper
    gym.spaces = gymnasium.spaces
    wrappers = types.ModuleType("gym.wrappers")
    wrappers.TimeLimit = object
    envs = types.ModuleType("gym.envs")
    atari = types.ModuleType("gym.envs.atari")
    atari.AtariEnv = OldApiAtariEnv
    registration = types.ModuleType("gym.envs.registration")
    registration.EnvSpec = lambda id: types.SimpleNamespace(id=id)  # noqa: A006
    gym.wrappers, gym.envs, envs.atari, envs.registration = wrappers, envs, atari, registration
    modules = {"gym": gym, "gym.spaces": gymnasium.spaces, "gym.wrappers": wrappers, "gym.envs": envs,
               "gym.envs.atari": atari, "gym.envs.registration": registration}  # fmt: skip
    sys.modules.update(modules)
    sys.modules.setdefault("cloudpickle", types.ModuleType("cloudpickle"))  # envs.py imports it (Async only)
    source = gym021.read_text()
    namespace: dict[str, Any] = {"__name__": "gym.wrappers.atari_preprocessing"}
    exec(compile(source, str(gym021), "exec"), namespace)  # gym 0.21.0's AtariPreprocessing, verbatim
    wrappers.AtariPreprocessing = namespace["AtariPreprocessing"]
    return gym


def reference_atari(ref_envs: pathlib.Path, gym021: pathlib.Path) -> type:
    old_gym(gym021)
    namespace: dict[str, Any] = {"__name__": "dreamerv2_common_envs"}
    exec(compile(ref_envs.read_text(), str(ref_envs), "exec"), namespace)
    return namespace["Atari"]


def _noops(ale: Any) -> int:
    return int(ale.getEpisodeFrameNumber())  # frames since the emulator's reset: one per no-op (frameskip 1)


def run_reference(atari_cls: type, game: str, sticky: bool, noops: int, seed: int, actions: np.ndarray) -> dict:
    env = atari_cls(game, action_repeat=4, size=(64, 64), grayscale=True, noops=noops, life_done=False,
                    sticky=sticky, all_actions=True)  # fmt: skip
    inner = env._env.env  # OldApiAtariEnv
    inner.seed(seed)
    out: dict[str, list] = {"obs": [], "reward": [], "done": [], "noops": []}
    obs = env.reset()
    out["obs"].append(obs["image"])
    out["noops"].append(_noops(inner.ale))
    for a in actions:
        step = env.step({"action": int(a)})
        out["obs"].append(step["image"])
        out["reward"].append(step["reward"])
        out["done"].append(step["is_terminal"])
        if step["is_last"]:
            out["obs"].append(env.reset()["image"])
            out["noops"].append(_noops(inner.ale))
    env.close()
    return out


def run_ours(game: str, sticky: bool, noops: int, seed: int, actions: np.ndarray) -> dict:
    """Our env on the same seed and actions (reset after a termination, as the reference's loop does): what
    ``gym.make("sb3_dreamer/<Game>-v0")`` builds, ``DreamerAtariEnv`` under a 27,000-step ``TimeLimit``, with the
    module loaded from its file (importing the ``sb3_dreamer`` package would import torch)."""
    import importlib.util  # noqa: PLC0415

    spec = importlib.util.spec_from_file_location("_sb3_dreamer_atari", ROOT / "sb3_dreamer" / "envs" / "atari.py")
    atari = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(atari)
    inner = atari.DreamerAtariEnv(game, repeat_action_probability=0.25 if sticky else 0.0, noop_max=noops)
    env = gymnasium.wrappers.TimeLimit(inner, atari.MAX_EPISODE_STEPS)
    ale = env.unwrapped.ale
    out: dict[str, list] = {"obs": [], "reward": [], "done": [], "noops": []}
    obs, _ = env.reset(seed=seed)
    out["obs"].append(obs)
    out["noops"].append(_noops(ale))
    for a in actions:
        obs, reward, terminated, truncated, _ = env.step(int(a))
        out["obs"].append(obs)
        out["reward"].append(reward)
        out["done"].append(terminated)
        if terminated or truncated:
            obs, _ = env.reset()
            out["obs"].append(obs)
            out["noops"].append(_noops(ale))
    env.close()
    return out


def as_arrays(out: dict) -> dict[str, np.ndarray]:
    return {
        "obs": np.stack(out["obs"]).astype(np.uint8),
        "reward": np.asarray(out["reward"], np.float32),
        "done": np.asarray(out["done"], bool),
        "noops": np.asarray(out["noops"], np.int32),
    }


def compare(ours: dict[str, np.ndarray], ref: dict[str, np.ndarray]) -> dict[str, Any]:
    n = min(len(ours["obs"]), len(ref["obs"]))
    diff = np.abs(ours["obs"][:n].astype(int) - ref["obs"][:n].astype(int)).reshape(n, -1).max(1)
    first = int(np.argmax(diff > 0)) if (diff > 0).any() else None
    return {
        "frames": [len(ours["obs"]), len(ref["obs"])],
        "frames_identical": bool(len(ours["obs"]) == len(ref["obs"]) and not diff.any()),
        "first_differing_frame": first,
        "max_pixel_diff": int(diff.max()),
        "rewards_equal": bool(np.array_equal(ours["reward"], ref["reward"])),
        "reward_sum": [float(ours["reward"].sum()), float(ref["reward"].sum())],
        "terminations_equal": bool(np.array_equal(ours["done"], ref["done"])),
        "terminal_steps": [np.flatnonzero(ours["done"]).tolist(), np.flatnonzero(ref["done"]).tolist()],
        "noop_counts": [ours["noops"].tolist(), ref["noops"].tolist()],
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="atari_protocol.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--game", default="Breakout")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ref-envs", type=pathlib.Path, default=REF_ENVS, help=f"default: {REF_ENVS}")
    parser.add_argument("--gym021", type=pathlib.Path, default=GYM021, help=f"default: {GYM021}")
    parser.add_argument("--golden", type=pathlib.Path, help="write the reference wrapper's outputs here (npz)")
    args = parser.parse_args()
    atari_cls = reference_atari(args.ref_envs, args.gym021)
    actions = np.random.default_rng(args.seed).integers(0, 18, args.steps)
    report: dict[str, Any] = {"game": args.game, "steps": args.steps, "seed": args.seed, "cases": {}}
    golden: dict[str, np.ndarray] = {"actions": actions.astype(np.int32)}
    for case, (sticky, noops) in CASES.items():
        ref = as_arrays(run_reference(atari_cls, args.game.lower(), sticky, noops, args.seed, actions))
        ours = as_arrays(run_ours(args.game, sticky, noops, args.seed, actions))
        report["cases"][case] = {"sticky": sticky, "noop_max": noops, **compare(ours, ref)}
        golden.update({f"{case}/{k}": v for k, v in ref.items()})
        print(case, json.dumps(report["cases"][case]))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "atari_protocol.json").write_text(json.dumps(report, indent=1) + "\n")
    if args.golden:
        np.savez_compressed(args.golden, **golden)
        meta = {"game": args.game, "seed": args.seed, "steps": args.steps, "cases": CASES,
                "source": "danijar/dreamerv2 2.2.0 common.Atari (MIT) with gym 0.21.0's AtariPreprocessing, "
                "over ale-py's AtariEnv (frameskip 1), via benchmarks/fidelity/atari_protocol.py"}  # fmt: skip
        args.golden.with_suffix(".json").write_text(json.dumps(meta, indent=1) + "\n")
        print(f"golden: {args.golden} ({args.golden.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
