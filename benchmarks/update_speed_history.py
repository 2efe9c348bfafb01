"""Every committed ``update_speed.py`` run at the ``atari`` size in fp32, against sheeprl timed in the same run.

Reads ``results/update_speed*session<N>*.json`` (each names its session), writes one CSV row per run and a
plot of our seconds per update over sheeprl's, run by run, with the 0.5x target drawn::

    python benchmarks/update_speed_history.py

Only ratios from one run compare: the machine changes between sessions (the fp32 matmul rate each run
measured is in the CSV), and sheeprl's own time moves from one run to the next.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
from pathlib import Path
from typing import NamedTuple

RESULTS = Path(__file__).parent / "results"
TARGET = 0.5  # issue 8: at most half of sheeprl's seconds per update


class Run(NamedTuple):
    session: int
    file: str
    compile_model: bool
    ours_s: float
    sheeprl_s: float
    ratio: float
    ratio_keep_memory: float | None
    matmul_gflops: float | None
    cpu: str


def session_of(path: Path) -> int | None:
    """The session a result file names (``..._session12_rounds_run3.json`` -> 12), None if it names none."""
    found = re.search(r"session(\d+)", path.name)
    return int(found.group(1)) if found else None


def read_runs(results: Path) -> list[Run]:
    """The fp32 ``atari`` runs with sheeprl beside them, in session order (file name order within one)."""
    runs = []
    for path in sorted(results.glob("update_speed*.json")):
        session = session_of(path)
        if session is None:
            continue
        data = json.loads(path.read_text())
        for result in data["results"]:
            if result["preset"] != "atari" or result.get("mixed_precision", "no") != "no":
                continue
            if "ours_over_sheeprl" not in result:
                continue
            runs.append(
                Run(
                    session=session,
                    file=path.name,
                    compile_model=bool(result.get("compile_model")),
                    ours_s=result["seconds_per_update"],
                    sheeprl_s=result["sheeprl_0.8.4_seconds_per_update"],
                    ratio=result["ours_over_sheeprl"],
                    ratio_keep_memory=result.get("ours_over_sheeprl_keep_memory"),
                    matmul_gflops=data.get("matmul_gflops_fp32"),
                    cpu=data.get("cpu") or "not recorded",
                )
            )
    return sorted(runs, key=lambda run: (run.session, _run_number(run.file)))


def _run_number(name: str) -> int:
    found = re.search(r"run(\d+)", name)
    return int(found.group(1)) if found else 99  # a run without a number came after the numbered ones


def write_csv(runs: list[Run], path: Path) -> None:
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(Run._fields)
        writer.writerows(runs)


def plot(runs: list[Run], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 7), sharex=True)
    index = range(len(runs))
    for compiled, marker, label in ((True, "o", "compile_model=True"), (False, "s", "eager")):
        points = [(i, run) for i, run in zip(index, runs) if run.compile_model == compiled]
        if not points:
            continue
        top.scatter([i for i, _ in points], [run.ratio for _, run in points], marker=marker, label=label)
        bottom.scatter([i for i, _ in points], [run.ours_s for _, run in points], marker=marker, color="C0")
        bottom.scatter([i for i, _ in points], [run.sheeprl_s for _, run in points], marker=marker, color="C3")
    top.axhline(TARGET, color="k", linestyle="--", linewidth=1, label=f"target ({TARGET}x)")
    top.set_ylabel("ours / sheeprl (same run)")
    top.legend(loc="upper right")
    bottom.set_ylabel("seconds per update")
    bottom.legend(
        handles=[plt.Line2D([], [], marker="o", linestyle="", color=c) for c in ("C0", "C3")],
        labels=["ours", "sheeprl 0.8.4"],
        loc="upper left",
    )
    # one tick per session, at its first run
    firsts = {}
    for i, run in zip(index, runs):
        firsts.setdefault(run.session, i)
    bottom.set_xticks(list(firsts.values()), [f"s{session}" for session in firsts])
    bottom.set_xlabel("runs, in order; ticks mark each session's first (each session ran on its own machine)")
    for boundary in list(firsts.values())[1:]:
        for axis in (top, bottom):
            axis.axvline(boundary - 0.5, color="0.85", linewidth=1)
    fig.suptitle("One update at the paper's Atari size, fp32, 2 CPU threads, against sheeprl 0.8.4 in the same run")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    runs = read_runs(args.results)
    write_csv(runs, args.results / "update_speed_history.csv")
    plot(runs, args.results / "update_speed_history.png")
    for run in runs:
        mode = "compiled" if run.compile_model else "eager"
        print(f"session {run.session:>2} {mode:8} {run.ours_s:6.2f} s vs {run.sheeprl_s:6.2f} s: {run.ratio:.3f}  {run.file}")


if __name__ == "__main__":
    main()
