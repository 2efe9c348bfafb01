"""Screen one change to the CartPole settings on one seed before spending a full benchmark on it.

    python benchmarks/cartpole_screen.py --seed 1 --steps 25000 --override '{"expl_noise": 0.1}'

Trains DreamerV2 with the classic benchmark's CartPole settings (``classic_control.DREAMER``) plus the JSON
overrides, and prints one JSON line per 5k steps with the mean of 10 deterministic evaluation episodes (the
benchmark's protocol, with its own evaluation seed). Seed 1 is the benchmark's hard seed: the current settings
evaluated 168, 313, 347, 500, 485 at 5k-25k there (session 2's, without ``normalize_obs`` and ``dynamics``:
148, 261, 246, 227, 291).
"""

import argparse
import json
import sys
import time
from pathlib import Path

import gymnasium as gym
import torch as th
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.evaluation import evaluate_policy

sys.path.insert(0, str(Path(__file__).parents[1]))

from benchmarks.classic_control import DREAMER  # noqa: E402
from sb3_dreamer import DreamerV2  # noqa: E402


class PrintEval(BaseCallback):
    """Every ``every`` steps: ``evaluate_policy`` (deterministic) on ``eval_env``, one JSON line printed."""

    def __init__(self, eval_env: gym.Env, every: int, header: dict):
        super().__init__()
        self.eval_env, self.every, self.header, self.start = eval_env, every, header, time.time()

    def _on_step(self) -> bool:
        if self.num_timesteps % self.every == 0:
            mean, _ = evaluate_policy(self.model, self.eval_env, 10, deterministic=True)
            row = {**self.header, "steps": self.num_timesteps, "eval": round(mean, 1), "s": round(time.time() - self.start)}
            print(json.dumps(row), flush=True)
        return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--steps", type=int, default=25_000)
    parser.add_argument("--override", default="{}", help="JSON of constructor arguments over the benchmark's")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    th.set_num_threads(args.threads)
    overrides = json.loads(args.override)
    eval_env = gym.make("CartPole-v1")
    eval_env.reset(seed=1000 + args.seed)
    model = DreamerV2("MlpPolicy", "CartPole-v1", seed=args.seed, **{**DREAMER[("dreamerv2", "CartPole-v1")], **overrides})
    model.learn(args.steps, callback=PrintEval(eval_env, 5_000, {"seed": args.seed, "override": overrides}))


if __name__ == "__main__":
    main()
