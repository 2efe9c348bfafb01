"""The 55-game Atari benchmark, one command from laptop to cluster: ``python -m sb3_dreamer.atari_benchmark``.

Its ``--help`` (:data:`DESCRIPTION`) shows the commands; :mod:`sb3_dreamer.atari_benchmark.runner` describes
the protocol and the results layout.
"""

import argparse
import importlib.util
import json
import pathlib
import sys
from typing import Any

from sb3_dreamer.atari_benchmark import report, runner, scores
from sb3_dreamer.zoo import OPTIONAL_MODULES, extras_needed

PROG = "python -m sb3_dreamer.atari_benchmark"
DESCRIPTION = f"""\
The 55-game Atari benchmark, one command from laptop to cluster.

  # one run after another on this machine:
  {PROG} run --games atari55 --algos dreamerv2 ppo dqn qrdqn --seeds 0 1 2 \\
      --frames 200000000 --out bench/
  {PROG} run ... --parallel 4                          # four processes at a time
  {PROG} run ... --ray-address auto --gpus-per-run 1   # Ray tasks on a cluster
  {PROG} status --out bench/    # done / running / failed / pending, ETA
  {PROG} report --out bench/    # bench/report.md, curves.png, aggregate.png

--games: atari55 (the paper's 55), atari100k (the 26 of Atari 100k) or a comma-separated list.
Running the same 'run' command again skips finished runs and resumes interrupted ones from their last
checkpoint. '--override dreamerv2:learning_starts=5000' changes one hyperparameter of one algorithm
(rl-zoo3's yml syntax for the value). The protocol is described in sb3_dreamer/atari_benchmark/runner.py.
'run' needs the zoo extra (rl-zoo3, ALE, pyyaml): pip install "sb3_dreamer[zoo]"; with --ray-address also
the cluster extra. 'status' and 'report' work on the base install.
Each command has its own --help: {PROG} run --help
"""


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults in the help (none for options without one), the description's line breaks kept."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        return action.help if action.default is None else super()._get_help_string(action)


def _require(*modules: str) -> None:
    """Exit with one line naming the extra when one of ``modules`` is not installed."""
    for module in modules:
        if importlib.util.find_spec(module) is None:
            package, extra = OPTIONAL_MODULES[module]
            raise SystemExit(f'sb3_dreamer.atari_benchmark needs {package}: pip install "sb3_dreamer[{extra}]"')


def _overrides(items: list[str]) -> dict[str, dict[str, Any]]:
    overrides: dict[str, dict[str, Any]] = {}
    for item in items:
        algo, _, assignment = item.partition(":")
        key, _, value = assignment.partition("=")
        if not (algo and key and value):
            raise SystemExit(f"--override {item!r}: expected ALGO:KEY=VALUE, e.g. dreamerv2:learning_starts=5000")
        import yaml  # the zoo extra's (pyyaml), which `run` needs anyway

        overrides.setdefault(algo, {})[key] = yaml.safe_load(value)
    return overrides


def _matrix_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--games", default="pong,breakout,boxing", help="atari55, atari100k or a comma-separated list")
    parser.add_argument("--algos", nargs="+", default=list(runner.ALGOS), choices=runner.ALGOS, help="algorithms")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0], help="seeds, one run per game, algorithm and seed")
    parser.add_argument(
        "--frames", type=int, default=None,
        help="frame budget per run (agent steps x 4); none given: the one --out was first run with",
    )  # fmt: skip
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("atari_benchmark"), help="results folder")


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
    parser = argparse.ArgumentParser(prog=PROG, description=DESCRIPTION, formatter_class=_Formatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="{run,status,report}")
    sub = dict(formatter_class=_Formatter)
    run = commands.add_parser("run", help="run (or resume) the matrix", description="Run (or resume) the matrix.", **sub)
    _matrix_arguments(run)
    run.add_argument("--evaluations", type=int, default=20, help="evaluation points over the budget")
    run.add_argument("--eval-episodes", type=int, default=5, help="episodes per evaluation")
    run.add_argument("--checkpoints", type=int, default=10, help="checkpoints over the budget (for resuming)")
    run.add_argument("--threads", type=int, default=1, help="torch threads (and Ray CPUs) per run")
    run.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="torch device of every run")
    run.add_argument(
        "--override", action="append", default=[], metavar="ALGO:KEY=VALUE",
        help="change one hyperparameter of one algorithm (value in yml syntax); repeat for more",
    )  # fmt: skip
    run.add_argument("--max-episode-frames", type=int, default=None, help="shorter episodes (smoke tests only)")
    run.add_argument("--parallel", type=int, default=1, help="runs at a time on this machine")
    run.add_argument("--ray-address", default=None, help="run as Ray tasks on this cluster (e.g. auto)")
    run.add_argument("--gpus-per-run", type=float, default=0.0, help="GPUs per Ray task (with --ray-address)")
    status = commands.add_parser(
        "status", help="which runs are done, running, failed, pending; ETA",
        description="Which runs are done, running, failed, pending; ETA.", **sub,
    )  # fmt: skip
    _matrix_arguments(status)
    rep = commands.add_parser(
        "report", help="write report.md and plots from the results",
        description="Write report.md and plots from the results. Final-score rules: "
        + "; ".join(f"{name}: {text}" for name, text in scores.FINAL_RULES.items()) + ".", **sub,
    )  # fmt: skip
    rep.add_argument("--out", type=pathlib.Path, default=pathlib.Path("atari_benchmark"), help="results folder")
    rep.add_argument("--rule", default=scores.DEFAULT_RULE, choices=list(scores.FINAL_RULES), help="final-score rule")
    rep.add_argument("--bootstrap", type=int, default=2000, help="bootstrap resamples of the confidence intervals")
    args = parser.parse_args(argv)
    with extras_needed("atari_benchmark"):
        _command(args)


def _command(args: argparse.Namespace) -> None:

    if args.command == "report":
        print(f"wrote {report.write_report(args.out, args.rule, args.bootstrap)}")
        return
    specs = runner.matrix(scores.game_set(args.games), args.algos, args.seeds)
    settings = _settings(args)
    if args.command == "status":
        _print_progress(runner.progress(specs, settings, args.out))
        return
    _require("yaml", "rl_zoo3", "ale_py", *(["ray"] if args.ray_address else []))
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
