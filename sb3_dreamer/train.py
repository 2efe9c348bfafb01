"""The main job: train DreamerV2 on a small task with a progress bar, TensorBoard logs, periodic evaluation,
checkpoints, the best and the final model and a learning-curve plot.

    python -m sb3_dreamer.train                          # CartPole-v1, tuned settings, until solved (5-10 min on a CPU)
    python -m sb3_dreamer.train --env Pendulum-v1 --steps 20000
    tensorboard --logdir runs/

The same text, plain, is ``python -m sb3_dreamer.train --help``.
"""

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch as th
from stable_baselines3.common.callbacks import BaseCallback, CheckpointCallback, EvalCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy

from sb3_dreamer import PRESETS, DreamerV2

# The tuned settings of hyperparams/dreamerv2.yml (rl-zoo3's default file for dreamerv2), without its
# n_timesteps and policy, on DreamerV2's constructor defaults as rl-zoo3 applies them. Written out here because
# the base install has no yaml reader; tests/test_train_entry.py checks that they match the yml.
TUNED: dict[str, dict[str, Any]] = {
    "CartPole-v1": dict(
        learning_starts=1000, train_freq=10, normalize_obs=True, actor_grad="dynamics", imagination_starts=8,
        imagination_horizon=45, batch_size=16, sequence_length=32, deter_size=128, hidden_size=128, stoch_size=16,
        stoch_classes=16, mlp_layers=2, mlp_units=128, learning_rate=3e-4, actor_lr=1e-4, critic_lr=1e-4, gamma=0.99,
        reward_transform="identity", kl_scale=1.0, kl_free=1.0, discount_scale=5.0, buffer_size=100_000,
    ),
    "Pendulum-v1": dict(
        learning_starts=1000, train_freq=10, imagination_starts=8, batch_size=16, sequence_length=32, deter_size=128,
        hidden_size=128, stoch_size=16, stoch_classes=16, mlp_layers=2, mlp_units=128, learning_rate=1e-3,
        actor_lr=3e-4, critic_lr=3e-4, prioritize_ends=False, gamma=0.99, reward_transform="identity", kl_scale=1.0,
        kl_free=1.0, discount_scale=1.0, buffer_size=100_000,
    ),
}  # fmt: skip

DESCRIPTION = """\
The main job: train DreamerV2 on a small task with a progress bar, TensorBoard logs, periodic evaluation,
checkpoints, the best and the final model and a learning-curve plot (with the task's solved line).

By default it trains CartPole-v1 with the tuned settings of hyperparams/dreamerv2.yml and stops at the first
evaluation at or above the task's solved threshold (475 for CartPole-v1) that a second evaluation over
--final-eval-episodes fresh episodes confirms, its mean less two standard errors at or above the threshold
(--no-stop-when-solved trains all --steps). At the end it
evaluates the final model and the best one (best_model.zip, kept by the periodic evaluation) over
--final-eval-episodes deterministic episodes and says which file to use.

One torch thread (the default) is the fastest for these small models: on a 2-core CPU shared with other
processes, CartPole trained at 41 env steps/s with 1 thread and 8 with 2. Raise --threads only on an otherwise
idle machine with many cores.

examples:
  python -m sb3_dreamer.train                                  # CartPole-v1 until solved, at most 30k steps
  python -m sb3_dreamer.train --env Pendulum-v1 --steps 20000
  python -m sb3_dreamer.train --preset classic --hyperparams '{"train_freq": 10}'
  tensorboard --logdir runs/tb
"""


def plot_evaluations(
    npz_path: Path | None,
    png_path: Path,
    title: str,
    solved_at: float | None = None,
    final: tuple[int, float, float] | None = None,
) -> None:
    """Plot EvalCallback's ``evaluations.npz`` (mean and std of the eval returns) against env steps.

    :param npz_path: the evaluations; missing or ``None``: only ``final`` is drawn.
    :param solved_at: the task's solved threshold, drawn as a dashed line.
    :param final: (env steps, mean, std) of the final model's evaluation, drawn as a point with an error bar.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    if npz_path is not None and Path(npz_path).is_file():
        data = np.load(npz_path)
        steps, returns = data["timesteps"], data["results"]
        mean, std = returns.mean(1), returns.std(1)
        ax.plot(steps, mean, marker=".", label="DreamerV2 (deterministic eval)")
        ax.fill_between(steps, mean - std, mean + std, alpha=0.3)
    if final is not None:
        ax.errorbar([final[0]], [final[1]], yerr=[final[2]], fmt="o", color="black", capsize=3, label="final model")
    if solved_at is not None:
        ax.axhline(solved_at, color="green", linestyle="--", label=f"solved ({solved_at:g})")
    ax.set(xlabel="environment steps", ylabel="episode return", title=title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)


def _settings(preset: str, env_id: str) -> tuple[str, dict[str, Any]]:
    """The settings' name and constructor arguments."""
    if preset != "tuned":
        return preset, dict(PRESETS[preset])
    if env_id in TUNED:
        return f"tuned ({env_id} in hyperparams/dreamerv2.yml)", dict(TUNED[env_id])
    print(f"note: no tuned settings for {env_id} (only {', '.join(TUNED)}); using the classic preset")
    return "classic", dict(PRESETS["classic"])


def _evaluate(model: DreamerV2, env_id: str, episodes: int, seed: int) -> tuple[float, float]:
    env = make_vec_env(env_id, n_envs=1, seed=seed)
    mean, std = evaluate_policy(model, env, n_eval_episodes=episodes, deterministic=True)
    env.close()
    return float(mean), float(std)


class ConfirmSolved(BaseCallback):
    """EvalCallback's ``callback_after_eval``: when a periodic evaluation reaches ``solved_at``, evaluate again
    over ``episodes`` fresh episodes and stop training only if that confirms it: the mean less two standard
    errors at or above ``solved_at``. (A 5-episode mean at the threshold is often a policy that drops a few of
    20 episodes; and one CartPole model scored 484.6 and 458.2 on two sets of 20 episodes.) Also notes when
    EvalCallback saved a new best.
    """

    parent: EvalCallback

    def __init__(self, env_id: str, solved_at: float | None, episodes: int, seed: int, stop: bool):
        super().__init__()
        self.env_id, self.solved_at, self.episodes, self.seed, self.stop = env_id, solved_at, episodes, seed, stop
        self.best_step: int | None = None
        self._best = -np.inf
        self.confirmations: list[dict[str, float]] = []
        self.solved = False

    def _on_step(self) -> bool:
        if self.parent.best_mean_reward > self._best:  # EvalCallback saved best_model.zip at this step
            self.best_step, self._best = self.num_timesteps, self.parent.best_mean_reward
        if not self.stop or self.solved_at is None or self.parent.last_mean_reward < self.solved_at:
            return True
        mean, std = _evaluate(self.model, self.env_id, self.episodes, self.seed + len(self.confirmations))  # type: ignore[arg-type]
        lower = mean - 2 * std / float(np.sqrt(self.episodes))
        self.confirmations.append({"steps": self.num_timesteps, "mean": mean, "std": std, "mean_less_2se": lower})
        solved = self.solved = bool(lower >= self.solved_at)
        verdict = "solved, stopping" if solved else "not yet, training on"
        print(f"Confirming at {self.num_timesteps:,} steps: {mean:.1f} +- {std:.1f} over {self.episodes} episodes, "
              f"less 2 standard errors {lower:.1f}: {verdict}")  # fmt: skip
        return not solved


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults in the help (none for options without one), the description's line breaks kept."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        return action.help if action.default is None else super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sb3_dreamer.train", description=DESCRIPTION, formatter_class=_Formatter)
    parser.add_argument("--env", default="CartPole-v1", help="Gymnasium env id")
    parser.add_argument(
        "--policy", default="MlpPolicy", choices=["MlpPolicy", "CnnPolicy", "MultiInputPolicy"], help="policy class"
    )
    parser.add_argument(
        "--preset",
        default="tuned",
        choices=["tuned", *sorted(PRESETS)],
        help="settings: 'tuned' is the --env entry of hyperparams/dreamerv2.yml (CartPole-v1, Pendulum-v1; "
        "the classic preset for other envs), the others are DreamerV2.from_preset's presets",
    )
    parser.add_argument("--steps", type=int, default=30_000, help="environment steps at most")
    parser.add_argument("--eval-freq", type=int, default=1_000, help="evaluate every this many env steps")
    parser.add_argument("--eval-episodes", type=int, default=5, help="episodes per periodic evaluation")
    parser.add_argument(
        "--final-eval-episodes", type=int, default=20, help="episodes of the final model's and best model's evaluation"
    )
    parser.add_argument(
        "--solved-at",
        type=float,
        default=None,
        help="solved threshold, for stopping and the plot; none given: the env's spec.reward_threshold (475 for CartPole-v1)",
    )
    parser.add_argument(
        "--stop-when-solved",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="stop at the first periodic evaluation at or above the solved threshold that --final-eval-episodes "
        "fresh episodes confirm (their mean less two standard errors at or above it)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the agent and the training env")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is fastest for the small presets)")
    parser.add_argument("--out", type=Path, default=Path("runs"), help="output folder")
    parser.add_argument(
        "--hyperparams", type=json.loads, default={}, help="JSON overrides of the settings, e.g. '{\"batch_size\": 8}'"
    )
    return parser


def main(argv: list[str] | None = None) -> Path:
    args = build_parser().parse_args(argv)
    th.set_num_threads(args.threads)
    start = time.perf_counter()

    run_dir = args.out / f"{args.env}_seed{args.seed}"
    run_dir.mkdir(parents=True, exist_ok=True)
    env = make_vec_env(args.env, n_envs=1, seed=args.seed)
    eval_env = make_vec_env(args.env, n_envs=1, seed=args.seed + 1000)
    spec = env.envs[0].spec  # type: ignore[attr-defined]
    solved_at = args.solved_at if args.solved_at is not None else getattr(spec, "reward_threshold", None)
    settings_name, settings = _settings(args.preset, args.env)
    settings = {"keep_host_memory": True, **settings, **args.hyperparams}  # a training process: malloc keeps its pages
    model = DreamerV2(
        args.policy, env, seed=args.seed, verbose=1, tensorboard_log=str(args.out / "tb"), **settings
    )  # fmt: skip
    confirm = ConfirmSolved(args.env, solved_at, args.final_eval_episodes, args.seed + 3000, args.stop_when_solved)
    evaluation = EvalCallback(
        eval_env,
        n_eval_episodes=args.eval_episodes,
        eval_freq=args.eval_freq,
        log_path=str(run_dir),
        best_model_save_path=str(run_dir),
        callback_after_eval=confirm,
        verbose=1,
    )
    callbacks = [
        evaluation,
        CheckpointCallback(save_freq=args.eval_freq * 2, save_path=str(run_dir / "checkpoints"), name_prefix="dreamer"),
    ]
    threads = f"{args.threads} torch thread" + "s" * (args.threads != 1)
    print(f"Training DreamerV2 on {args.env}, settings {settings_name}, {threads}, up to {args.steps:,} steps")
    model.learn(args.steps, callback=callbacks, progress_bar=True, log_interval=10, tb_log_name=f"{args.env}_seed{args.seed}")
    train_s = time.perf_counter() - start
    final_path = run_dir / "final_model.zip"
    model.save(final_path)

    # The closing evaluation: the final model, and the best one EvalCallback kept (if it evaluated at all).
    eval_seed = args.seed + 2000
    final_mean, final_std = _evaluate(model, args.env, args.final_eval_episodes, eval_seed)
    best_path = run_dir / "best_model.zip"
    best: dict[str, Any] | None = None
    if best_path.is_file():
        if confirm.best_step == model.num_timesteps:  # saved at the last step: the final model's weights
            best_mean, best_std = final_mean, final_std
        else:
            best_model = DreamerV2.load(best_path, device=model.device)
            best_mean, best_std = _evaluate(best_model, args.env, args.final_eval_episodes, eval_seed)
        best = {"path": str(best_path), "mean": best_mean, "std": best_std, "steps": confirm.best_step,
                "periodic_eval_mean": float(evaluation.best_mean_reward)}  # fmt: skip
    use = best_path if best is not None and best["mean"] > final_mean else final_path
    solved = None if solved_at is None else max(final_mean, best["mean"] if best else -np.inf) >= solved_at
    npz = run_dir / "evaluations.npz"
    png = run_dir / "learning_curve.png"
    plot_evaluations(npz, png, f"DreamerV2 on {args.env}", solved_at, (model.num_timesteps, final_mean, final_std))

    summary = {
        "env": args.env, "seed": args.seed, "settings": settings_name, "threads": args.threads,
        "steps": int(model.num_timesteps), "max_steps": args.steps, "stopped_when_solved": confirm.solved,
        "solved_at": solved_at, "solved": solved, "final_eval_episodes": args.final_eval_episodes,
        "confirmations": confirm.confirmations,
        "final": {"path": str(final_path), "mean": final_mean, "std": final_std}, "best": best,
        "use": str(use), "train_s": round(train_s, 1), "wall_s": round(time.perf_counter() - start, 1),
    }  # fmt: skip
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))

    n = args.final_eval_episodes
    print(
        f"\nTrained {model.num_timesteps:,} steps in {train_s:.0f} s"
        + (" (stopped: solved)" if summary["stopped_when_solved"] else "")
    )
    print(f"final model  {final_path}: {final_mean:.1f} +- {final_std:.1f} over {n} deterministic episodes")
    if best is not None:
        print(f"best model   {best_path}: {best['mean']:.1f} +- {best['std']:.1f} over {n} deterministic episodes "
              f"(periodic evaluation: {best['periodic_eval_mean']:.1f})")  # fmt: skip
    else:
        print(f"best model   none (no periodic evaluation: --eval-freq {args.eval_freq} > --steps {args.steps})")
    if solved_at is not None:
        print(f"solved threshold {solved_at:g}: " + ("reached" if solved else "not reached; train longer (--steps)"))
    print(f"Use {use}:  DreamerV2.load({str(use)!r})")
    print(f"Also in {run_dir}: checkpoints/, {png.name}" + (f", {npz.name}" if npz.is_file() else "") + ", summary.json")
    print(f"TensorBoard: tensorboard --logdir {args.out / 'tb'}")
    return run_dir


if __name__ == "__main__":
    main()
