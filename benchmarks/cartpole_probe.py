"""What a CartPole agent believes along its own deterministic episodes: the critic's value (beside the discounted
return that really followed, one reward per step), the predicted
continuation, the KL between posterior and prior and the actor's confidence, binned by the cart's distance from
the centre (and the value by whether the cart moves outwards); then the world model's open-loop error on x and
the pole angle k steps ahead, imagining from each posterior state with the actions really taken (sampled latents,
as the imagination samples them).

    python benchmarks/cartpole_endings.py --seed 4 --steps 15000 --save-at 7500 15000 --save-dir /tmp/s4
    python benchmarks/cartpole_probe.py /tmp/s4/model_15000.zip --out benchmarks/results/classic/probe.json

Session 18 read the benchmark's settings with it during the mid-run dip (benchmarks/README.md, classic control).
"""

import argparse
import json
import sys
from pathlib import Path
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np
import pandas as pd
import torch as th

sys.path.insert(0, str(Path(__file__).parents[1]))  # run as a script: make `benchmarks` importable
from sb3_dreamer import DreamerV2  # noqa: E402
from sb3_dreamer.common.distributions import categorical_kl  # noqa: E402
from sb3_dreamer.common.rssm import RSSMState  # noqa: E402
from sb3_dreamer.dreamer.policies import WorldModel  # noqa: E402

X_BINS = [0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 2.6]  # |x| in metres; the track ends at 2.4
OPEN_LOOP_STEPS = (0, 1, 5, 10, 15)


class EpisodeProbe(NamedTuple):
    """One deterministic episode: ``rows`` (one dict per step) and what the open-loop check replays."""

    rows: list[dict[str, float]]
    latents: list[RSSMState]  # the posterior after each observation, (1, ...) each
    actions: list[th.Tensor]  # the (1, A) one-hot action taken after each observation
    obs: np.ndarray  # (T, 4) the observations


def decode_obs(world_model: WorldModel, state: RSSMState) -> th.Tensor:
    """:return: (B, D) the decoder's mean observation, in the environment's units."""
    decoded = world_model.decoder(state.feat())["obs"]
    norm = world_model.obs_norm
    return decoded if norm is None else decoded * norm.std + norm.mean


@th.no_grad()
def probe_episode(model: DreamerV2, env: gym.Env, seed: int) -> EpisodeProbe:
    """Run one deterministic episode and record, per step, what the critic, the discount head, the prior and
    the actor make of the posterior state."""
    policy, world_model = model.policy, model.policy.world_model
    obs, _ = env.reset(seed=seed)
    state, start = policy.initial_state(1), th.ones(1)
    rows, latents, actions, observations = [], [], [], []
    head = world_model.discount_head
    while True:
        action, state = policy.act({"obs": th.as_tensor(obs, dtype=th.float32)[None]}, state, start, deterministic=True)
        start = th.zeros(1)
        latent = state.latent
        feat = latent.feat()
        probs = th.softmax(policy.actor.net(feat), -1)[0]
        rows.append(
            {
                "x": float(obs[0]),
                "x_dot": float(obs[1]),
                "value": float(policy.critic(feat)),
                "continuation": float(th.sigmoid(head(feat))) if head is not None else 1.0,
                "kl": float(categorical_kl(latent.logits, world_model.rssm.prior_logits(latent.deter)).sum()),
                "confidence": float(probs.max()),
            }
        )
        latents.append(latent)
        actions.append(action)
        observations.append(obs)
        obs, _, terminated, truncated, _ = env.step(int(action.argmax(-1)))
        if terminated or truncated:
            discounted = 0.0  # the return still to come from each step, discounted as the critic's target is
            for row in reversed(rows):
                discounted = 1.0 + model.gamma * discounted
                row["return_to_go"] = discounted  # a lower bound after a truncation at 500 steps
            return EpisodeProbe(rows, latents, actions, np.array(observations))


@th.no_grad()
def open_loop_errors(
    world_model: WorldModel, episode: EpisodeProbe, every: int = 25, horizon: int = max(OPEN_LOOP_STEPS)
) -> np.ndarray:
    """From every ``every``-th posterior state, roll the prior ``horizon`` steps forward with the actions taken,
    sampling its latents, and decode.

    :return: (starts, horizon + 1, D) decoded minus true observation (step 0: the posterior itself).
    """
    errors = []
    for t0 in range(0, len(episode.obs) - horizon, every):
        state = episode.latents[t0]
        decoded = [decode_obs(world_model, state)[0]]
        for k in range(1, horizon + 1):
            state = world_model.rssm.img_step(state, episode.actions[t0 + k - 1], sample=True)
            decoded.append(decode_obs(world_model, state)[0])
        errors.append(th.stack(decoded).numpy() - episode.obs[t0 : t0 + horizon + 1])
    return np.array(errors).reshape(-1, horizon + 1, episode.obs.shape[1])


def summarise(episodes: list[EpisodeProbe], errors: np.ndarray) -> dict[str, Any]:
    """The per-step rows binned by |x|, and the mean absolute open-loop errors of x and the pole angle."""
    frame = pd.DataFrame([row for episode in episodes for row in episode.rows])
    frame["bin"] = pd.cut(frame.x.abs(), X_BINS).astype(str)
    frame["outwards"] = np.sign(frame.x) * np.sign(frame.x_dot) > 0
    by_bin = frame.groupby("bin", sort=False).agg(
        steps=("value", "size"), value=("value", "mean"), return_to_go=("return_to_go", "mean"),
        continuation=("continuation", "mean"),
        min_continuation=("continuation", "min"), kl=("kl", "mean"), confidence=("confidence", "mean"),
    )  # fmt: skip
    by_bin["value_outwards"] = frame[frame.outwards].groupby("bin").value.mean()
    by_bin["value_inwards"] = frame[~frame.outwards].groupby("bin").value.mean()
    by_bin = by_bin.loc[[b for b in map(str, pd.cut([], X_BINS).categories) if b in by_bin.index]]
    steps = list(OPEN_LOOP_STEPS)

    def mean_abs(dim: int) -> list[float]:
        return np.abs(errors[:, steps, dim]).mean(0).astype(float).round(4).tolist() if len(errors) else []

    return {
        "lengths": [len(episode.rows) for episode in episodes],
        "by_abs_x": by_bin.round(3).reset_index().to_dict("records"),
        "open_loop_steps": steps,
        "open_loop_abs_error_x": mean_abs(0),
        "open_loop_abs_error_theta": mean_abs(2),
        "std_x": round(float(frame.x.std()), 4),
    }


def probe(model: DreamerV2, episodes: int, seed: int) -> dict[str, Any]:
    """``episodes`` deterministic episodes on seeds ``10_000 + seed + i`` (the benchmark's evaluation seeds)."""
    th.manual_seed(seed)
    env = gym.make("CartPole-v1")
    runs = [probe_episode(model, env, 10_000 + seed + i) for i in range(episodes)]
    env.close()
    errors = [open_loop_errors(model.policy.world_model, run) for run in runs]
    return summarise(runs, np.concatenate(errors) if errors else np.zeros((0, max(OPEN_LOOP_STEPS) + 1, 4)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path, help="a DreamerV2 CartPole model zip (cartpole_endings.py --save-at)")
    parser.add_argument("--episodes", type=int, default=5)
    parser.add_argument("--seed", type=int, default=4, help="the run's seed: evaluation episodes 10_000 + seed + i")
    parser.add_argument("--out", type=Path, help="JSON file to write the summary to")
    args = parser.parse_args()
    summary = {"model": str(args.model), **probe(DreamerV2.load(args.model, device="cpu"), args.episodes, args.seed)}
    print(pd.DataFrame(summary["by_abs_x"]).to_string(index=False))
    print("open-loop |error| at steps", summary["open_loop_steps"], "x:", summary["open_loop_abs_error_x"],
          "theta:", summary["open_loop_abs_error_theta"])  # fmt: skip
    if args.out:
        args.out.write_text(json.dumps(summary, indent=1) + "\n")


if __name__ == "__main__":
    main()
