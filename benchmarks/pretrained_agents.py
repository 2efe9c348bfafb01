"""Train, evaluate and ship an agent into ``sb3_dreamer/agents/`` (rl-zoo3's layout, installed with the package) with
its manifest entry.

    python benchmarks/pretrained_agents.py --env CartPole-v1 --steps 10000
    python benchmarks/pretrained_agents.py --env Pendulum-v1 --steps 10000
    MUJOCO_GL=egl python benchmarks/pretrained_agents.py --env sb3_dreamer/DMC-cartpole-balance-v0 \
        --from-model <dmc_pixels.py's model.zip> --float16 --eval-episodes 10 \
        --trained-by "benchmarks/dmc_pixels.py --frames 12000 --threads 1"

Training is ``rl_zoo3 train`` with the yml's settings for the env (the ones the classic-control benchmark
measures). The shipped zip has its optimiser states stripped (networks only, ~2.7 MB for the classic
preset; ``--float16`` halves that, as for the pixel agent); the evaluation (deterministic, ``--eval-episodes``
episodes, env seeds from 1000, torch seed 0) is done on the shipped file, loaded the safe way, and written
with its SHA-256 to ``manifest.json``.
"""

import argparse
import json
import pathlib
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import torch as th
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy

from sb3_dreamer import DreamerV2
from sb3_dreamer.dreamer.dreamer import frames_per_step
from sb3_dreamer.dreamer.safe_load import sha256
from sb3_dreamer.pretrained import store_weights_in_float16, strip_optimizers

ROOT = pathlib.Path(__file__).parents[1]
FOLDER = ROOT / "sb3_dreamer" / "agents"


def evaluate(model: DreamerV2, env_id: str, episodes: int, first_seed: int) -> list[float]:
    """Deterministic returns of ``episodes`` episodes, the env seeded ``first_seed``, ``first_seed + 1``, ... (one
    seeded VecEnv per episode, so each episode is the one its seed names); torch seed 0.
    """
    th.manual_seed(0)
    returns = []
    for episode in range(episodes):
        env = make_vec_env(env_id, n_envs=1, seed=first_seed + episode)
        rewards, _ = evaluate_policy(model, env, n_eval_episodes=1, deterministic=True, return_episode_rewards=True)
        returns.append(float(rewards[0]))
    return returns


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", required=True)
    parser.add_argument("--steps", type=int, default=None, help="env steps to train (not with --evaluate-only)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--eval-episodes", type=int, default=20)
    parser.add_argument("--evaluate-only", action="store_true", help="re-evaluate the shipped file, rewrite its entry")
    parser.add_argument("--from-model", type=pathlib.Path, default=None, help="ship this trained model instead")
    parser.add_argument("--trained-by", default=None, help="the command that trained --from-model (for the manifest)")
    parser.add_argument("--commit", default=None, help="the commit that trained --from-model (default: the checkout's)")
    parser.add_argument("--protocol", default=None, help="what the env is, for the manifest (default: unmodified)")
    parser.add_argument("--float16", action="store_true", help="ship the weights in float16 (half the file, evaluated so)")
    args = parser.parse_args()
    name = args.env.replace("/", "-")  # rl-zoo3's folder name for an id
    target = FOLDER / "dreamerv2" / f"{name}_1"
    if args.from_model is not None:
        target.mkdir(parents=True, exist_ok=True)
        model = DreamerV2.load(args.from_model)
        strip_optimizers(model)
        model.save(target / f"{name}.zip")
    elif not args.evaluate_only:
        if args.steps is None:
            parser.error("--steps is needed to train")
        train(args, target)
    if args.float16 and not args.evaluate_only:
        store_weights_in_float16(target / f"{name}.zip")
    write_entry(args, target / f"{name}.zip")


def train(args: argparse.Namespace, target: pathlib.Path) -> None:
    """``rl_zoo3 train`` into a temporary folder; the model (optimisers stripped) and its yml files into ``target``."""
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "sb3_dreamer.zoo", "train", "--algo", "dreamerv2", "--env", args.env,
                   "-n", str(args.steps), "--seed", str(args.seed), "-f", tmp, "--eval-freq", "-1",
                   "--num-threads", str(args.threads)]  # fmt: skip
        subprocess.run(command, check=True)
        run = next((pathlib.Path(tmp) / "dreamerv2").glob(f"{args.env}_*"))
        shutil.rmtree(target, ignore_errors=True)
        (target / args.env).mkdir(parents=True)
        for name in ("config.yml", "args.yml", "env_kwargs.yml"):
            if (run / args.env / name).exists():
                shutil.copy(run / args.env / name, target / args.env / name)
        model = DreamerV2.load(run / f"{args.env}.zip")
    strip_optimizers(model)
    model.save(target / f"{args.env}.zip")


def source_commit() -> str:
    """The checkout's commit, ``-dirty`` when the package (``sb3_dreamer/``, the agents aside) differs from it."""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    status = ["git", "status", "--porcelain", "--", "sb3_dreamer", ":!sb3_dreamer/agents"]
    dirty = subprocess.run(status, cwd=ROOT, capture_output=True, text=True).stdout.strip()
    return f"{head}-dirty" if dirty else head


def write_entry(args: argparse.Namespace, path: pathlib.Path) -> None:
    """Evaluate the shipped file (loaded the safe way) and write its manifest entry."""
    model = DreamerV2.load_safe(path, sha256=sha256(path))
    returns = evaluate(model, args.env, args.eval_episodes, first_seed=1000)
    repeat = frames_per_step(make_vec_env(args.env, n_envs=1))
    trained_by = (
        args.trained_by or f"benchmarks/pretrained_agents.py --env {args.env} --steps {model.num_timesteps} --seed {args.seed}"
    )
    commit = args.commit or source_commit()
    entry = {
        "env_id": args.env,
        "protocol": args.protocol or f"gymnasium {args.env}, unmodified",
        "path": str(path.relative_to(FOLDER)),
        "sha256": sha256(path),
        "size_bytes": path.stat().st_size,
        "steps": int(model.num_timesteps),
        "frames": int(model.num_timesteps * repeat),
        "seed": args.seed,
        "evaluation": {
            "episodes": len(returns),
            "deterministic": True,
            "env_seeds": f"{1000}..{1000 + len(returns) - 1}",
            "mean": round(float(np.mean(returns)), 2),
            "std": round(float(np.std(returns)), 2),
            "min": round(min(returns), 2),
            "max": round(max(returns), 2),
        },  # fmt: skip
        "commit": commit,
        "command": f"python {trained_by}",
    }
    manifest_path = FOLDER / "manifest.json"
    agents = json.loads(manifest_path.read_text())["agents"] if manifest_path.exists() else []
    agents = [a for a in agents if a["env_id"] != args.env] + [entry]
    manifest_path.write_text(json.dumps({"agents": sorted(agents, key=lambda a: a["env_id"])}, indent=1) + "\n")
    print(json.dumps(entry, indent=1))


if __name__ == "__main__":
    main()
