"""The main job: train DreamerV2 on a small task with a progress bar, TensorBoard logs, periodic evaluation,
checkpoints, the final model and a learning-curve plot.

    python -m sb3_dreamer.train                          # CartPole-v1, classic preset, 10k steps, ~5 minutes on a CPU
    python -m sb3_dreamer.train --env Pendulum-v1 --steps 20000
    tensorboard --logdir runs/
"""

import argparse
import json
from pathlib import Path

import numpy as np
import torch as th
from stable_baselines3.common.callbacks import CheckpointCallback, EvalCallback
from stable_baselines3.common.env_util import make_vec_env

from sb3_dreamer import PRESETS, DreamerV2


def plot_evaluations(npz_path: Path, png_path: Path, title: str) -> None:
    """Plot EvalCallback's ``evaluations.npz`` (mean and std of the eval returns) against env steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = np.load(npz_path)
    steps, returns = data["timesteps"], data["results"]
    mean, std = returns.mean(1), returns.std(1)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(steps, mean, label="DreamerV2 (deterministic eval)")
    ax.fill_between(steps, mean - std, mean + std, alpha=0.3)
    ax.set(xlabel="environment steps", ylabel="episode return", title=title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="CartPole-v1", help="Gymnasium env id")
    parser.add_argument("--policy", default="MlpPolicy", choices=["MlpPolicy", "CnnPolicy", "MultiInputPolicy"])
    parser.add_argument("--preset", default="classic", choices=sorted(PRESETS))
    parser.add_argument("--steps", type=int, default=10_000, help="environment steps")
    parser.add_argument("--eval-freq", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--out", type=Path, default=Path("runs"), help="output folder")
    parser.add_argument("--hyperparams", type=json.loads, default={}, help="JSON overrides, e.g. '{\"batch_size\": 8}'")
    args = parser.parse_args(argv)
    th.set_num_threads(args.threads)

    run_dir = args.out / f"{args.env}_seed{args.seed}"
    run_dir.mkdir(parents=True, exist_ok=True)
    env = make_vec_env(args.env, n_envs=1, seed=args.seed)
    eval_env = make_vec_env(args.env, n_envs=1, seed=args.seed + 1000)
    model = DreamerV2.from_preset(
        args.preset, args.policy, env, seed=args.seed, verbose=1, tensorboard_log=str(args.out / "tb"), **args.hyperparams
    )
    callbacks = [
        EvalCallback(
            eval_env, n_eval_episodes=5, eval_freq=args.eval_freq, log_path=str(run_dir), best_model_save_path=str(run_dir)
        ),
        CheckpointCallback(save_freq=args.eval_freq * 2, save_path=str(run_dir / "checkpoints"), name_prefix="dreamer"),
    ]
    model.learn(args.steps, callback=callbacks, progress_bar=True, log_interval=10, tb_log_name=f"{args.env}_seed{args.seed}")
    model.save(run_dir / "final_model")
    plot_evaluations(run_dir / "evaluations.npz", run_dir / "learning_curve.png", f"DreamerV2 on {args.env}")
    print(f"Saved model, checkpoints, evaluations.npz and learning_curve.png to {run_dir}")
    print(f"TensorBoard: tensorboard --logdir {args.out / 'tb'}")
    return run_dir


if __name__ == "__main__":
    main()
