"""Atari scores: game sets, the final-score rule, normalisation, aggregates and bootstrap confidence intervals.

Normalisation (the paper's Table 1): gamer-normalised = (score - random) / (human_gamer - random),
record-normalised the same with ``human_record``; "clipped record" clips each game's record-normalised score
at 1 before averaging. The table is the authors' ``baselines.json`` with James Bond's ``human_gamer``
corrected from 29 to 303 (the paper's value; with it, the published curves reproduce Table 1).

Final score of a run (the paper does not spell its rule out; ours, :data:`DEFAULT_RULE`): the mean of the
evaluation returns of the last 2.5 % of the frame budget (at 200M frames with 1M-frame bins: the last 5 points),
counted only for runs that reached the budget; a game's score is the mean over its complete runs. On the
published DreamerV2 curves this gives a gamer median of 2.16 (paper: 2.15); :func:`rule_comparison` shows
what the other plausible rules give.

Confidence intervals: stratified bootstrap (runs resampled with replacement within each game, as rliable
does), percentile intervals; IQM is the mean of the middle 50 % of all (run, game) normalised scores.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Mapping, Sequence
from functools import cache
from importlib import resources
from typing import NamedTuple

import numpy as np

from sb3_dreamer.envs.atari import PAPER_GAMES

# The 26 games of the Atari 100k benchmark (Kaiser et al. 2020), named as the paper's games.
ATARI100K: tuple[str, ...] = (
    "alien", "amidar", "assault", "asterix", "bank_heist", "battle_zone", "boxing", "breakout", "chopper_command",
    "crazy_climber", "demon_attack", "freeway", "frostbite", "gopher", "hero", "james_bond", "kangaroo", "krull",
    "kung_fu_master", "ms_pacman", "pong", "private_eye", "qbert", "road_runner", "seaquest", "up_n_down",
)  # fmt: skip
GAME_SETS: dict[str, tuple[str, ...]] = {"atari55": PAPER_GAMES, "atari100k": ATARI100K}
DEFAULT_RULE = "tail2.5"
Floats = Sequence[float] | np.ndarray  # returns or frames of one run
_BY_KEY = {game.replace("_", ""): game for game in PAPER_GAMES}


def canonical_game(name: str) -> str:
    """The paper's snake-case name of a game: ``atari_james_bond``, ``Jamesbond``, ``UpNDown`` -> ``james_bond``,
    ``up_n_down`` (unknown names come back without the ``atari_`` prefix).
    """
    name = name.removeprefix("atari_")
    return _BY_KEY.get(name.replace("_", "").lower(), name)


def game_set(spec: str | Sequence[str]) -> list[str]:
    """Games from a set name (``atari55``, ``atari100k``) or a comma-separated list / sequence of names.

    :raises ValueError: for a name that is not one of the 55 paper games (they have the normalisation scores).
    """
    if isinstance(spec, str):
        if spec in GAME_SETS:
            return list(GAME_SETS[spec])
        spec = [part.strip() for part in spec.split(",") if part.strip()]
    games = [canonical_game(name) for name in spec]
    unknown = [name for name, game in zip(spec, games) if game not in PAPER_GAMES]
    if unknown:
        raise ValueError(f"Unknown games {unknown}: use a set ({', '.join(GAME_SETS)}) or names of the 55 paper games.")
    return games


# ---------------------------------------------------------------- final scores

FINAL_RULES: dict[str, str] = {
    "tail2.5": "mean of the evaluations in the last 2.5 % of the budget (complete runs)",
    "last": "the last evaluation (complete runs)",
    "tail5": "mean of the evaluations in the last 5 % of the budget (complete runs)",
    "tail10": "mean of the evaluations in the last 10 % of the budget (complete runs)",
    "last_any": "the last evaluation of every run, complete or not",
    "max": "the best evaluation during training (complete runs)",
}


def final_score(frames: Floats, returns: Floats, budget: float, rule: str = DEFAULT_RULE) -> float | None:
    """A run's final score under ``rule`` (see :data:`FINAL_RULES`); None when the rule does not count the run.

    :param frames: (N,) frames at each evaluation, increasing. :param returns: (N,) mean evaluation returns.
    :param budget: the frame budget; a run is complete when its last evaluation is within 0.5 % of it.
    """
    xs, ys = np.asarray(frames, float), np.asarray(returns, float)
    if len(xs) == 0:
        return None
    if rule == "last_any":
        return float(ys[-1])
    if xs[-1] < 0.995 * budget:
        return None
    if rule == "last":
        return float(ys[-1])
    if rule == "max":
        return float(ys.max())
    fraction = {"tail2.5": 0.025, "tail5": 0.05, "tail10": 0.10}.get(rule)
    if fraction is None:
        raise ValueError(f"Unknown final-score rule {rule!r}; choose one of {list(FINAL_RULES)}.")
    return float(ys[xs > xs[-1] - fraction * budget].mean())


# ---------------------------------------------------------------- normalisation


def _data(name: str) -> bytes:
    return resources.files("sb3_dreamer.atari_benchmark").joinpath("data", name).read_bytes()


@cache
def normalisation_table() -> dict[str, dict[str, float]]:
    """Game -> scores of ``baselines.json`` (random, human_gamer, human_record, published agents), keyed by
    the paper's game names, James Bond's human_gamer corrected to 303.
    """
    table = {canonical_game(k): dict(v) for k, v in json.loads(_data("baselines.json")).items()}
    table["james_bond"]["human_gamer"] = 303.0
    return table


def normalise(game: str, score: float, kind: str = "gamer") -> float:
    """(score - random) / (human_<kind> - random) for ``kind`` ``gamer`` or ``record``."""
    row = normalisation_table()[game]
    return (score - row["random"]) / (row[f"human_{kind}"] - row["random"])


class Aggregates(NamedTuple):
    """Table 1's columns plus the IQM of gamer-normalised scores."""

    gamer_median: float
    gamer_mean: float
    record_mean: float
    clipped_record_mean: float
    gamer_iqm: float


def iqm(values: np.ndarray) -> float:
    """Interquartile mean: the mean of the middle 50 % (scipy's trim_mean(0.25) without scipy)."""
    values = np.sort(np.asarray(values, float).ravel())
    cut = int(np.floor(0.25 * len(values)))
    return float(values[cut : len(values) - cut].mean())


def aggregate(run_scores: Mapping[str, Floats]) -> Aggregates:
    """Aggregates over games of the per-game mean over runs (the IQM pools every run of every game).

    :param run_scores: game -> final scores of its runs (raw game scores).
    """
    games = sorted(run_scores)
    means = {g: float(np.mean(run_scores[g])) for g in games}
    gamer = np.array([normalise(g, means[g], "gamer") for g in games])
    record = np.array([normalise(g, means[g], "record") for g in games])
    pooled = np.concatenate([[normalise(g, s, "gamer") for s in run_scores[g]] for g in games])
    return Aggregates(
        float(np.median(gamer)), float(gamer.mean()), float(record.mean()), float(np.minimum(record, 1).mean()), iqm(pooled)
    )


def bootstrap_ci(
    run_scores: Mapping[str, Floats], reps: int = 2000, seed: int = 0, confidence: float = 0.95
) -> dict[str, tuple[float, float]]:
    """Stratified-bootstrap percentile intervals of every :class:`Aggregates` field: each replicate resamples,
    with replacement, the runs of each game (the games stay fixed), as rliable does.
    """
    rng = np.random.default_rng(seed)
    arrays = {g: np.asarray(v, float) for g, v in run_scores.items()}
    samples = np.array([
        aggregate({g: v[rng.integers(len(v), size=len(v))] for g, v in arrays.items()}) for _ in range(reps)
    ])  # fmt: skip
    low, high = np.percentile(samples, [50 * (1 - confidence), 50 * (1 + confidence)], axis=0)
    return {name: (float(lo), float(hi)) for name, lo, hi in zip(Aggregates._fields, low, high)}


# ---------------------------------------------------------------- published results


class Curve(NamedTuple):
    """One run's evaluation curve: (N,) frames and (N,) returns."""

    frames: np.ndarray
    returns: np.ndarray


@cache
def published_dreamerv2() -> dict[str, list[Curve]]:
    """Game -> the published DreamerV2 runs (8 seeds, 1M-frame bins, sticky actions, up to 200M frames)."""
    runs: dict[str, list[Curve]] = {}
    for run in json.loads(gzip.decompress(_data("atari-dreamerv2.json.gz"))):
        runs.setdefault(canonical_game(run["task"]), []).append(Curve(np.array(run["xs"]), np.array(run["ys"])))
    return runs


def published_final_scores(rule: str = DEFAULT_RULE, budget: float = 2e8) -> dict[str, list[float]]:
    """Game -> final scores of the published DreamerV2 runs under ``rule`` (runs the rule excludes are left out)."""
    scores = {}
    for game, curves in published_dreamerv2().items():
        finals = [final_score(c.frames, c.returns, budget, rule) for c in curves]
        scores[game] = [s for s in finals if s is not None]
    return scores


def published_baseline(method: str) -> dict[str, list[float]]:
    """Game -> [final score] of a published baseline column, e.g. ``iqn_sticky_2e8``, ``dqn_sticky_2e8``."""
    return {game: [row[method]] for game, row in normalisation_table().items() if game in PAPER_GAMES and method in row}


def rule_comparison(rules: Sequence[str] = tuple(FINAL_RULES)) -> dict[str, Aggregates]:
    """Table 1's DreamerV2 row under each final-score rule, from the published curves."""
    return {rule: aggregate(published_final_scores(rule)) for rule in rules}
