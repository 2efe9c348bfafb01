"""The 55-game Atari benchmark, one command from laptop to cluster.

    python -m sb3_dreamer.atari_benchmark run --games atari55 --algos dreamerv2 ppo dqn qrdqn --seeds 0 1 2 \\
        --frames 200000000 --out bench/                      # one run after another on this machine
    python -m sb3_dreamer.atari_benchmark run ... --parallel 4  # four processes at a time
    python -m sb3_dreamer.atari_benchmark run ... --ray-address auto --gpus-per-run 1   # Ray tasks on a cluster
    python -m sb3_dreamer.atari_benchmark status --out bench/   # done / running / failed / pending, ETA
    python -m sb3_dreamer.atari_benchmark report --out bench/   # bench/report.md, curves.png, aggregate.png

``--games``: ``atari55`` (the paper's 55), ``atari100k`` (the 26 of Atari 100k) or a comma-separated list.
Running the same ``run`` command again skips finished runs and resumes interrupted ones from their last
checkpoint. ``--override dreamerv2:learning_starts=5000`` changes one hyperparameter of one algorithm
(rl-zoo3's yml syntax for the value). See :mod:`sb3_dreamer.atari_benchmark.runner` for the protocol.
"""

import argparse
import json
import pathlib
import sys
from typing import Any

import yaml

from sb3_dreamer.atari_benchmark import report, runner, scores


def _overrides(items: list[str]) -> dict[str, dict[str, Any]]:
    overrides: dict[str, dict[str, Any]] = {}
    for item in items:
        algo, _, assignment = item.partition(":")
        key, _, value = assignment.partition("=")
        if not (algo and key and value):
            raise SystemExit(f"--override {item!r}: expected ALGO:KEY=VALUE, e.g. dreamerv2:learning_starts=5000")
        overrides.setdefault(algo, {})[key] = yaml.safe_load(value)
    return overrides


def _matrix_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--games", default="pong,breakout,boxing", help="atari55, atari100k or a comma list")
    parser.add_argument("--algos", nargs="+", default=list(runner.ALGOS), choices=runner.ALGOS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--frames", type=int, default=None, help="frame budget per run (default: the one --out was run with)")
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("atari_benchmark"))


def _settings(args: argparse.Namespace) -> runner.Settings:
    saved = args.out / "settings.json"
    if args.frames is None and saved.is_file():
        if args.command == "run" and (args.override or args.max_episode_frames):
            print(f"note: --frames not given, so the settings of {saved} are used as they are (--override ignored)")
        return runner.Settings(**json.loads(saved.read_text()))
    if args.frames is None:
        raise SystemExit(f"--frames is needed ({saved} does not exist yet)")
    defaults = runner.Settings(frames=args.frames)  # `status` has only the matrix arguments
    return runner.Settings(
        frames=args.frames, evaluations=getattr(args, "evaluations", defaults.evaluations),
        eval_episodes=getattr(args, "eval_episodes", defaults.eval_episodes),
        checkpoints=getattr(args, "checkpoints", defaults.checkpoints), threads=getattr(args, "threads", defaults.threads),
        overrides=_overrides(getattr(args, "override", [])), device=getattr(args, "device", defaults.device),
        max_episode_frames=getattr(args, "max_episode_frames", None),
    )  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sb3_dreamer.atari_benchmark", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run (or resume) the matrix")
    _matrix_arguments(run)
    run.add_argument("--evaluations", type=int, default=20, help="evaluation points over the budget")
    run.add_argument("--eval-episodes", type=int, default=5)
    run.add_argument("--checkpoints", type=int, default=10, help="checkpoints over the budget (for resuming)")
    run.add_argument("--threads", type=int, default=1, help="torch threads (and Ray CPUs) per run")
    run.add_argument("--device", default="auto")
    run.add_argument("--override", action="append", default=[], metavar="ALGO:KEY=VALUE")
    run.add_argument("--max-episode-frames", type=int, default=None, help="shorter episodes (smoke tests only)")
    run.add_argument("--parallel", type=int, default=1, help="runs at a time on this machine")
    run.add_argument("--ray-address", default=None, help="run as Ray tasks on this cluster (e.g. auto)")
    run.add_argument("--gpus-per-run", type=float, default=0.0)
    status = commands.add_parser("status", help="which runs are done, running, failed, pending; ETA")
    _matrix_arguments(status)
    rep = commands.add_parser("report", help="write report.md and plots from the results")
    rep.add_argument("--out", type=pathlib.Path, default=pathlib.Path("atari_benchmark"))
    rep.add_argument("--rule", default=scores.DEFAULT_RULE, choices=list(scores.FINAL_RULES))
    rep.add_argument("--bootstrap", type=int, default=2000)
    args = parser.parse_args(argv)

    if args.command == "report":
        print(f"wrote {report.write_report(args.out, args.rule, args.bootstrap)}")
        return
    specs = runner.matrix(scores.game_set(args.games), args.algos, args.seeds)
    settings = _settings(args)
    if args.command == "status":
        _print_progress(runner.progress(specs, settings, args.out))
        return
    print(f"{len(specs)} runs of {settings.frames:,} frames into {args.out}", flush=True)

    def announce(result: runner.RunResult) -> None:
        print(f"[{result.status}] {result.spec.name} {result.message}", flush=True)
        _print_progress(runner.progress(specs, settings, args.out))

    results = runner.run_matrix(specs, settings, args.out, args.parallel, args.ray_address, args.gpus_per_run, announce)
    failed = [r for r in results if r.status == "failed"]
    print(f"finished: {len(results) - len(failed)} ok, {len(failed)} failed")
    sys.exit(1 if failed else 0)


def _print_progress(state: runner.Progress) -> None:
    eta = f"{state.eta_s / 3600:.1f} h" if state.eta_s is not None else "unknown"
    print(
        f"done {len(state.done)}, running {len(state.running)}, failed {len(state.failed)}, pending {len(state.pending)}; "
        f"{state.frames_done:,}/{state.frames_total:,} frames; ETA {eta}",
        flush=True,
    )
    for name in state.failed:
        print(f"  failed: {name}")
    for name in state.running:
        print(f"  running: {name}")


if __name__ == "__main__":
    main()
