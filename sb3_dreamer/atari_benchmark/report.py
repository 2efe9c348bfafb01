"""The benchmark report: a markdown file and plots from a results folder written by the runner.

Every number carries its protocol and frame count: our runs at the budget that was run, the published
DreamerV2 curves cut at the same budget (same final-score rule), and the published 200M-frame results.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

import numpy as np

from sb3_dreamer.atari_benchmark import scores
from sb3_dreamer.atari_benchmark.runner import ALGOS
from sb3_dreamer.envs.atari import FRAMES_PER_STEP

PROTOCOL = (
    "sticky actions 0.25, full action set (18), no life-loss terminal, 4 frames per agent step, raw game score; "
    "DreamerV2 sees 64x64 grayscale single frames, PPO/DQN/QR-DQN rl-zoo3's 84x84 grayscale 4-frame stacks "
    "(rewards clipped for their training only, FIRE pressed on reset by SB3's AtariWrapper); evaluation: "
    "rl-zoo3's EvalCallback, stochastic actions"
)


def load_results(out: str | pathlib.Path) -> list[dict[str, Any]]:
    """Every ``result.json`` under ``out/runs``."""
    return [json.loads(p.read_text()) for p in sorted(pathlib.Path(out).glob("runs/*/*/seed*/result.json"))]


def run_finals(results: list[dict[str, Any]], rule: str) -> dict[str, dict[str, list[float]]]:
    """algo -> game -> final scores of its runs under ``rule`` (runs the rule excludes are left out)."""
    finals: dict[str, dict[str, list[float]]] = {}
    for r in results:
        score = scores.final_score(r["eval_frames"], r["eval_returns"], r["frames_budget"], rule)
        if score is not None:
            finals.setdefault(r["algo"], {}).setdefault(r["game"], []).append(score)
    return finals


def published_at(budget: float, games: list[str], rule: str) -> dict[str, list[float]]:
    """The published DreamerV2 runs cut at ``budget`` frames, scored with ``rule`` (games without a point
    before the budget are left out).
    """
    out: dict[str, list[float]] = {}
    for game in games:
        finals = []
        for curve in scores.published_dreamerv2()[game]:
            keep = curve.frames <= budget
            score = scores.final_score(curve.frames[keep], curve.returns[keep], budget, rule) if keep.any() else None
            if score is not None:
                finals.append(score)
        if finals:
            out[game] = finals
    return out


def _fmt(values: list[float]) -> str:
    if not values:
        return "-"
    spread = f" ± {np.std(values):.0f}" if len(values) > 1 else ""
    return f"{np.mean(values):.1f}{spread} ({len(values)})"


def _aggregate_rows(label: str, run_scores: dict[str, list[float]], reps: int) -> str:
    if not run_scores:
        return f"| {label} | - | - | - | - | - |\n"
    point = scores.aggregate(run_scores)
    intervals = scores.bootstrap_ci(run_scores, reps=reps)
    cells = [f"{v:.3f} [{intervals[k][0]:.3f}, {intervals[k][1]:.3f}]" for k, v in point._asdict().items()]
    return f"| {label} | " + " | ".join(cells) + " |\n"


def write_report(out: str | pathlib.Path, rule: str = scores.DEFAULT_RULE, reps: int = 2000) -> pathlib.Path:
    """Write ``out/report.md``, ``out/curves.png`` and ``out/aggregate.png``; :return: the report's path."""
    out = pathlib.Path(out)
    results = load_results(out)
    settings = json.loads((out / "settings.json").read_text()) if (out / "settings.json").is_file() else {}
    budget = settings.get("frames") or max((r["frames_budget"] for r in results), default=0)
    games = sorted({r["game"] for r in results})
    algos = [a for a in ALGOS if any(r["algo"] == a for r in results)]
    finals = run_finals(results, rule)
    published = published_at(budget, games, rule)
    published_200m = {g: v for g, v in scores.published_final_scores(rule).items() if g in games}
    failed = sorted(str(p.parent.relative_to(out / "runs")) for p in out.glob("runs/*/*/seed*/run.json")
                    if json.loads(p.read_text()).get("status") == "failed")  # fmt: skip

    lines = [
        "# Atari benchmark report\n\n",
        f"Budget: **{budget:,.0f} frames** per run ({budget / FRAMES_PER_STEP:,.0f} agent steps); ",
        f"games: {', '.join(games) or '-'}; ",
        f"algorithms: {', '.join(algos) or '-'}; final-score rule: `{rule}` ({scores.FINAL_RULES[rule]}).\n\n",
        f"Protocol: {PROTOCOL}.\n\n",
        f"Settings: `{json.dumps(settings)}`\n\n",
        f"## Final scores at {budget:,.0f} frames (mean ± std over seeds, number of runs)\n\n",
        "| game | " + " | ".join(algos) + f" | published DreamerV2 at {budget:,.0f} frames | published DreamerV2 at 200M |\n",
        "| --- " * (len(algos) + 3) + "|\n",
    ]
    for game in games:
        cells = [_fmt(finals.get(a, {}).get(game, [])) for a in algos]
        lines.append(
            f"| {game} | "
            + " | ".join(cells)
            + f" | {_fmt(published.get(game, []))} | {_fmt(published_200m.get(game, []))} |\n"
        )
    lines += [
        f"\n## Aggregates over these {len(games)} games (95 % stratified-bootstrap intervals)\n\n",
        "Human-gamer-normalised median and mean, record-normalised mean, clipped record mean, gamer-normalised IQM. "
        "Over a few games these are descriptive only; the paper's Table 1 is over 55 games.\n\n",
        "| agent (frames) | gamer median | gamer mean | record mean | clipped record mean | gamer IQM |\n",
        "| --- | --- | --- | --- | --- | --- |\n",
    ]
    for algo in algos:
        lines.append(_aggregate_rows(f"{algo} ({budget:,.0f})", finals.get(algo, {}), reps))
    lines.append(_aggregate_rows(f"published DreamerV2 ({budget:,.0f})", published, reps))
    lines.append(_aggregate_rows("published DreamerV2 (200M)", published_200m, reps))
    if failed:
        lines.append("\n## Failed runs\n\n" + "".join(f"- `{name}` (see its `run.json`)\n" for name in failed))
    lines.append("\n![per-game curves](curves.png)\n\n![aggregate](aggregate.png)\n")
    path = out / "report.md"
    path.write_text("".join(lines))
    _plot_curves(results, games, algos, budget, out / "curves.png")
    _plot_aggregate(results, games, algos, budget, out / "aggregate.png")
    return path


def _mean_curve(results: list[dict[str, Any]], algo: str, game: str) -> tuple[np.ndarray, np.ndarray] | None:
    runs = [r for r in results if r["algo"] == algo and r["game"] == game and r["eval_frames"]]
    if not runs:
        return None
    length = min(len(r["eval_frames"]) for r in runs)
    frames = np.array(runs[0]["eval_frames"][:length])
    return frames, np.mean([r["eval_returns"][:length] for r in runs], axis=0)


def _published_median(game: str, budget: float) -> tuple[np.ndarray, np.ndarray] | None:
    curves = [c for c in scores.published_dreamerv2()[game] if (c.frames <= budget).any()]
    if not curves:
        return None
    length = min(int((c.frames <= budget).sum()) for c in curves)
    return curves[0].frames[:length], np.median([c.returns[:length] for c in curves], axis=0)


def _plot_curves(results: list[dict[str, Any]], games: list[str], algos: list[str], budget: float, path: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = min(4, max(len(games), 1))
    rows = int(np.ceil(max(len(games), 1) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(4 * columns, 3 * rows), squeeze=False)
    for ax, game in zip(axes.flat, games):
        for algo in algos:
            curve = _mean_curve(results, algo, game)
            if curve is not None:
                ax.plot(*curve, marker=".", label=algo)
        published = _published_median(game, max(budget, 1e6))
        if published is not None:
            ax.plot(*published, color="gray", ls="--", marker="x", label="published DreamerV2 (median of seeds)")
        row = scores.normalisation_table()[game]
        ax.axhline(row["random"], color="k", lw=0.5, ls=":", label="random")
        ax.set(title=game, xlabel="frames", ylabel="eval return")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(games) :]:
        ax.axis("off")
    if games:
        axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _plot_aggregate(
    results: list[dict[str, Any]], games: list[str], algos: list[str], budget: float, path: pathlib.Path
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for label, curves in [(a, [_mean_curve(results, a, g) for g in games]) for a in algos] + [
        ("published DreamerV2", [_published_median(g, max(budget, 1e6)) for g in games])
    ]:
        present = [(g, c) for g, c in zip(games, curves) if c is not None]
        if not present:
            continue
        length = min(len(c[0]) for _, c in present)
        frames = present[0][1][0][:length]
        normalised = [[scores.normalise(g, v) for v in c[1][:length]] for g, c in present]
        ax.plot(frames, np.median(normalised, axis=0), marker=".", ls="--" if "published" in label else "-", label=label)
    ax.set(xlabel="frames", ylabel="median human-gamer-normalised score", title=f"{len(games)} games")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
