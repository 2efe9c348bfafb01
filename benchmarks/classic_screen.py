"""Screen one change to the classic benchmark's DreamerV2 settings on one seed before spending a full benchmark on it.

    python benchmarks/classic_screen.py --seed 1 --steps 25000 --override '{"expl_noise": 0.1}'
    python benchmarks/classic_screen.py --task Pendulum-v1 --seed 0 --steps 8000 --override '{"imagination_starts": 8}'

Trains DreamerV2 with the benchmark's settings for the task (``classic_control.DREAMER``, entry ``--algo``) plus
the JSON overrides, evaluated as the benchmark does (``PeriodicEval``: 10 deterministic episodes every 5k CartPole /
2k Pendulum steps, on the benchmark's evaluation seed), a line printed per evaluation; with ``--out``, one JSON
line per screen is appended there at the end. CartPole's seed 1 is the benchmark's hard seed: the session-5
settings evaluated 168, 313, 347, 500, 485 at 5k-25k there (session 2's, without ``normalize_obs`` and
``dynamics``: 148, 261, 246, 227, 291).
"""

import argparse
import json
import sys
import time
from pathlib import Path

import torch as th
from stable_baselines3.common.env_util import make_vec_env

sys.path.insert(0, str(Path(__file__).parents[1]))

from benchmarks.classic_control import DREAMER, TASKS, PeriodicEval  # noqa: E402
from sb3_dreamer import DreamerV2  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="CartPole-v1", choices=sorted(TASKS))
    parser.add_argument("--algo", default="dreamerv2", help="the benchmark's settings to start from")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--steps", type=int, default=25_000)
    parser.add_argument("--override", default="{}", help="JSON of constructor arguments over the benchmark's")
    parser.add_argument("--label", help="name of the screen in its rows (default: the override)")
    parser.add_argument("--threads", type=int, default=1, help="1: the benchmark's layout (--jobs 2 on 2 cores)")
    parser.add_argument("--out", type=Path, help="JSON-lines file to append the screen's result to")
    args = parser.parse_args()
    if (args.algo, args.task) not in DREAMER:
        parser.error(f"--algo {args.algo!r} has no {args.task} settings; choose one of {sorted({a for a, _ in DREAMER})}")
    th.set_num_threads(args.threads)
    overrides = json.loads(args.override)
    env = make_vec_env(args.task, n_envs=1, seed=args.seed)
    model = DreamerV2("MlpPolicy", env, seed=args.seed, **{**DREAMER[(args.algo, args.task)], **overrides})
    eval_env = make_vec_env(args.task, n_envs=1, seed=10_000 + args.seed)  # as classic_control.run_one
    rows: list[dict] = []
    tag = {"algo": args.label or json.dumps(overrides), "task": args.task, "seed": args.seed}
    start = time.time()
    model.learn(args.steps, callback=PeriodicEval(eval_env, TASKS[args.task]["eval_every"], 10, rows, tag))
    result = {**tag, "base": args.algo, "override": overrides, "threads": args.threads, "steps": args.steps,
              "updates": model._n_updates, "wall_s": round(time.time() - start),
              "evals": {int(r["step"]): round(float(r["return_mean"]), 1) for r in rows}}  # fmt: skip
    print(json.dumps(result), flush=True)
    if args.out:
        with args.out.open("a") as file:
            file.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
