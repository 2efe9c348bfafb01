"""The MiniGrid example's learning curve on a CPU: ``examples/minigrid_doorkey.py`` (env and overrides of the
reference's example) with the networks shrunk so that an update takes a fraction of a second.

    python benchmarks/minigrid_doorkey.py --steps 100000 --threads 1

The return of every training episode is appended to ``results/minigrid_doorkey/curve.csv`` as it ends (a run
cut short keeps what it reached); ``--plot-only`` redraws ``curve.png`` and ``summary.json`` from it. The
reward is 1 - 0.9 * steps / 360 on reaching the goal (behind a locked door, the key elsewhere), else 0; a
random policy succeeds in ~8 % of episodes (mean return 0.04).
"""

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch as th
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy

sys.path.insert(0, str(Path(__file__).parents[1]))  # run as a script: make `benchmarks` and `examples` importable

from benchmarks.dmc_pixels import EpisodeLog  # noqa: E402
from examples.minigrid_doorkey import OVERRIDES, make_env  # noqa: E402
from sb3_dreamer import PRESETS, DreamerV2  # noqa: E402

OUT = Path(__file__).parent / "results" / "minigrid_doorkey"

# crafter config + the example's overrides, networks as benchmarks/dmc_pixels.py's SMALL_PIXELS.
SMALL: dict[str, Any] = {
    **PRESETS["crafter"],
    **OVERRIDES,
    "cnn_depth": 16,
    "deter_size": 128,
    "hidden_size": 128,
    "stoch_size": 16,
    "stoch_classes": 16,
    "mlp_layers": 2,
    "mlp_units": 200,
    "sequence_length": 32,
    "buffer_size": 200_000,
}


def summarise(curve: pd.DataFrame, extra: dict[str, Any]) -> dict[str, Any]:
    """Success rate and mean return per 10k-step bin, and the last 100 episodes."""
    bins = (curve["frames"] // 10_000) * 10_000
    per_bin = curve.groupby(bins)["return"].agg(["mean", lambda r: float((r > 0).mean()), "count"])
    per_bin.columns = ["mean_return", "success_rate", "episodes"]
    last = curve.tail(100)
    return {
        **extra,
        "steps": int(curve["frames"].max()),
        "episodes": len(curve),
        "last100_mean_return": round(float(last["return"].mean()), 3),
        "last100_success_rate": round(float((last["return"] > 0).mean()), 3),
        "per_10k_steps": {int(k): {c: round(float(v), 3) for c, v in row.items()} for k, row in per_bin.iterrows()},
    }


def plot(curve: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(curve["frames"], curve["return"], ".", alpha=0.2, label="training episodes")
    ax.plot(curve["frames"], curve["return"].rolling(50, min_periods=1).mean(), label="mean of 50 episodes")
    success = (curve["return"] > 0).astype(float).rolling(50, min_periods=1).mean()
    ax.plot(curve["frames"], success, label="success rate, 50 episodes")
    ax.axhline(0.037, color="gray", ls="--", label="random policy, mean return")
    ax.set(xlabel="environment steps", ylabel="return / success rate", title="MiniGrid-DoorKey-6x6, DreamerV2 (CPU size)")
    ax.set_ylim(-0.02, 1.0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--eval-episodes", type=int, default=20)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--plot-only", action="store_true")
    args = parser.parse_args()
    curve_path = args.out / "curve.csv"
    extra = {"env": "MiniGrid-DoorKey-6x6-v0, RGB partial view 64x64", "hyperparameters": SMALL, "seed": args.seed}
    if args.plot_only:
        curve = pd.read_csv(curve_path)
        (args.out / "summary.json").write_text(json.dumps(summarise(curve, {**extra, "cut_short": True}), indent=1))
        plot(curve, args.out / "curve.png")
        return
    th.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    curve_path.unlink(missing_ok=True)
    model = DreamerV2("CnnPolicy", make_vec_env(make_env, n_envs=1, seed=args.seed), seed=args.seed, **SMALL)
    start = time.time()
    try:
        model.learn(args.steps, callback=EpisodeLog(curve_path, action_repeat=1))
    except KeyboardInterrupt:  # a run cut short (Ctrl-C, SIGINT) is still evaluated and saved
        print("interrupted: evaluating and saving the agent as it is", flush=True)
    model.save(args.out / "model.zip")
    returns, _ = evaluate_policy(
        model, make_vec_env(make_env, n_envs=1, seed=1000), args.eval_episodes, deterministic=True, return_episode_rewards=True
    )
    curve = pd.read_csv(curve_path)
    summary = summarise(curve, {
        **extra, "updates": model._n_updates, "train_wall_s": round(time.time() - start, 1),
        "eval_deterministic_mean_return": round(float(np.mean(returns)), 3),
        "eval_deterministic_success_rate": round(float(np.mean(np.array(returns) > 0)), 3),
    })  # fmt: skip
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
    plot(curve, args.out / "curve.png")
    print(json.dumps({k: v for k, v in summary.items() if k != "per_10k_steps"}, indent=1))


if __name__ == "__main__":
    main()
