"""A short real Atari run on this CPU through rl-zoo3, with the paper's settings, summarised against the
published DreamerV2 curve for the game.

    python benchmarks/atari_cpu.py run --game Pong --minutes 55     # rl-zoo3 train, stopped cleanly at the limit
    python benchmarks/atari_cpu.py summarise --game Pong            # JSON + plot from its logs

``run`` calls ``python -m sb3_dreamer.zoo train --algo dreamerv2 --env sb3_dreamer/<Game>-v0`` (the yml's
``atari`` entry: 50k prefill steps, one update per 16 agent steps, batch 16 x 50) with one torch thread,
TensorBoard logs and checkpoints, and sends it SIGINT at the time limit (rl-zoo3 then saves the model).
``summarise`` writes ``benchmarks/results/atari_cpu/<game>.json`` (frames, episodes, frames/s of the random
prefill, seconds per update in the training phase, last metrics) and ``<game>.png`` (training-episode returns
against frames over the published curve, first 1M frames).
"""

import argparse
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).parent
PUBLISHED = Path(__file__).parents[2] / "shared" / "reference" / "scores" / "atari-dreamerv2.json"
REFERENCE = HERE / "reference" / "atari-dreamerv2-{game}.json"
RESULTS = HERE / "results" / "atari_cpu"


def run(game: str, minutes: float, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, "-m", "sb3_dreamer.zoo", "train", "--algo", "dreamerv2", "--env", f"sb3_dreamer/{game}-v0",
        "--seed", "0", "--eval-freq", "-1", "-f", str(folder / "logs"), "-tb", str(folder / "tb"),
        "--num-threads", "1", "--log-interval", "1", "--save-freq", "20000",
    ]  # fmt: skip
    with open(folder / "train.log", "w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            process.wait(timeout=minutes * 60)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGINT)  # rl-zoo3 catches KeyboardInterrupt and saves the model
            process.wait(timeout=600)
    print(f"done: {folder}")


def reference_curve(game: str) -> dict[str, list[float]]:
    """Median over seeds of the published curve (1M-frame bins), cached in benchmarks/reference/."""
    cached = Path(str(REFERENCE).format(game=game.lower()))
    if not cached.exists():
        task = "atari_" + "".join("_" + c.lower() if c.isupper() else c for c in game).lstrip("_")
        runs = [r for r in json.loads(PUBLISHED.read_text()) if r["task"] == task]
        xs = runs[0]["xs"]
        ys = np.median([r["ys"][: len(xs)] for r in runs if len(r["ys"]) >= len(xs)], 0)
        cached.write_text(json.dumps({"task": task, "source": "danijar/dreamerv2 scores (MIT)", "seeds": len(runs),
                                      "frames": xs, "median_return": ys.tolist()}))  # fmt: skip
    return json.loads(cached.read_text())


def summarise(game: str, folder: Path) -> dict:
    (run_dir,) = sorted((folder / "logs" / "dreamerv2").glob(f"sb3_dreamer-{game}-v0_*"))[-1:]
    monitor = pd.read_csv(run_dir / "0.monitor.csv", skiprows=1)
    (progress_file,) = sorted((folder / "tb").rglob("progress.json"))[-1:]
    progress = pd.read_json(progress_file, lines=True)
    frames_at_episode_end = 4 * monitor["l"].cumsum()
    prefill = progress[progress.get("train/n_updates").isna()] if "train/n_updates" in progress else progress
    training = progress.dropna(subset=["train/n_updates"]) if "train/n_updates" in progress else progress.iloc[:0]
    summary: dict = {
        "game": game,
        "protocol": "sb3_dreamer/<Game>-v0: sticky actions 0.25, repeat 4, 64x64 gray, full action set",
        "agent_steps": int(progress["time/total_timesteps"].max()),
        "frames": int(progress["time/frames"].max()),
        "episodes": len(monitor),
        "episode_returns": monitor["r"].tolist(),
        "updates": int(training["train/n_updates"].max()) if len(training) else 0,
    }
    if len(prefill) >= 2:
        p0, p1 = prefill.iloc[0], prefill.iloc[-1]
        summary["prefill_frames_per_s"] = (
            4 * (p1["time/total_timesteps"] - p0["time/total_timesteps"]) / (p1["time/time_elapsed"] - p0["time/time_elapsed"])
        )
    if len(training) >= 2:
        t0, t1 = training.iloc[0], training.iloc[-1]
        steps = t1["time/total_timesteps"] - t0["time/total_timesteps"]
        seconds = t1["time/time_elapsed"] - t0["time/time_elapsed"]
        summary["seconds_per_update"] = seconds / (t1["train/n_updates"] - t0["train/n_updates"])
        summary["train_phase_frames_per_s"] = 4 * steps / seconds
        summary["last_metrics"] = {k: float(v) for k, v in t1.items() if str(k).startswith("train/") and pd.notna(v)}
    reference = reference_curve(game)
    summary["published_median_at_1M_frames"] = reference["median_return"][0]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{game.lower()}.json").write_text(json.dumps(summary, indent=2))
    _plot(game, frames_at_episode_end.to_numpy(), monitor["r"].to_numpy(), reference, RESULTS / f"{game.lower()}.png")
    return summary


def _plot(game: str, frames: np.ndarray, returns: np.ndarray, reference: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    xs, ys = np.array(reference["frames"]), np.array(reference["median_return"])
    keep = xs <= 5e6
    ax.plot(xs[keep], ys[keep], "k--", marker="o", label=f"DreamerV2 published (median of {reference['seeds']})")
    ax.plot(frames, returns, ".", label="ours: training episodes (CPU)")
    ax.axvline(4 * 50_000, color="gray", lw=1, ls=":", label="end of random prefill")
    ax.set(xlabel="frames", ylabel="episode return", title=f"{game}: the first frames on a 2-core CPU")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["run", "summarise"])
    parser.add_argument("--game", default="Pong")
    parser.add_argument("--minutes", type=float, default=55.0)
    parser.add_argument("--folder", type=Path, default=Path("runs/atari_cpu"))
    args = parser.parse_args()
    start = time.time()
    if args.what == "run":
        run(args.game, args.minutes, args.folder)
    summary = summarise(args.game, args.folder)
    print(json.dumps({k: v for k, v in summary.items() if k != "episode_returns"}, indent=2))
    print(f"({time.time() - start:.0f} s)")


if __name__ == "__main__":
    main()
