"""Collect every committed GPU run (``benchmarks/results/gpu/<card>/<run>/gpu_bench.json``) into one table and plot.

python benchmarks/gpu/summarize.py   # writes benchmarks/results/gpu/summary.{csv,png}
"""

import csv
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

RESULTS = Path(__file__).parents[1] / "results" / "gpu"
UPDATES_TARGET, FRAMES_TARGET = 20.0, 1000.0  # the aims on one H100: updates/s, frames/s
# Runs whose code replayed only the update from a graph (acting from a graph came one commit later).
UPDATE_ONLY_GRAPH_RUNS = {"2_cuda_graph"}


def _label(row: dict) -> str:
    precision = {"no": "fp32"}.get(row["precision"], row["precision"])
    mode = "graph" if row.get("cuda_graph") else ("compiled" if row.get("compiled") else "eager")
    return f"{precision} {mode}"


def _card(row: dict) -> str:
    return row["card"].replace("NVIDIA ", "").split()[0]


def collect() -> tuple[list[dict], list[dict]]:
    """:return: update rows and end-to-end rows, one per measurement, with card and run named."""
    updates, learn = [], []
    for path in sorted(RESULTS.glob("*/*/gpu_bench.json")):
        report = json.loads(path.read_text())
        where = {"card": report["device"], "run": path.parent.name}
        for row in report.get("updates", {}).get("rows", []) + ([report["compiled"]] if "compiled" in report else []):
            if "seconds_per_update" in row:
                updates.append({**where, "setting": _label(row), "updates_per_s": round(row["updates_per_s"], 2),
                                "tflops": round(row.get("tflops", float("nan")), 2)})  # fmt: skip
        atari = report.get("atari_learn", {})
        if atari.get("train_frames_per_s"):
            graphed_acting = atari.get("cuda_graph") and path.parent.name not in UPDATE_ONLY_GRAPH_RUNS
            acting = "graph" if graphed_acting else "eager"
            learn.append({**where, "setting": _label(atari), "acting": acting,
                          "frames_per_s": round(atari["train_frames_per_s"], 1)})  # fmt: skip
    return updates, learn


def main() -> None:
    updates, learn = collect()
    if not updates or not learn:
        raise SystemExit(f"No update or learn measurements under {RESULTS}/<card>/<run>/gpu_bench.json yet.")
    for name, rows in (("summary_updates.csv", updates), ("summary_learn.csv", learn)):
        with open(RESULTS / name, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 5), gridspec_kw={"width_ratios": [2, 1]})
    labels = [f"{_card(r)} {r['setting']} (run {r['run'][0]})" for r in updates]
    ax1.barh(labels, [r["updates_per_s"] for r in updates], color=["C1" if "graph" in x else "C0" for x in labels])
    ax1.axvline(UPDATES_TARGET, color="k", ls="--", label=f"aim: {UPDATES_TARGET:.0f} updates/s")
    ax1.set(xlabel="updates/s (atari preset, batch 16 x 50)", title="Gradient updates")
    ax1.legend()
    labels = [f"{_card(r)} {r['setting']} (run {r['run'][0]})\nacting {r['acting']}" for r in learn]
    ax2.barh(labels, [r["frames_per_s"] for r in learn], color=["C1" if "graph" in x else "C0" for x in labels])
    ax2.axvline(FRAMES_TARGET, color="k", ls="--", label=f"aim: {FRAMES_TARGET:.0f} frames/s")
    ax2.set(xlabel="frames/s (Pong, paper settings, training phase)", title="End-to-end learn")
    ax2.legend()
    fig.tight_layout()
    fig.savefig(RESULTS / "summary.png", dpi=100)
    print(f"wrote {RESULTS}/summary_updates.csv, summary_learn.csv, summary.png")


if __name__ == "__main__":
    main()
