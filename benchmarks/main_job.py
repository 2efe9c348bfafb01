"""The main job (``python -m sb3_dreamer.train``) as a new user runs it, for several seeds, one after another.

See ``python benchmarks/main_job.py --help``.
"""

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
FIELDS = [
    "seed", "steps", "stopped_when_solved", "final_mean", "final_std", "best_mean", "best_std", "best_periodic_eval",
    "use", "solved", "train_s", "wall_s", "returncode",
]  # fmt: skip

DESCRIPTION = """\
Run the main job, python -m sb3_dreamer.train with its defaults (CartPole-v1, tuned settings, one torch
thread, an evaluation every 1k steps, stop when one >= 475 is confirmed over 20 fresh episodes, at most 30k
steps), for --seeds, one after another, and record per seed the final and the best model's scores (20
deterministic episodes each, as the main job evaluates them at its end), the steps trained and the wall time.

Writes, refreshed after every seed: <out>/main_job.csv (one row per seed), <out>/curves.csv (the periodic
evaluations), <out>/summary.json (the bar: final evaluation >= 475 in >= 4 of 5 seeds), <out>/main_job.png
(every seed's curve and the solved line) and <out>/seed<k>.log (the main job's output without SB3's log
tables). Models, TensorBoard logs and checkpoints go to --runs-dir.

example:
  nohup nice -n 10 python benchmarks/main_job.py --seeds 0 1 2 3 4 &
  python benchmarks/main_job.py --seeds 0 -- --steps 20000      # arguments after -- go to the main job
"""


def _write_csv(path: Path, fields: list[str], rows: list[dict]) -> None:
    with path.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def _read_csv(path: Path) -> list[dict]:
    """Rows of an earlier invocation, numbers as numbers."""
    if not path.is_file():
        return []

    def value(text: str):
        for kind in (int, float):
            try:
                return kind(text)
            except ValueError:
                pass
        return {"True": True, "False": False}.get(text, text)

    with path.open() as file:
        return [{key: value(text) for key, text in row.items()} for row in csv.DictReader(file)]


def _refresh(out: Path, rows: list[dict], curves: list[dict], bar: float, needed: int, n_seeds: int, extra: list[str]):
    _write_csv(out / "main_job.csv", FIELDS, rows)
    _write_csv(out / "curves.csv", ["seed", "steps", "mean", "std"], curves)
    finals = [r["final_mean"] for r in rows if r["final_mean"] != ""]
    bests = [r["best_mean"] for r in rows if r["best_mean"] != ""]
    at_bar = sum(f >= bar for f in finals)
    summary = {
        "command": "python -m sb3_dreamer.train --seed K --out RUNS " + " ".join(extra),
        "seeds_done": len(rows),
        "seeds": [r["seed"] for r in rows],
        "seeds_planned": n_seeds,
        "bar": f"final evaluation >= {bar:g} in >= {needed} of {n_seeds} seeds",
        "final_at_bar": at_bar,
        "passed": at_bar >= needed if len(rows) == n_seeds else None,
        "final_mean_per_seed": finals,
        "best_mean_per_seed": bests,
        "final_median": float(np.median(finals)) if finals else None,
        "steps_per_seed": [r["steps"] for r in rows],
        "wall_s_per_seed": [r["wall_s"] for r in rows],
        "wall_s_median": float(np.median([r["wall_s"] for r in rows])) if rows else None,
        "cpu": _cpu(),
        "torch_threads": 1,
        "note": "other processes may have shared the CPU; the wall times are upper bounds for an idle machine",
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    _plot(out / "main_job.png", rows, curves, bar)


def _trim_log(path: Path) -> None:
    """Keep the main job's own lines (evaluations, confirmations, the closing report), not SB3's log tables."""
    lines = path.read_text(errors="replace").splitlines()
    kept = [line for line in lines if line.strip() and not line.startswith(("|", "---"))]
    path.write_text("\n".join(kept) + "\n")


def _cpu() -> str:
    try:
        names = [
            line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if "model name" in line
        ]
        return f"{names[0]} x{len(names)}" if names else "unknown"
    except OSError:
        return "unknown"


def _plot(path: Path, rows: list[dict], curves: list[dict], bar: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for row in rows:
        seed = row["seed"]
        points = [(c["steps"], c["mean"]) for c in curves if c["seed"] == seed]
        (line,) = ax.plot(*zip(*points), marker=".", label=f"seed {seed}") if points else ax.plot([], [])
        if row["final_mean"] != "":
            ax.errorbar(
                [row["steps"]], [row["final_mean"]], yerr=[row["final_std"]], fmt="o", color=line.get_color(), capsize=3
            )
    ax.axhline(bar, color="green", linestyle="--", label=f"solved ({bar:g})")
    ax.set(xlabel="environment steps", ylabel="episode return (deterministic)",
           title="python -m sb3_dreamer.train: periodic evaluations (5 episodes), final model (20, dot)")  # fmt: skip
    ax.title.set_fontsize(9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        extra, argv = argv[argv.index("--") + 1 :], argv[: argv.index("--")]
    parser = argparse.ArgumentParser(
        prog="python benchmarks/main_job.py",
        description=DESCRIPTION,
        formatter_class=type("F", (argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter), {}),
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4], help="seeds, run one after another")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "main_job", help="results folder")
    parser.add_argument("--runs-dir", type=Path, default=Path("/tmp/sb3_dreamer_main_job"), help="the main job's --out")
    parser.add_argument("--bar", type=float, default=475.0, help="final evaluation that counts as solved")
    parser.add_argument("--needed", type=int, default=4, help="seeds at the bar needed to pass")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    # Rows of other seeds from an earlier invocation stay (run the missing seeds later with --seeds).
    rows = [r for r in _read_csv(args.out / "main_job.csv") if r["seed"] not in args.seeds]
    curves = [c for c in _read_csv(args.out / "curves.csv") if c["seed"] not in args.seeds]
    n_seeds = len(rows) + len(args.seeds)
    for seed in args.seeds:
        command = [sys.executable, "-m", "sb3_dreamer.train", "--seed", str(seed), "--out", str(args.runs_dir), *extra]
        print(" ".join(command), flush=True)
        start = time.perf_counter()
        log = args.out / f"seed{seed}.log"
        with log.open("w") as file:
            returncode = subprocess.call(command, stdout=file, stderr=subprocess.STDOUT, env=os.environ.copy())
        wall_s = round(time.perf_counter() - start, 1)
        _trim_log(log)
        env_id = extra[extra.index("--env") + 1] if "--env" in extra[:-1] else "CartPole-v1"
        run_dir = args.runs_dir / f"{env_id}_seed{seed}"
        row: dict = dict.fromkeys(FIELDS, "")
        row.update(seed=seed, wall_s=wall_s, returncode=returncode)
        summary_path = run_dir / "summary.json"
        if returncode == 0 and summary_path.is_file():
            s = json.loads(summary_path.read_text())
            best = s["best"] or {}
            row.update(
                steps=s["steps"], stopped_when_solved=s["stopped_when_solved"], final_mean=round(s["final"]["mean"], 1),
                final_std=round(s["final"]["std"], 1), best_mean=round(best["mean"], 1) if best else "",
                best_std=round(best["std"], 1) if best else "",
                best_periodic_eval=round(best["periodic_eval_mean"], 1) if best else "",
                use=Path(s["use"]).name, solved=s["solved"], train_s=s["train_s"],
            )  # fmt: skip
        npz = run_dir / "evaluations.npz"
        if npz.is_file():
            data = np.load(npz)
            for steps, returns in zip(data["timesteps"], data["results"]):
                curves.append(dict(seed=seed, steps=int(steps), mean=round(float(np.mean(returns)), 1),
                                   std=round(float(np.std(returns)), 1)))  # fmt: skip
        rows = sorted([*rows, row], key=lambda r: r["seed"])
        curves.sort(key=lambda c: (c["seed"], c["steps"]))
        print(json.dumps(row), flush=True)
        _refresh(args.out, rows, curves, args.bar, args.needed, n_seeds, extra)
    print(json.loads((args.out / "summary.json").read_text()))


if __name__ == "__main__":
    main()
