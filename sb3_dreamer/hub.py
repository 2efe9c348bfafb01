"""Package an rl-zoo3 run of DreamerV2 in the Hugging Face SB3 layout, without a network.

rl-zoo3's ``push_to_hub`` creates the remote repository first and so needs a network and a token. This writes
the same folder locally (what ``rl_zoo3.load_from_hub`` downloads and ``huggingface_sb3.load_from_hub`` reads)::

    <repo_dir>/dreamerv2-<env>.zip     the model (DreamerV2.save)
    <repo_dir>/config.yml, args.yml    rl-zoo3's saved hyperparameters and command-line arguments
    <repo_dir>/env_kwargs.yml
    <repo_dir>/train_eval_metrics.zip  Monitor CSVs and evaluations.npz
    <repo_dir>/results.json, README.md the evaluation and the model card (rl-zoo3's own generator)

Upload it with ``huggingface-cli upload <org>/dreamerv2-<env> <repo_dir>`` (or ``HfApi().upload_folder``).
:func:`install_repo` is the way back from a local copy of such a repository (``git clone`` of it, or the
folder itself) into rl-zoo3's layout, the files ``rl_zoo3 load_from_hub`` would put there::

    python -m sb3_dreamer.hub package --env CartPole-v1 -f logs --repo-dir hub/dreamerv2-CartPole-v1
    python -m sb3_dreamer.hub install --env CartPole-v1 --repo-dir hub/dreamerv2-CartPole-v1 -f downloaded
    python -m sb3_dreamer.zoo enjoy --algo dreamerv2 --env CartPole-v1 -f downloaded

Security: an SB3 zip may carry pickled Python objects, and unpickling runs code. ``huggingface_sb3`` (and so
``rl_zoo3 load_from_hub``) refuses to download unless ``TRUST_REMOTE_CODE=True`` is set; set it only for
repositories you trust. ``DreamerV2.load`` reads the ``.pth`` tensors with ``weights_only=True``, but the
``data`` part of the zip is still deserialised by SB3 with cloudpickle.
"""

import argparse
import json
import shutil
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from sb3_dreamer.zoo import ALGO_NAME, extras_needed

DESCRIPTION = """\
Package an rl-zoo3 run of DreamerV2 in the Hugging Face SB3 layout, without a network ('package'), or
install such a folder into rl-zoo3's log layout ('install'). Needs the zoo extra: pip install "sb3_dreamer[zoo]".

'package' writes <repo-dir>/dreamerv2-<env>.zip (the model), config.yml, args.yml, env_kwargs.yml,
train_eval_metrics.zip (Monitor CSVs, evaluations.npz), results.json (a fresh evaluation) and README.md (the
model card). Upload it with: huggingface-cli upload <org>/dreamerv2-<env> <repo-dir>
'install' copies such a folder (a git clone of the Hub repository, or the folder itself) to
<log-folder>/dreamerv2/<env>_<n>/, as rl_zoo3 load_from_hub lays it out.

Security: an SB3 zip may carry pickled Python objects, and unpickling runs code; load only models you trust.

examples:
  python -m sb3_dreamer.hub package --env CartPole-v1 -f logs --repo-dir hub/dreamerv2-CartPole-v1
  python -m sb3_dreamer.hub install --env CartPole-v1 --repo-dir hub/dreamerv2-CartPole-v1 -f downloaded
  python -m sb3_dreamer.zoo enjoy --algo dreamerv2 --env CartPole-v1 -f downloaded
"""


def _run_ids(log_folder: str | Path, env_name: str) -> dict[int, Path]:
    """rl-zoo3's runs ``<log_folder>/dreamerv2/<env>_<n>``, by ``n``."""
    runs = (Path(log_folder) / ALGO_NAME).glob(f"{env_name}_*")
    return {int(p.name.rsplit("_", 1)[1]): p for p in runs if p.name.rsplit("_", 1)[1].isdigit()}


def run_folder(log_folder: str | Path, env_id: str, exp_id: int = 0) -> Path:
    """``<log_folder>/dreamerv2/<env>_<exp_id>`` (the latest run when ``exp_id`` is 0)."""
    from huggingface_sb3 import EnvironmentName

    env_name = EnvironmentName(env_id)
    ids = _run_ids(log_folder, env_name)
    run = ids.get(exp_id or max(ids, default=0))
    if run is None:
        raise FileNotFoundError(f"No run of {ALGO_NAME} on {env_id} under {log_folder} (expected {env_name}_<n>)")
    return run


def package_run(
    log_folder: str | Path,
    env_id: str,
    repo_dir: str | Path,
    exp_id: int = 0,
    n_eval_episodes: int = 10,
    deterministic: bool = True,
    organization: str = "sb3",
) -> dict[str, Any]:
    """Write the Hugging Face SB3 folder of a run (see the module docstring). :return: the evaluation."""
    import yaml
    from huggingface_sb3 import EnvironmentName, ModelName
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy

    from sb3_dreamer import DreamerV2

    env_name = EnvironmentName(env_id)
    run, repo = run_folder(log_folder, env_id, exp_id), Path(repo_dir)
    repo.mkdir(parents=True, exist_ok=True)
    model_name = ModelName(ALGO_NAME, env_name)
    shutil.copy(run / f"{env_name}.zip", repo / model_name.filename)
    shutil.copy(run / env_name / "args.yml", repo / "args.yml")
    shutil.copy(run / env_name / "config.yml", repo / "config.yml")
    args = yaml.unsafe_load((run / env_name / "args.yml").read_text())
    env_kwargs = dict(dict(args).get("env_kwargs") or {})
    (repo / "env_kwargs.yml").write_text(yaml.dump(env_kwargs))
    with zipfile.ZipFile(repo / "train_eval_metrics.zip", "w") as archive:
        for path in [*run.glob("*.csv"), *run.glob("evaluations.npz")]:
            archive.write(path, arcname=path.name)

    model = DreamerV2.load(repo / model_name.filename)
    env = make_vec_env(env_id, n_envs=1, seed=0, env_kwargs=env_kwargs)
    returns, _ = evaluate_policy(model, env, n_eval_episodes, deterministic=deterministic, return_episode_rewards=True)
    mean, std = float(np.mean(returns)), float(np.std(returns))
    results = {"env_id": env_id, "mean_reward": mean, "std_reward": std,
               "n_eval_episodes": n_eval_episodes, "is_deterministic": deterministic}  # fmt: skip
    (repo / "results.json").write_text(json.dumps(results, indent=2))
    hyperparams = dict(yaml.unsafe_load((run / env_name / "config.yml").read_text()))
    (repo / "README.md").write_text(model_card(env_id, results, hyperparams, organization))
    return results


def model_card(env_id: str, results: dict[str, Any], hyperparams: dict[str, Any], organization: str) -> str:
    """A model card with the Hub's metadata header (rl-zoo3 2.9.2's own generator fails to import with
    sb3-team-hf-integration 3.x, so this writes the same fields).
    """
    import yaml
    from huggingface_sb3 import EnvironmentName

    env_name = EnvironmentName(env_id)
    score = f"{results['mean_reward']:.2f} +/- {results['std_reward']:.2f}"
    metadata = {
        "library_name": "stable-baselines3",
        "tags": [env_id, "deep-reinforcement-learning", "reinforcement-learning", "stable-baselines3", "sb3-dreamer"],
        "model-index": [{
            "name": "DreamerV2",
            "results": [{
                "task": {"type": "reinforcement-learning", "name": "reinforcement-learning"},
                "dataset": {"name": env_id, "type": env_id},
                "metrics": [{"type": "mean_reward", "value": score, "name": "mean_reward", "verified": False}],
            }],
        }],
    }  # fmt: skip
    params = yaml.dump(dict(sorted(hyperparams.items())), default_flow_style=False)
    return f"""---
{yaml.dump(metadata, sort_keys=False)}---

# DreamerV2 agent playing {env_id}

A [DreamerV2](https://arxiv.org/abs/2010.02193) agent trained with sb3_dreamer and the
[RL Zoo](https://github.com/DLR-RM/rl-baselines3-zoo): mean reward {score} over {results["n_eval_episodes"]}
episodes ({"deterministic" if results["is_deterministic"] else "stochastic"} actions).

## Usage (with the RL Zoo and sb3_dreamer[zoo] installed)

```
TRUST_REMOTE_CODE=True python -m sb3_dreamer.zoo load_from_hub --algo {ALGO_NAME} --env {env_id} -orga {organization} -f logs/
python -m sb3_dreamer.zoo enjoy --algo {ALGO_NAME} --env {env_id} -f logs/
```

Files: `{ALGO_NAME}-{env_name}.zip` (the model), `config.yml`, `args.yml`, `env_kwargs.yml`,
`train_eval_metrics.zip` (Monitor CSVs, evaluations), `results.json`.

## Hyperparameters

```python
{params}```
"""


def install_repo(repo_dir: str | Path, env_id: str, log_folder: str | Path, exp_id: int = 0) -> Path:
    """Copy a Hugging Face SB3 repository folder into ``<log_folder>/dreamerv2/<env>_<n>/`` as
    ``rl_zoo3 load_from_hub`` lays it out (a new ``n`` when ``exp_id`` is 0). :return: the run folder.
    """
    from huggingface_sb3 import EnvironmentName, ModelName

    env_name, repo = EnvironmentName(env_id), Path(repo_dir)
    model_file = repo / ModelName(ALGO_NAME, env_name).filename
    if not model_file.exists():
        raise FileNotFoundError(f"{repo} is not a {ALGO_NAME} repository for {env_id}: {model_file.name} is missing")
    if exp_id == 0:
        exp_id = max(_run_ids(log_folder, env_name), default=0) + 1
    run = Path(log_folder) / ALGO_NAME / f"{env_name}_{exp_id}"
    if run.exists():
        raise FileExistsError(f"{run} exists; pass another exp_id or 0 for a new one")
    (run / env_name).mkdir(parents=True)
    shutil.copy(model_file, run / f"{env_name}.zip")
    for name in ("args.yml", "config.yml", "env_kwargs.yml"):
        shutil.copy(repo / name, run / env_name / name)
    if (repo / "train_eval_metrics.zip").exists():
        with zipfile.ZipFile(repo / "train_eval_metrics.zip") as archive:
            archive.extractall(run)
    return run


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m sb3_dreamer.hub",
        description=DESCRIPTION,
        formatter_class=type("Formatter", (argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter), {}),
    )
    parser.add_argument("what", choices=["package", "install"], help="package a run, or install a packaged folder")
    parser.add_argument("--env", required=True, help="gymnasium env id of the run")
    parser.add_argument("-f", "--log-folder", default="logs", help="rl-zoo3's log folder")
    parser.add_argument("--repo-dir", required=True, help="the Hugging Face repository folder")
    parser.add_argument(
        "--exp-id",
        type=int,
        default=0,
        help="run number <n> in <log-folder>/dreamerv2/<env>_<n>; 0: latest (package), new (install)",
    )
    parser.add_argument("--n-eval-episodes", type=int, default=10, help="episodes of the evaluation in results.json")
    parser.add_argument("-orga", "--organization", default="sb3", help="Hub organization named in the model card")
    args = parser.parse_args(argv)
    with extras_needed("hub"):
        if args.what == "package":
            print(
                package_run(
                    args.log_folder, args.env, args.repo_dir, args.exp_id, args.n_eval_episodes, organization=args.organization
                )
            )
        else:
            print(install_repo(args.repo_dir, args.env, args.log_folder, args.exp_id))


if __name__ == "__main__":
    main()
