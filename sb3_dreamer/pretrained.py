"""Agents trained by this project, installed with the package (``sb3_dreamer/agents/``, :data:`AGENTS`) in
rl-zoo3's ``rl-trained-agents`` layout with a manifest.

::

    sb3_dreamer/agents/
        manifest.json                         one entry per agent (below)
        dreamerv2/<env>_1/<env>.zip           the model (DreamerV2.save; no optimiser state)
        dreamerv2/<env>_1/<env>/config.yml    rl-zoo3's saved hyperparameters, args.yml, env_kwargs.yml

A manifest entry: ``env_id``, ``protocol`` (what the env is), ``path``, ``sha256``, ``steps`` and ``frames``
trained, the deterministic evaluation (``episodes``, ``mean``, ``std``, ``min``, ``max``), the ``commit`` and
the command that made it. :func:`load_pretrained` checks the file against its checksum and loads it without
unpickling (``DreamerV2.load_safe``); ``python -m sb3_dreamer.zoo enjoy --algo dreamerv2 --env <env> -f <AGENTS>``
and ``python -m rl_zoo3.record_video`` work on the same files (``python -m sb3_dreamer.pretrained`` prints the
folder and what it holds).
"""

from __future__ import annotations

import argparse
import io
import json
import pathlib
import zipfile
from typing import Any

import torch as th
from stable_baselines3.common.type_aliases import GymEnv

from sb3_dreamer.dreamer.dreamer import DreamerV2
from sb3_dreamer.dreamer.persistence import atomic_write

AGENTS = pathlib.Path(__file__).parent / "agents"  # installed with the package


def read_manifest(folder: str | pathlib.Path = AGENTS) -> dict[str, dict[str, Any]]:
    """env id -> manifest entry of the agents in ``folder`` (by default the shipped ones)."""
    path = pathlib.Path(folder) / "manifest.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"No manifest.json in {folder}: pass a folder of agents in rl-zoo3's layout (default {AGENTS})."
        )
    return {entry["env_id"]: entry for entry in json.loads(path.read_text())["agents"]}


def load_pretrained(
    env_id: str, folder: str | pathlib.Path = AGENTS, env: GymEnv | None = None, device: th.device | str = "auto"
) -> DreamerV2:
    """Load a shipped agent after checking its SHA-256 against the manifest, without unpickling anything.

    :param folder: agents in rl-zoo3's layout with a ``manifest.json``; by default those installed with the package.
    :raises KeyError: naming the available env ids when ``env_id`` has no agent.
    """
    folder = pathlib.Path(folder)
    manifest = read_manifest(folder)
    if env_id not in manifest:
        raise KeyError(f"No shipped DreamerV2 agent for {env_id!r}; available: {sorted(manifest)}")
    entry = manifest[env_id]
    return DreamerV2.load_safe(folder / entry["path"], env=env, device=device, sha256=entry["sha256"])


def strip_optimizers(model: DreamerV2) -> None:
    """Replace the three optimisers by fresh ones (no Adam moments), so a shipped file holds the networks only.
    Fine-tuning such an agent restarts Adam's moments.
    """
    model.policy.make_optimizers(model.lr_schedule(1.0))


def store_weights_in_float16(path: str | pathlib.Path) -> None:
    """Rewrite a model zip's ``policy.pth`` with its floating-point tensors in float16, halving a shipped file
    (the 64x64 pixel agents' weights are ~8 MB in float32). Loading casts them back into the model's float32
    parameters (``load_state_dict`` copies with a cast), so only their rounding changes: evaluate the rewritten
    file, not the one it came from. Other entries of the zip are copied unchanged.
    """
    path = pathlib.Path(path)
    with zipfile.ZipFile(path) as archive:
        members = [(info, archive.read(info)) for info in archive.infolist()]
    rewritten = []
    for info, data in members:
        if info.filename == "policy.pth":
            state_dict = th.load(io.BytesIO(data), map_location="cpu", weights_only=True)
            buffer = io.BytesIO()
            th.save({k: v.half() if v.is_floating_point() else v for k, v in state_dict.items()}, buffer)
            data = buffer.getvalue()
        rewritten.append((info, data))

    def write(target: pathlib.Path) -> None:
        with zipfile.ZipFile(target, "w") as archive:
            for info, data in rewritten:
                archive.writestr(info, data)

    atomic_write(path, "zip", write)  # the file is either the old one or the whole new one


def main() -> None:
    """``python -m sb3_dreamer.pretrained``: where the shipped agents are and what they score."""
    parser = argparse.ArgumentParser(
        prog="python -m sb3_dreamer.pretrained",
        description="List the agents installed with sb3_dreamer (their folder is rl-zoo3's -f argument).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--folder", type=pathlib.Path, default=AGENTS, help="a folder of agents with a manifest.json")
    args = parser.parse_args()
    print(f"folder: {args.folder}")
    for env_id, entry in sorted(read_manifest(args.folder).items()):
        score = entry["evaluation"]
        print(f"{env_id}: {score['mean']} +- {score['std']} over {score['episodes']} episodes, {entry['steps']} steps")


if __name__ == "__main__":
    main()
