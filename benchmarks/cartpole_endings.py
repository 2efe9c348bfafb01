"""Why CartPole episodes end while DreamerV2 learns: one run with the classic benchmark's settings, evaluated
every ``--every`` steps with 10 deterministic episodes (the benchmark's evaluation seeds), each recorded with its
length and how it ended: the pole's angle, the cart's position (|x| > 2.4) or the 500-step limit.

    python benchmarks/cartpole_endings.py --seed 4 --steps 30000 --threads 2 \
        --out benchmarks/results/classic/cartpole_endings_session17.jsonl

Session 17's run: every failing episode of the mid-run dip ended with the cart off the track, none with the pole.
"""

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch as th
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.env_util import make_vec_env

sys.path.insert(0, str(Path(__file__).parents[1]))  # run as a script: make `benchmarks` importable
from benchmarks.classic_control import DREAMER  # noqa: E402
from sb3_dreamer import DreamerV2  # noqa: E402

X_LIMIT = 2.4  # CartPole-v1 ends an episode when |x| exceeds this (or the pole passes 12 degrees)


def episode_ending(model: DreamerV2, env: gym.Env, seed: int) -> dict[str, Any]:
    """One deterministic episode: its length, how it ended (``angle``, ``position`` or ``limit``) and the
    mean |x| of the cart over it."""
    obs, _ = env.reset(seed=seed)
    state, start, xs = None, np.array([True]), []
    while True:
        action, state = model.policy.predict(obs, state, start, deterministic=True)
        start = np.array([False])
        obs, _, terminated, truncated, _ = env.step(int(action))
        xs.append(abs(float(obs[0])))
        if terminated or truncated:
            ending = "limit" if not terminated else ("position" if abs(obs[0]) > X_LIMIT else "angle")
            return {"length": len(xs), "ending": ending, "mean_abs_x": float(np.mean(xs))}


class EndingsEval(BaseCallback):
    """Every ``every`` env steps: ``episodes`` deterministic episodes on seeds ``10_000 + seed + i`` (the
    benchmark's evaluation env is seeded with ``10_000 + seed``), one JSON line each evaluation."""

    def __init__(self, every: int, episodes: int, seed: int, out: Path | None):
        super().__init__()
        self.every, self.episodes, self.seed, self.out = every, episodes, seed, out
        self.next_eval, self.start = every, time.time()

    def _on_step(self) -> bool:
        if self.num_timesteps < self.next_eval:
            return True
        self.next_eval += self.every
        env = gym.make("CartPole-v1")
        runs = [episode_ending(self.model, env, 10_000 + self.seed + i) for i in range(self.episodes)]
        env.close()
        row = {
            "seed": self.seed,
            "step": self.num_timesteps,
            "return_mean": float(np.mean([r["length"] for r in runs])),
            "endings": dict(Counter(r["ending"] for r in runs)),
            "mean_abs_x": round(float(np.mean([r["mean_abs_x"] for r in runs])), 3),
            "lengths": [r["length"] for r in runs],
            "wall_s": round(time.time() - self.start),
        }
        print(json.dumps(row), flush=True)
        if self.out:
            with self.out.open("a") as file:
                file.write(json.dumps(row) + "\n")
        return True


class SaveAt(BaseCallback):
    """Save the model as ``save_dir/model_<step>.zip`` once the run passes each of ``steps``
    (for ``cartpole_probe.py``)."""

    def __init__(self, steps: list[int], save_dir: Path):
        super().__init__()
        self.steps, self.save_dir = sorted(steps), save_dir

    def _on_step(self) -> bool:
        while self.steps and self.num_timesteps >= self.steps[0]:
            self.save_dir.mkdir(parents=True, exist_ok=True)
            self.model.save(self.save_dir / f"model_{self.steps.pop(0)}.zip")
        return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algo", default="dreamerv2", help="the benchmark's settings (classic_control.DREAMER)")
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--steps", type=int, default=30_000)
    parser.add_argument("--every", type=int, default=2_500)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, help="JSON-lines file to append each evaluation to")
    parser.add_argument("--override", default="{}", help="JSON of constructor arguments over the benchmark's")
    parser.add_argument("--save-at", type=int, nargs="*", default=[], help="steps to save the model at")
    parser.add_argument("--save-dir", type=Path, default=Path("cartpole_models"), help="where --save-at saves")
    args = parser.parse_args()
    if (args.algo, "CartPole-v1") not in DREAMER:
        parser.error(f"--algo {args.algo!r} has no CartPole settings; choose one of {sorted({a for a, _ in DREAMER})}")
    th.set_num_threads(args.threads)
    env = make_vec_env("CartPole-v1", n_envs=1, seed=args.seed)
    settings = {**DREAMER[(args.algo, "CartPole-v1")], **json.loads(args.override)}
    model = DreamerV2("MlpPolicy", env, seed=args.seed, **settings)
    callbacks = [EndingsEval(args.every, 10, args.seed, args.out), SaveAt(args.save_at, args.save_dir)]
    model.learn(args.steps, callback=CallbackList(callbacks))


if __name__ == "__main__":
    main()
