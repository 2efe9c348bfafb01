"""DreamerV2 learning DMC from pixels beside the paper's published curves: ``cartpole-balance``, then
``walker-walk``, each to 100k frames at the ``dmc_vision`` preset with the whole update graphed, as far as the
wall-clock budget goes.

    python benchmarks/gpu/dmc_learn.py --out $OUT                     # on a lent GPU (see benchmarks/gpu/README.md)
    python benchmarks/gpu/dmc_learn.py --quick --device cpu --out /tmp/dmc_quick   # a smoke run on a CPU

Each task trains one seed with ``n_envs`` DMC envs rendering 64x64 frames in parallel (one update per 5 agent
steps, as the reference's ``train_every: 5``: ``train_freq`` counts vector steps, so ``n_envs`` updates each
time) and is evaluated every ``--eval-every`` frames on ``--eval-episodes`` fresh episodes run in parallel with
``deterministic=True``. Rows are appended to ``curves.csv`` as they come (``kind`` ``eval`` or ``train``: the
training episodes' returns), so a run cut short keeps what it measured; ``summary.json`` and ``dmc_learn.png``
(ours against the published median and min-max of 5 seeds, danijar/dreamerv2's ``scores/``) are rewritten
after each evaluation. The published runs have a point every 30k frames: cartpole-balance's mean is 803 at 90k
frames (median 769) and, interpolated at 100k, 854 (median 834); walker-walk's 408 at 90k (median 385) and 430 at
100k (median 408).
"""

import argparse
import csv
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch as th

sys.path.insert(0, str(Path(__file__).parents[2]))

from stable_baselines3.common.callbacks import BaseCallback  # noqa: E402

from benchmarks import published  # noqa: E402
from sb3_dreamer import DreamerV2  # noqa: E402

ACTION_REPEAT = 2
FIELDS = ("task", "seed", "kind", "frames", "return_mean", "return_std", "episodes", "updates", "wall_s", "device")


def dmc_model(task: str, n_envs: int, device: str, precision: str, graph: bool, seed: int, quick: bool) -> DreamerV2:
    """The ``dmc_vision`` agent on ``n_envs`` pixel envs of ``task``, one update per 5 agent steps."""
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import SubprocVecEnv

    from sb3_dreamer.envs.dmc import make_dmc

    env = make_vec_env(make_dmc, n_envs=n_envs, seed=seed, env_kwargs={"task": task}, vec_env_cls=SubprocVecEnv)
    settings: dict[str, Any] = dict(train_freq=5, gradient_steps=n_envs, stats_window_size=10_000)
    if quick:  # a few small updates
        settings.update(learning_starts=200, pretrain_steps=1, batch_size=2, sequence_length=8)
    return DreamerV2.from_preset("dmc_vision", "CnnPolicy", env, device=device, seed=seed, mixed_precision=precision,
                                 cuda_graph=graph, **settings)  # fmt: skip


class Curve(BaseCallback):
    """Evaluate every ``every`` agent steps, add each evaluation and each finished training episode to ``out``,
    and stop the learn at ``deadline`` (``time.perf_counter()``)."""

    def __init__(self, task: str, seed: int, eval_env, every: int, episodes: int, deadline: float, out: "Results"):  # noqa: ANN001
        super().__init__()
        self.task, self.seed, self.eval_env, self.every, self.episodes = task, seed, eval_env, every, episodes
        self.deadline, self.out = deadline, out
        self.next_eval, self.start = every, time.perf_counter()

    def _row(self, kind: str, returns: list[float]) -> dict[str, Any]:
        return {"task": self.task, "seed": self.seed, "kind": kind, "frames": ACTION_REPEAT * self.num_timesteps,
                "return_mean": float(np.mean(returns)), "return_std": float(np.std(returns)), "episodes": len(returns),
                "updates": self.model._n_updates, "wall_s": round(time.perf_counter() - self.start, 1),
                "device": self.out.device}  # fmt: skip

    def _on_step(self) -> bool:
        for info in self.locals.get("infos", []):
            if "episode" in info:
                self.out.add(self._row("train", [info["episode"]["r"]]))
        if self.num_timesteps >= self.next_eval:
            from stable_baselines3.common.evaluation import evaluate_policy

            self.next_eval += self.every
            returns, _ = evaluate_policy(
                self.model, self.eval_env, self.episodes, deterministic=True, return_episode_rewards=True
            )
            self.out.add(self._row("eval", returns))
            self.out.refresh()
            print(f"{self.task} {ACTION_REPEAT * self.num_timesteps} frames: {np.mean(returns):.1f}", flush=True)
        return time.perf_counter() < self.deadline


class Results:
    """``curves.csv`` (appended row by row), ``summary.json`` and ``dmc_learn.png`` in ``out``."""

    def __init__(self, out: Path, device: str, frames: int):
        self.dir, self.device, self.frames = out, device, frames
        self.csv = out / "curves.csv"
        self.rows: list[dict[str, Any]] = []

    def add(self, row: dict[str, Any]) -> None:
        new = not self.csv.exists()
        with self.csv.open("a", newline="") as file:
            writer = csv.DictWriter(file, FIELDS)
            if new:
                writer.writeheader()
            writer.writerow(row)
        self.rows.append(row)

    def summary(self) -> dict[str, Any]:
        summary: dict[str, Any] = {"device": self.device, "date": time.strftime("%Y-%m-%d"), "tasks": {}}
        for task in dict.fromkeys(row["task"] for row in self.rows):
            evals = [row for row in self.rows if row["task"] == task and row["kind"] == "eval"]
            reference = published.dmc(task)
            last = evals[-1] if evals else None
            summary["tasks"][task] = {
                "frames_reached": last["frames"] if last else 0,
                "last_eval_return": last["return_mean"] if last else None,
                "published_there": reference.at(last["frames"]) if last else None,
                f"published_at_{self.frames}": reference.at(self.frames),
                "evals": [(row["frames"], round(row["return_mean"], 1)) for row in evals],
                "updates": last["updates"] if last else 0,
                "wall_s": last["wall_s"] if last else 0,
            }
        return summary

    def refresh(self) -> None:
        (self.dir / "summary.json").write_text(json.dumps(self.summary(), indent=2) + "\n")
        plot(self.rows, self.frames, self.dir / "dmc_learn.png", self.device)


def plot(rows: list[dict[str, Any]], frames: int, path: Path, device: str) -> None:
    """One panel per task: the published median and min-max of 5 seeds, our evaluations and training episodes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(dict.fromkeys(row["task"] for row in rows))
    fig, axes = plt.subplots(1, max(1, len(tasks)), figsize=(5.5 * max(1, len(tasks)), 4), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        reference = published.dmc(task)
        ax.plot(reference.frames, np.median(reference.returns, 0), "k--", label="DreamerV2 published (median of 5)")
        ax.fill_between(reference.frames, reference.returns.min(0), reference.returns.max(0), color="k", alpha=0.1)
        for kind, style in (("train", dict(ls="", marker=".", alpha=0.4)), ("eval", dict(marker="o"))):
            mine = [row for row in rows if row["task"] == task and row["kind"] == kind]
            ax.plot([r["frames"] for r in mine], [r["return_mean"] for r in mine], label=f"ours: {kind}", **style)
        ax.set(title=f"DMC {task} from pixels", xlabel="frames", ylabel="return", xlim=(0, 1.2 * frames), ylim=(0, 1000))
        ax.legend(loc="upper left", fontsize=8)
    fig.suptitle(f"sb3_dreamer dmc_vision on {device}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run_task(task: str, args: argparse.Namespace, deadline: float, out: Results) -> None:
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import SubprocVecEnv

    from sb3_dreamer.envs.dmc import make_dmc

    model = dmc_model(task, args.n_envs, args.device, args.precision, args.cuda_graph, args.seed, args.quick)
    eval_env = make_vec_env(make_dmc, n_envs=args.eval_episodes, seed=10_000 + args.seed, env_kwargs={"task": task},
                            vec_env_cls=SubprocVecEnv)  # fmt: skip
    every = args.eval_every // ACTION_REPEAT
    callback = Curve(task, args.seed, eval_env, every, args.eval_episodes, deadline, out)
    try:
        model.learn(args.frames // ACTION_REPEAT, callback=callback)
    finally:
        model.env.close()
        eval_env.close()
        out.refresh()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=["cartpole-balance", "walker-walk"])
    parser.add_argument("--frames", type=int, default=100_000, help="per task (action repeat 2: half as many agent steps)")
    parser.add_argument("--total-s", type=float, default=540.0, help="wall-clock budget of all tasks together")
    parser.add_argument("--n-envs", type=int, default=8)
    parser.add_argument("--eval-every", type=int, default=10_000, help="frames between evaluations")
    parser.add_argument("--eval-episodes", type=int, default=8, help="in parallel, one per env (as many as --n-envs: "
                        "the graphed acting step keeps its batch size)")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cuda" if th.cuda.is_available() else "cpu")
    parser.add_argument("--precision", default="bf16", choices=["no", "bf16", "fp16"], help="mixed_precision")
    parser.add_argument("--no-cuda-graph", dest="cuda_graph", action="store_false", help="eager updates")
    parser.add_argument("--quick", action="store_true", help="tiny budgets and a short prefill: check that it runs")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "benchmarks/results/gpu/dmc_learn")))
    args = parser.parse_args()
    if args.quick:
        args.frames, args.eval_every, args.n_envs, args.eval_episodes = 800, 400, 2, 1
    args.cuda_graph = args.cuda_graph and args.device == "cuda"
    args.out.mkdir(parents=True, exist_ok=True)
    device = th.cuda.get_device_name() if args.device == "cuda" else platform.processor() or platform.machine()
    out = Results(args.out, device, args.frames)
    deadline = time.perf_counter() + args.total_s
    for task in args.tasks:
        if time.perf_counter() > deadline - 30:
            print(f"{task}: skipped, the budget is spent", flush=True)
            continue
        run_task(task, args, deadline, out)
    print(json.dumps(out.summary(), indent=2))


if __name__ == "__main__":
    main()
