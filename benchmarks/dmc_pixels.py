"""DreamerV2 from pixels on a DeepMind Control task of the paper (64x64 renders, action repeat 2), plotted
over the published DreamerV2 curve of that task (``cartpole-balance``: 803 at 90k frames).

    MUJOCO_GL=egl python benchmarks/dmc_pixels.py --frames 90000            # as far as time allows on a CPU
    MUJOCO_GL=egl python benchmarks/dmc_pixels.py --task cup-catch          # any of the paper's 20 tasks
    MUJOCO_GL=egl python benchmarks/dmc_pixels.py --preset dmc_vision        # the full size (GPU)

Results go to ``benchmarks/results/dmc_pixels/<task>/`` (``curve.csv``, ``curve.png``, ``summary.json``).

On a CPU the full ``dmc_vision`` size costs ~10 s an update, so the default is the reduced pixel preset
``SMALL_PIXELS`` below. The curve is the return of every training episode (the stochastic policy, as the
agent collects), written to ``curve.csv`` as episodes end, so a run cut short keeps what it reached; at the
end a deterministic evaluation is added to ``summary.json``.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch as th
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy

sys.path.insert(0, str(Path(__file__).parents[1]))  # run as a script: make `benchmarks` importable

from benchmarks import published  # noqa: E402
from sb3_dreamer import PRESETS, DreamerV2  # noqa: E402
from sb3_dreamer.envs.dmc import PAPER_TASKS, make_dmc  # noqa: E402

HERE = Path(__file__).parent

# dmc_vision with smaller networks and batch, so that an update takes a fraction of a second on 2 CPU cores.
SMALL_PIXELS: dict[str, Any] = {
    **PRESETS["dmc_vision"],
    "cnn_depth": 16,
    "deter_size": 128,
    "hidden_size": 128,
    "stoch_size": 16,
    "stoch_classes": 16,
    "mlp_layers": 2,
    "mlp_units": 200,
    "batch_size": 16,
    "sequence_length": 32,
    "pretrain_steps": 100,
    "buffer_size": 100_000,
}


class EpisodeLog(BaseCallback):
    """Append every finished training episode (frames, return, wall time) to a CSV file."""

    def __init__(self, path: Path, action_repeat: int):
        super().__init__()
        self.path, self.action_repeat, self.start = path, action_repeat, time.time()

    def _on_step(self) -> bool:
        for info in self.locals["infos"]:
            if "episode" in info:
                row = {"frames": self.num_timesteps * self.action_repeat, "return": info["episode"]["r"],
                       "updates": self.model._n_updates, "wall_s": round(time.time() - self.start, 1)}  # fmt: skip
                pd.DataFrame([row]).to_csv(self.path, mode="a", header=not self.path.exists(), index=False)
                print(f"frames {row['frames']}: return {row['return']:.1f} ({row['wall_s']:.0f}s)", flush=True)
        return True


def plot(curve: pd.DataFrame, out: Path, label: str, task: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs, ys = published.dmc(task)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(xs, np.median(ys, 0), color="gray", label=f"published DreamerV2 (median of {len(ys)} seeds)")
    ax.fill_between(xs, ys.min(0), ys.max(0), color="gray", alpha=0.2)
    ax.plot(curve["frames"], curve["return"], ".", alpha=0.4, label=f"ours, {label}: training episodes")
    if len(curve) >= 5:
        ax.plot(curve["frames"], curve["return"].rolling(5, min_periods=1).mean(), label="ours, mean of 5 episodes")
    ax.set(xlabel="environment frames", ylabel="episode return", title=f"DMC {task} from pixels",
           xlim=(0, max(200_000, curve["frames"].max() * 1.1)))  # fmt: skip
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "curve.png", dpi=100)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="cartpole-balance", choices=PAPER_TASKS)
    parser.add_argument("--frames", type=int, default=90_000)
    parser.add_argument("--preset", default="small_pixels", choices=["small_pixels", "dmc_vision"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--eval-episodes", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", type=Path, default=None, help="default: results/dmc_pixels/<task>")
    parser.add_argument("--plot-only", action="store_true", help="redraw the plot from curve.csv (e.g. after a cut run)")
    args = parser.parse_args()
    args.out = args.out or HERE / "results" / "dmc_pixels" / args.task
    if args.plot_only:
        curve = pd.read_csv(args.out / "curve.csv")
        plot(curve, args.out, args.preset, args.task)
        frames = int(curve["frames"].max())
        summary = {
            "task": f"dmc {args.task}, 64x64 pixels, action repeat 2", "preset": args.preset, "cut_short": True,
            "frames": frames, "updates": int(curve["updates"].max()), "train_wall_s": float(curve["wall_s"].max()),
            "episodes": len(curve), "training_returns": curve["return"].round(1).tolist(),
            "last5_training_returns_mean": round(float(curve["return"].tail(5).mean()), 1),
            "published_dreamerv2_median_at_frames": published.dmc(args.task).median_logged_by(frames),
        }  # fmt: skip
        if not (args.out / "summary.json").exists() or json.loads((args.out / "summary.json").read_text()).get("cut_short"):
            (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
        there = summary["published_dreamerv2_median_at_frames"]
        print(f"{len(curve)} episodes to {frames} frames; published median there: {there}")
        return
    os.environ.setdefault("MUJOCO_GL", "egl")
    th.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    curve_path = args.out / "curve.csv"
    curve_path.unlink(missing_ok=True)
    hyperparams = SMALL_PIXELS if args.preset == "small_pixels" else PRESETS["dmc_vision"]
    action_repeat = 2
    env = make_vec_env(lambda: make_dmc(args.task, action_repeat=action_repeat), n_envs=1, seed=args.seed)
    model = DreamerV2("CnnPolicy", env, seed=args.seed, device=args.device, **hyperparams)
    start = time.time()
    try:
        model.learn(args.frames // action_repeat, callback=EpisodeLog(curve_path, action_repeat))
    except KeyboardInterrupt:  # a run cut short (Ctrl-C, SIGINT) is still evaluated and saved
        print("interrupted: evaluating and saving the agent as it is", flush=True)
    model.save(args.out / "model.zip")
    train_s = time.time() - start
    eval_env = make_vec_env(lambda: make_dmc(args.task, action_repeat=action_repeat), n_envs=1, seed=1000)
    mean, std = evaluate_policy(model, eval_env, n_eval_episodes=args.eval_episodes, deterministic=True)
    curve = pd.read_csv(curve_path)
    summary = {
        "task": f"dmc {args.task}, 64x64 pixels, action repeat 2",
        "preset": args.preset,
        "hyperparameters": {k: v for k, v in hyperparams.items() if not callable(v)},
        "frames": model.num_timesteps * action_repeat,
        "updates": model._n_updates,
        "train_wall_s": round(train_s, 1),
        "device": str(model.device),
        "final_eval_return_mean": round(float(mean), 1),
        "final_eval_return_std": round(float(std), 1),
        "last5_training_returns_mean": round(float(curve["return"].tail(5).mean()), 1),
        "published_dreamerv2_median_at_frames": published.dmc(args.task).median_logged_by(model.num_timesteps * action_repeat),
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    plot(curve, args.out, args.preset, args.task)
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
