"""Learning side by side: danijar/dreamerv2 2.2.0 and sb3_dreamer on CartPole-v1, same configuration, same budget,
same evaluation.

Each implementation runs its own training loop (the reference's ``train.py`` loop: ``Replay``, ``Driver``,
``CarryOverState(agent.train)``, one update every ``train_every`` steps after a random prefill; ours:
``DreamerV2.learn``) with one configuration, written once below in our constructor's names (``OURS``) and once in
the reference's ``configs.yaml`` keys (``REFERENCE``). Both are evaluated the reference's way (``mode='eval'``: the
posterior latent sampled, the actor's mode; ours ``eval_latent="sample"``, ``deterministic=True``) on the same
seeded episodes (episode ``i`` of an evaluation uses env seed ``10_000 + i``).

Why CartPole-v1 at this size (deter/hidden 128, 16x16 latents, MLPs 2x128, batch 16 x 32, horizon 45): both
implementations learn it within 20k steps, and a run of either takes about 25 minutes on one core of a 2-vCPU
machine, so three seeds of each fit in an afternoon; a pixel task at the paper's sizes does not fit this CPU.
What differs between the two sides is only what is not configuration: each one's replay sampling (the reference
draws an episode uniformly, then a sequence of it, concatenates sequences into windows and carries the RSSM
state from one batch into the next; ours draws windows uniformly over the stored steps and starts each from the
zero state) and each one's random streams. ``--impl reference_step_windows`` runs the reference's update on our
sampling (``StepWindows``), which separates the two.

Run each side in its own venv (TensorFlow never enters the project's), one run at a time per core::

    /tmp/ref/bin/python benchmarks/fidelity/learning.py --impl reference --seeds 0 1 2
    .venv/bin/python benchmarks/fidelity/learning.py --impl ours --seeds 0 1 2
    /tmp/ref/bin/python benchmarks/fidelity/learning.py --impl reference_step_windows --seeds 0 1 2 --steps 12000
    .venv/bin/python benchmarks/fidelity/learning.py --plot-only

Rows are appended to ``benchmarks/results/fidelity/learning/curves.csv`` after every evaluation; ``--plot-only``
writes ``summary.json`` and ``learning.png`` (mean and min-max band over seeds per implementation).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import pathlib
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results" / "fidelity" / "learning"
ENV_ID = "CartPole-v1"
EVAL_SEED = 10_000
FIELDS = ["impl", "seed", "step", "return_mean", "return_std", "episodes", "updates", "wall_s"]

# The configuration in our constructor's names ...
OURS: dict[str, Any] = dict(
    learning_starts=1000, train_freq=20, gradient_steps=1, batch_size=16, sequence_length=32, buffer_size=100_000,
    prioritize_ends=True, deter_size=128, hidden_size=128, stoch_size=16, stoch_classes=16, mlp_layers=2,
    mlp_units=128, norm="none", normalize_obs=False, pred_discount=True, reward_transform="identity", kl_scale=1.0,
    kl_balance=0.8, kl_free=1.0, kl_free_avg=True, discount_scale=5.0, reward_scale=1.0, gamma=0.99,
    return_lambda=0.95, imagination_horizon=45, imagination_starts=None, actor_grad="dynamics", actor_entropy=1e-3,
    actor_min_std=0.1, slow_target_update=100, slow_target_fraction=1.0, learning_rate=3e-4, actor_lr=1e-4,
    critic_lr=1e-4, adam_eps=1e-5, weight_decay=1e-6, grad_clip=100.0, eval_latent="sample",
)  # fmt: skip

# ... and in the reference's configs.yaml keys (applied over its ``defaults``).
_MLP = {"layers": 2, "units": 128, "act": "elu", "norm": "none"}
_OPT = {"opt": "adam", "eps": 1e-5, "clip": 100, "wd": 1e-6}
REFERENCE: dict[str, Any] = {
    "precision": 32, "jit": True, "prefill": 1000, "train_every": 20, "train_steps": 1, "pretrain": 1,
    "dataset": {"batch": 16, "length": 32},
    # minlen 1: CartPole's early episodes are shorter than the default 50 and would be skipped.
    "replay": {"capacity": 100_000, "ongoing": False, "minlen": 1, "maxlen": 32, "prioritize_ends": True},
    "rssm": {"ensemble": 1, "hidden": 128, "deter": 128, "stoch": 16, "discrete": 16, "act": "elu", "norm": "none",
             "std_act": "sigmoid2", "min_std": 0.1},
    "encoder": {"mlp_keys": "vector", "cnn_keys": "$^", "act": "elu", "norm": "none", "mlp_layers": [128, 128]},
    "decoder": {"mlp_keys": "vector", "cnn_keys": "$^", "act": "elu", "norm": "none", "mlp_layers": [128, 128]},
    "reward_head": {**_MLP, "dist": "mse"}, "discount_head": {**_MLP, "dist": "binary"},
    "actor": {**_MLP, "dist": "auto", "min_std": 0.1}, "critic": {**_MLP, "dist": "mse"},
    "pred_discount": True, "grad_heads": ["decoder", "reward", "discount"], "clip_rewards": "identity",
    "loss_scales": {"kl": 1.0, "reward": 1.0, "discount": 5.0, "proprio": 1.0},
    "kl": {"free": 1.0, "forward": False, "balance": 0.8, "free_avg": True},
    "discount": 0.99, "discount_lambda": 0.95, "imag_horizon": 45, "actor_grad": "dynamics", "actor_ent": 1e-3,
    "slow_target": True, "slow_target_update": 100, "slow_target_fraction": 1, "slow_baseline": True,
    "model_opt": {**_OPT, "lr": 3e-4}, "actor_opt": {**_OPT, "lr": 1e-4}, "critic_opt": {**_OPT, "lr": 1e-4},
    "expl_behavior": "greedy", "expl_noise": 0.0, "eval_noise": 0.0, "eval_state_mean": False,
}  # fmt: skip


def check_same_configuration() -> None:
    """Raise if ``OURS`` and ``REFERENCE`` disagree on any setting they share (the explicit name map)."""
    ref, mlp = REFERENCE, (REFERENCE["reward_head"]["layers"], REFERENCE["reward_head"]["units"])
    pairs = {
        "learning_starts": ref["prefill"], "train_freq": ref["train_every"], "gradient_steps": ref["train_steps"],
        "batch_size": ref["dataset"]["batch"], "sequence_length": ref["dataset"]["length"],
        "buffer_size": ref["replay"]["capacity"], "prioritize_ends": ref["replay"]["prioritize_ends"],
        "deter_size": ref["rssm"]["deter"], "hidden_size": ref["rssm"]["hidden"], "stoch_size": ref["rssm"]["stoch"],
        "stoch_classes": ref["rssm"]["discrete"], "mlp_layers": mlp[0], "mlp_units": mlp[1],
        "norm": ref["rssm"]["norm"], "pred_discount": ref["pred_discount"], "reward_transform": ref["clip_rewards"],
        "kl_scale": ref["loss_scales"]["kl"], "kl_balance": ref["kl"]["balance"], "kl_free": ref["kl"]["free"],
        "kl_free_avg": ref["kl"]["free_avg"], "discount_scale": ref["loss_scales"]["discount"],
        "reward_scale": ref["loss_scales"]["reward"], "gamma": ref["discount"], "return_lambda": ref["discount_lambda"],
        "imagination_horizon": ref["imag_horizon"], "actor_grad": ref["actor_grad"], "actor_entropy": ref["actor_ent"],
        "actor_min_std": ref["actor"]["min_std"], "slow_target_update": ref["slow_target_update"],
        "slow_target_fraction": ref["slow_target_fraction"], "learning_rate": ref["model_opt"]["lr"],
        "actor_lr": ref["actor_opt"]["lr"], "critic_lr": ref["critic_opt"]["lr"], "adam_eps": ref["model_opt"]["eps"],
        "weight_decay": ref["model_opt"]["wd"], "grad_clip": ref["model_opt"]["clip"],
    }  # fmt: skip
    wrong = {name: (OURS[name], value) for name, value in pairs.items() if OURS[name] != value}
    heads = [ref[k] for k in ("reward_head", "discount_head", "actor", "critic")]
    if any((h["layers"], h["units"], h["norm"]) != (*mlp, ref["rssm"]["norm"]) for h in heads):
        wrong["heads"] = ("2 x 128, no norm", heads)
    if any(ref[k]["mlp_layers"] != [mlp[1]] * mlp[0] for k in ("encoder", "decoder")):
        wrong["encoder/decoder"] = (mlp, ref["encoder"]["mlp_layers"], ref["decoder"]["mlp_layers"])
    if OURS["imagination_starts"] is not None or OURS["normalize_obs"]:
        wrong["reference has no"] = "imagination_starts / normalize_obs"
    if wrong:
        raise ValueError(f"OURS and REFERENCE disagree (ours, reference): {wrong}")


class Recorder:
    """Appends one row per evaluation to ``curves.csv`` (so a crash loses at most the running evaluation)."""

    def __init__(self, out: pathlib.Path, impl: str, seed: int):
        self.path, self.impl, self.seed, self.start = out / "curves.csv", impl, seed, time.time()
        out.mkdir(parents=True, exist_ok=True)

    def __call__(self, step: int, returns: list[float], updates: int) -> None:
        row = dict(impl=self.impl, seed=self.seed, step=step, return_mean=float(np.mean(returns)),
                   return_std=float(np.std(returns)), episodes=len(returns), updates=updates,
                   wall_s=round(time.time() - self.start, 1))  # fmt: skip
        new = not self.path.exists()
        with self.path.open("a", newline="") as f:
            writer = csv.DictWriter(f, FIELDS)
            if new:
                writer.writeheader()
            writer.writerow(row)
        print(f"{self.impl} seed {self.seed} step {step}: {row['return_mean']:.1f} +- {row['return_std']:.1f} "
              f"({updates} updates, {row['wall_s']:.0f} s)", flush=True)  # fmt: skip


def evaluate(act: Callable[[np.ndarray, bool], int], episodes: int) -> list[float]:
    """Returns of ``episodes`` CartPole-v1 episodes seeded ``EVAL_SEED + i``; ``act(obs, is_first)`` picks actions."""
    import gymnasium as gym

    env, returns = gym.make(ENV_ID), []
    for i in range(episodes):
        obs, _ = env.reset(seed=EVAL_SEED + i)
        total, first, done = 0.0, True, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(act(obs, first))
            total, first, done = total + float(reward), False, terminated or truncated
        returns.append(total)
    env.close()
    return returns


def run_ours(seed: int, steps: int, eval_every: int, episodes: int, record: Recorder) -> None:
    import torch as th
    from stable_baselines3.common.callbacks import BaseCallback

    from sb3_dreamer import DreamerV2

    th.set_num_threads(1)
    model = DreamerV2("MlpPolicy", ENV_ID, seed=seed, keep_host_memory=True, **OURS)

    def act(obs: np.ndarray, first: bool) -> int:
        if first:
            act.state = None  # type: ignore[attr-defined]
        action, act.state = model.predict(obs[None], state=act.state, deterministic=True)  # type: ignore[attr-defined]
        return int(action[0])

    class Evaluate(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps % eval_every == 0:
                record(self.num_timesteps, evaluate(act, episodes), model._n_updates)
            return True

    model.learn(steps, callback=Evaluate())


def run_reference(seed: int, steps: int, eval_every: int, episodes: int, record: Recorder, step_windows: bool = False) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
    import tensorflow as tf
    from tensorflow.keras import mixed_precision

    # Shims for today's TF / numpy; the installed package is not edited.
    mixed_precision.experimental = mixed_precision
    sys.modules["tensorflow.keras.mixed_precision.experimental"] = mixed_precision
    np.bool = bool  # type: ignore[attr-defined]  # the reference's replay uses the alias numpy 1.24 removed
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    import dreamerv2
    import gym as ref_gym
    import ruamel.yaml as yaml

    sys.path.insert(0, str(pathlib.Path(list(dreamerv2.__path__)[0])))
    import agent  # the reference's own modules, as its train.py imports them
    import common

    ref_dir = pathlib.Path(list(dreamerv2.__path__)[0])
    configs = yaml.YAML(typ="safe").load((ref_dir / "configs.yaml").read_text())
    config = common.Config(configs["defaults"]).update({**REFERENCE, "seed": seed})
    tf.random.set_seed(seed)
    np.random.seed(seed)
    env = ReferenceCartPole(ref_gym, seed)

    with tempfile.TemporaryDirectory() as logdir:
        replay = common.Replay(pathlib.Path(logdir) / "train_episodes", **config.replay)
        replay._random = np.random.RandomState(seed)
        step = common.Counter(0)
        driver = common.Driver([env])
        driver.on_step(lambda tran, worker: step.increment())
        driver.on_step(replay.add_step)
        driver.on_reset(replay.add_step)
        driver(common.RandomAgent(env.act_space), steps=config.prefill, episodes=1)
        driver.reset()
        agnt = agent.Agent(config, env.obs_space, env.act_space, step)
        if step_windows:  # our sampling, each window from the zero state
            dataset: Any = StepWindows(replay, **config.dataset, seed=seed)
            train = lambda data: agnt.train(data)  # noqa: E731
        else:  # the reference's own, as its train.py
            dataset = iter(replay.dataset(**config.dataset))
            train = common.CarryOverState(agnt.train)
        train(next(dataset))
        for _ in range(config.pretrain):
            train(next(dataset))
        updates = [1 + config.pretrain]
        should_train = common.Every(config.train_every)

        def train_step(tran: dict, worker: int) -> None:
            if should_train(step):
                for _ in range(config.train_steps):
                    train(next(dataset))
                    updates[0] += 1

        driver.on_step(train_step)

        def act(obs: np.ndarray, first: bool) -> int:
            if first:
                act.state = None  # type: ignore[attr-defined]
            flags = {"is_first": np.array([first]), "is_last": np.array([False]), "is_terminal": np.array([False])}
            batch = {"vector": obs[None].astype(np.float32), "reward": np.zeros(1, np.float32), **flags}
            out, act.state = agnt.policy(batch, act.state, mode="eval")  # type: ignore[attr-defined]
            return int(np.argmax(out["action"][0]))

        policy = lambda *args: agnt.policy(*args, mode="train")  # noqa: E731
        while int(step) < steps:
            driver(policy, steps=eval_every - int(step) % eval_every)
            record(int(step), evaluate(act, episodes), updates[0])


class StepWindows:
    """Our replay sampling (``SequenceReplayBuffer`` with ``prioritize_ends``) over the reference's stored episodes:
    ``batch`` windows of ``length`` consecutive steps drawn uniformly over all stored steps in storage order, a window
    that crosses into the next episode moved back to end where its episode ends. The reference's own ``Replay``
    draws an episode uniformly, then a sequence of it, and concatenates sequences into windows."""

    def __init__(self, replay: Any, batch: int, length: int, seed: int):
        self.replay, self.batch, self.length = replay, batch, length
        self.rng, self._episodes, self._data = np.random.RandomState(seed), -1, {}

    def _stream(self) -> dict[str, np.ndarray]:
        """Every stored episode's steps, concatenated in storage order (rebuilt when an episode was added)."""
        if self.replay.stats["total_episodes"] != self._episodes:
            episodes = list(self.replay._complete_eps.values())
            self._data = {key: np.concatenate([ep[key] for ep in episodes]) for key in episodes[0]}
            self._episodes = self.replay.stats["total_episodes"]
        return self._data

    def __next__(self) -> dict[str, np.ndarray]:
        data, length = self._stream(), self.length
        offset = self.rng.randint(0, len(data["is_first"]) - length + 1, size=self.batch)  # (B,)
        first = data["is_first"][offset[:, None] + np.arange(1, length)[None]]  # (B, T - 1)
        k = first.argmax(1) + 1  # the next episode's first step, where one is crossed
        offset = np.where(first.any(1), np.maximum(offset - (length - k), 0), offset)
        time = offset[:, None] + np.arange(length)[None]  # (B, T)
        return {key: value[time] for key, value in data.items()}


class ReferenceCartPole:
    """CartPole-v1 (gymnasium) in the reference's env interface (dict observations with ``reward``, ``is_first``,
    ``is_last``, ``is_terminal``; one-hot actions as its ``OneHotAction`` wrapper gives them)."""

    def __init__(self, ref_gym: Any, seed: int | None):
        import gymnasium as gym

        self._env, self._seed, self._gym = gym.make(ENV_ID), seed, ref_gym

    @property
    def obs_space(self) -> dict[str, Any]:
        box = self._gym.spaces.Box
        return {
            "vector": box(-np.inf, np.inf, (4,), dtype=np.float32), "reward": box(-np.inf, np.inf, (), dtype=np.float32),
            "is_first": box(0, 1, (), dtype=bool), "is_last": box(0, 1, (), dtype=bool),
            "is_terminal": box(0, 1, (), dtype=bool),
        }  # fmt: skip

    @property
    def act_space(self) -> dict[str, Any]:
        space = self._gym.spaces.Box(0, 1, (2,), dtype=np.float32)
        space.n = 2
        return {"action": space}

    def reset(self) -> dict[str, Any]:
        obs, _ = self._env.reset(seed=self._seed)
        self._seed = None  # seed the first episode only, as SB3 seeds its env
        return {"vector": obs, "reward": 0.0, "is_first": True, "is_last": False, "is_terminal": False}

    def step(self, action: dict[str, np.ndarray]) -> dict[str, Any]:
        obs, reward, terminated, truncated, _ = self._env.step(int(np.argmax(action["action"])))
        return {"vector": obs, "reward": float(reward), "is_first": False, "is_last": terminated or truncated,
                "is_terminal": terminated}  # fmt: skip


def summarise(out: pathlib.Path) -> dict[str, Any]:
    """``summary.json`` and ``learning.png`` from ``curves.csv``: per implementation the final evaluations and the
    mean over seeds at each evaluation; for each other implementation, over the evaluations it shares with the
    reference, both mean returns and at which of them its mean over seeds lies inside the reference's min-max band
    over seeds."""
    import pandas as pd

    frame = pd.read_csv(out / "curves.csv")
    tables = {str(impl): rows.pivot_table(index="step", columns="seed", values="return_mean")
              for impl, rows in frame.groupby("impl")}  # fmt: skip
    summary: dict[str, Any] = {"env": ENV_ID, "config": OURS, "reference_config": REFERENCE}
    for impl, table in tables.items():
        rows = frame[frame.impl == impl]
        final = rows[rows.step == rows.step.max()]
        entry: dict[str, Any] = {
            "seeds": [int(s) for s in table.columns],
            "final_step": int(table.index.max()),
            "final_return_per_seed": {int(s): float(r) for s, r in zip(final.seed, final.return_mean)},
            "final_return_median": float(final.return_mean.median()),
            "mean_over_seeds_per_step": {int(k): round(float(v), 1) for k, v in table.mean(1).items()},
            "wall_s_per_seed": {int(s): float(w) for s, w in zip(final.seed, final.wall_s)},
            "updates_at_final_step": int(final.updates.max()),
        }  # fmt: skip
        if impl != "reference" and "reference" in tables:
            shared = sorted(set(table.index) & set(tables["reference"].index))
            ref, mean = tables["reference"].loc[shared], table.loc[shared].mean(1)
            inside = (mean >= ref.min(1)) & (mean <= ref.max(1))
            entry["against_reference"] = {
                "steps": shared,
                "mean_return": round(float(mean.mean()), 1),
                "reference_mean_return": round(float(ref.mean(1).mean()), 1),
                "inside_reference_band": {int(k): bool(v) for k, v in inside.items()},
            }
        summary[impl] = entry
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    plot(frame, out / "learning.png")
    return summary


def plot(frame: Any, path: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    labels = {
        "reference": "danijar/dreamerv2 2.2.0 (TensorFlow)",
        "ours": "sb3_dreamer (PyTorch)",
        "reference_step_windows": "danijar/dreamerv2 2.2.0, our replay sampling",
    }
    for impl, colour in (("reference", "tab:blue"), ("ours", "tab:orange"), ("reference_step_windows", "tab:green")):
        rows = frame[frame.impl == impl]
        if rows.empty:
            continue
        table = rows.pivot_table(index="step", columns="seed", values="return_mean")
        seeds = table.shape[1]
        ax.plot(table.index, table.mean(1), color=colour, label=f"{labels[impl]}, mean of {seeds} seeds")
        ax.fill_between(table.index, table.min(1), table.max(1), color=colour, alpha=0.2)
    ax.axhline(475, color="green", linestyle="--", linewidth=1, label="solved (475)")
    ax.set(xlabel="environment steps", ylabel="evaluation return (10 episodes)",
           title=f"{ENV_ID}: the same configuration, band = min-max over seeds")  # fmt: skip
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


IMPLS: dict[str, Callable[..., None]] = {
    "ours": run_ours,
    "reference": run_reference,
    "reference_step_windows": lambda *args: run_reference(*args, step_windows=True),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--impl",
        choices=list(IMPLS),
        help="which implementation to train: ours, the reference, or the reference's update on our replay sampling "
        "(reference_step_windows)",
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="seeds, run one after another")
    parser.add_argument("--steps", type=int, default=20_000, help="environment steps per run")
    parser.add_argument("--eval-every", type=int, default=2_000, help="evaluate every this many env steps")
    parser.add_argument("--episodes", type=int, default=10, help="episodes per evaluation")
    parser.add_argument("--out", type=pathlib.Path, default=RESULTS, help="output folder")
    parser.add_argument("--plot-only", action="store_true", help="write summary.json and learning.png from curves.csv")
    args = parser.parse_args()
    check_same_configuration()
    if not args.plot_only:
        if args.impl is None:
            parser.error("--impl is required unless --plot-only")
        for seed in args.seeds:
            IMPLS[args.impl](seed, args.steps, args.eval_every, args.episodes, Recorder(args.out, args.impl, seed))
        if args.impl != "ours":  # the reference's venv has no pandas / matplotlib
            print("Rows written; `--plot-only` in the project's venv writes the summary and the plot.")
            return
    print(json.dumps(summarise(args.out), indent=2))


if __name__ == "__main__":
    main()
