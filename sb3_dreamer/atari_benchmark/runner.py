"""Run a matrix of {games} x {algorithms} x {seeds} at a frame budget, locally or on a Ray cluster.

Every run is one ``rl_zoo3 train`` process (through ``python -m sb3_dreamer.zoo``) with rl-zoo3's own
``atari`` hyperparameters for ``ppo``, ``dqn`` and ``qrdqn`` and ours for ``dreamerv2``, all under the
paper's protocol: sticky actions (0.25 per emulator frame), the full 18-action set, no terminal on life loss,
4 frames per agent step. The model-free baselines keep their own observation preprocessing (rl-zoo3's
``AtariWrapper``: 84x84 grayscale, 4 stacked frames, rewards clipped for training) with its life-loss terminal
turned off; DreamerV2 sees 64x64 single frames (``sb3_dreamer/<Game>-v0``). Scores are raw game scores
(Monitor, before any clipping), evaluated by rl-zoo3's ``EvalCallback`` with stochastic actions (its Atari
default) on a separate env.

Layout of ``out/``::

    runs/<algo>/<game>/seed<k>/
        conf.yml          the hyperparameters the run used (rl-zoo3 format, key ``atari``)
        run.json          status (running / done / failed), attempts, errors
        checkpoint/       model.zip, replay_buffer.pkl, progress.json: the newest checkpoint
        heartbeat.json    agent steps and time, refreshed while the run trains
        zoo/              rl-zoo3's log folder(s), one per attempt (evaluations.npz, monitor files, model)
        result.json       written last: the evaluation curve (frames, returns) and wall time

A run with ``result.json`` is skipped; one with a checkpoint resumes from it (``-i``, replay included, step
counters continued for every algorithm; SB3's schedules, e.g. DQN's exploration, restart from the resume
point); a failed run is recorded and the others go on. SB3's ``AtariWrapper`` also presses FIRE on reset in
games that have it (the baselines' own preprocessing; DreamerV2 does not).
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from importlib import resources
from typing import Any, NamedTuple

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from sb3_dreamer.envs.atari import FRAMES_PER_STEP, ale_name
from sb3_dreamer.zoo import CONTINUE_ALL_ENV

ALGOS: tuple[str, ...] = ("dreamerv2", "ppo", "dqn", "qrdqn")
BASELINE_ENV_KWARGS = {"frameskip": 1, "repeat_action_probability": 0.25, "full_action_space": True}
ATARI_WRAPPER = "stable_baselines3.common.atari_wrappers.AtariWrapper"


class RunSpec(NamedTuple):
    """One cell of the matrix."""

    algo: str
    game: str
    seed: int

    @property
    def name(self) -> str:
        return f"{self.algo}/{self.game}/seed{self.seed}"


class Settings(NamedTuple):
    """What every run of a matrix shares.

    :param frames: frame budget per run (agent steps x 4).
    :param evaluations: evaluation points over the budget (the last one at the end).
    :param eval_episodes: episodes per evaluation. :param checkpoints: checkpoints over the budget.
    :param threads: torch threads per run. :param overrides: algo -> hyperparameters replacing rl-zoo3's/ours.
    :param device: ``auto``, ``cpu`` or ``cuda``.
    :param max_episode_frames: cap episodes shorter than the protocol's 108,000 frames (smoke tests only: the
        paper's protocol has no shorter cap).
    """

    frames: int
    evaluations: int = 20
    eval_episodes: int = 5
    checkpoints: int = 10
    threads: int = 1
    overrides: dict[str, dict[str, Any]] | None = None
    device: str = "auto"
    max_episode_frames: int | None = None

    @property
    def steps(self) -> int:
        return self.frames // FRAMES_PER_STEP


def matrix(games: Sequence[str], algos: Sequence[str], seeds: Sequence[int]) -> list[RunSpec]:
    """Every (algo, game, seed), games outermost so that partial results cover all algorithms of a game."""
    unknown = [a for a in algos if a not in ALGOS]
    if unknown:
        raise ValueError(f"Unknown algorithms {unknown}; choose from {list(ALGOS)}.")
    return [RunSpec(algo, game, seed) for game in games for seed in seeds for algo in algos]


def env_id(spec: RunSpec) -> str:
    """DreamerV2's protocol id, or ALE's v5 id for the baselines (protocol set through env kwargs)."""
    return f"sb3_dreamer/{ale_name(spec.game)}-v0" if spec.algo == "dreamerv2" else f"ALE/{ale_name(spec.game)}-v5"


def hyperparameters(algo: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``atari`` entry of rl-zoo3's yml (ours for dreamerv2), life-loss terminals off, ``overrides`` applied."""
    if algo == "dreamerv2":
        text = resources.files("sb3_dreamer").joinpath("hyperparams", "dreamerv2.yml").read_text()
    else:
        text = resources.files("rl_zoo3").joinpath("hyperparams", f"{algo}.yml").read_text()
    import yaml  # the zoo extra's (pyyaml)

    params = dict(yaml.safe_load(text)["atari"])
    if algo != "dreamerv2":
        params["env_wrapper"] = [{ATARI_WRAPPER: {"terminal_on_life_loss": False}}]
    return {**params, **(overrides or {})}


# ------------------------------------------------------------------ checkpoints inside a run


class RunCheckpointCallback(BaseCallback):
    """Inside a run: every ``save_freq`` calls, save the model and its replay buffer (atomically) to
    ``<run>/checkpoint/`` with ``progress.json``; every ``heartbeat_freq`` calls, refresh ``heartbeat.json``.
    rl-zoo3 builds it from the run's ``conf.yml`` (``callback``).
    """

    def __init__(self, save_freq: int, run_dir: str, heartbeat_freq: int = 500, verbose: int = 0):
        super().__init__(verbose)
        self.save_freq, self.run_dir, self.heartbeat_freq = save_freq, pathlib.Path(run_dir), heartbeat_freq

    def _on_step(self) -> bool:
        if self.n_calls % self.heartbeat_freq == 0:
            _write_json(self.run_dir / "heartbeat.json", {"num_timesteps": self.num_timesteps, "time": time.time()})
        if self.n_calls % self.save_freq == 0:
            self._save()
        return True

    def _save(self) -> None:
        """Write into a temporary folder, move the old checkpoint aside, move the new one in, delete the old:
        at every instant ``checkpoint/`` is absent or complete (a resume then uses ``.checkpoint.old``).
        """
        final, temporary, old = (self.run_dir / name for name in ("checkpoint", ".checkpoint.partial", ".checkpoint.old"))
        shutil.rmtree(temporary, ignore_errors=True)
        temporary.mkdir(parents=True)
        self.model.save(temporary / "model.zip")
        if getattr(self.model, "replay_buffer", None) is not None:
            self.model.save_replay_buffer(temporary / "replay_buffer.pkl")  # type: ignore[attr-defined]
        _write_json(temporary / "progress.json", {"num_timesteps": self.num_timesteps})
        if final.exists():
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
        os.replace(temporary, final)
        shutil.rmtree(old, ignore_errors=True)


def _write_json(path: pathlib.Path, data: Any) -> None:
    temporary = path.with_name(f".{path.name}.partial")
    temporary.write_text(json.dumps(data, indent=1))
    os.replace(temporary, path)


def _read_json(path: pathlib.Path) -> Any:
    return json.loads(path.read_text()) if path.is_file() else None


# ------------------------------------------------------------------ one run


class RunResult(NamedTuple):
    """What a finished (or failed) run reports back to the driver."""

    spec: RunSpec
    status: str  # done / failed / skipped
    message: str = ""


def run_dir(out: pathlib.Path, spec: RunSpec) -> pathlib.Path:
    return out / "runs" / spec.algo / spec.game / f"seed{spec.seed}"


def _checkpoint(directory: pathlib.Path) -> pathlib.Path | None:
    """The run's complete checkpoint folder (``.checkpoint.old`` when killed while swapping), or None."""
    for name in ("checkpoint", ".checkpoint.old"):
        if (directory / name / "model.zip").is_file() and (directory / name / "progress.json").is_file():
            return directory / name
    return None


def _command(
    spec: RunSpec, settings: Settings, directory: pathlib.Path, steps_left: int, checkpoint: pathlib.Path | None
) -> list[str]:
    eval_freq = max(settings.steps // settings.evaluations, 1)
    command = [
        sys.executable, "-m", "sb3_dreamer.zoo", "train", "--algo", spec.algo, "--env", env_id(spec),
        "-n", str(steps_left), "--seed", str(spec.seed), "-f", str(directory / "zoo"), "-conf", str(directory / "conf.yml"),
        "--eval-freq", str(eval_freq), "--eval-episodes", str(settings.eval_episodes), "--n-eval-envs", "1",
        "--num-threads", str(settings.threads), "--device", settings.device, "--vec-env", "dummy",
    ]  # fmt: skip
    env_kwargs = {} if spec.algo == "dreamerv2" else dict(BASELINE_ENV_KWARGS)
    if settings.max_episode_frames:
        key = "max_episode_steps" if spec.algo == "dreamerv2" else "max_num_frames_per_episode"
        env_kwargs[key] = (
            settings.max_episode_frames // FRAMES_PER_STEP if spec.algo == "dreamerv2" else settings.max_episode_frames
        )
    if env_kwargs:
        command += ["--env-kwargs", *(f"{k}:{v}" for k, v in env_kwargs.items())]
    if checkpoint is not None:
        command += ["-i", str(checkpoint / "model.zip")]
    return command


def _write_conf(spec: RunSpec, settings: Settings, directory: pathlib.Path) -> None:
    params = hyperparameters(spec.algo, (settings.overrides or {}).get(spec.algo))
    n_envs = int(params.get("n_envs", 1))
    save_freq = max(settings.steps // max(settings.checkpoints, 1) // n_envs, 1)
    callback = {f"{__name__}.RunCheckpointCallback": {"save_freq": save_freq, "run_dir": str(directory)}}
    extra = params.get("callback") or []
    params["callback"] = [callback, *(extra if isinstance(extra, list) else [extra])]  # the overrides' come after
    import yaml

    (directory / "conf.yml").write_text(yaml.safe_dump({"atari": params}, sort_keys=False))


def evaluation_curve(spec: RunSpec, directory: pathlib.Path) -> tuple[list[float], list[float]]:
    """(frames, mean returns) of the run's evaluations over all its attempts, in order. Step counters continue
    across attempts; an attempt's evaluations at or after the step the next attempt resumed from are dropped
    (that stretch was trained again; the evaluation at that very step was of the checkpointed agent).
    """
    frames: list[float] = []
    returns: list[float] = []
    attempts = (_read_json(directory / "run.json") or {}).get("attempts", [])
    for index, attempt in enumerate(attempts):
        path = pathlib.Path(attempt.get("zoo_dir", "")) / "evaluations.npz"
        if not attempt.get("zoo_dir") or not path.is_file():
            continue
        data = np.load(path)
        until = attempts[index + 1]["start_step"] if index + 1 < len(attempts) else float("inf")
        for step, results in zip(data["timesteps"], data["results"]):
            if step <= until:
                frames.append(float(step * FRAMES_PER_STEP))
                returns.append(float(np.mean(results)))
    return frames, returns


def _newest_zoo_dir(directory: pathlib.Path, before: set[pathlib.Path]) -> pathlib.Path | None:
    candidates = [p for p in (directory / "zoo").glob("*/*") if p.is_dir() and p not in before]
    return max(candidates, key=lambda p: p.stat().st_mtime) if candidates else None


def run_one(spec: RunSpec, settings: Settings, out: str | pathlib.Path) -> RunResult:
    """Run (or resume, or skip) one cell; never raises for a failing run: it is recorded in ``run.json``."""
    directory = run_dir(pathlib.Path(out), spec)
    if (directory / "result.json").is_file():
        return RunResult(spec, "skipped", "already done")
    directory.mkdir(parents=True, exist_ok=True)
    state: dict[str, Any] = _read_json(directory / "run.json") or {"spec": spec._asdict(), "attempts": []}
    checkpoint = _checkpoint(directory)
    start_step = int(_read_json(checkpoint / "progress.json")["num_timesteps"]) if checkpoint else 0
    if start_step >= settings.steps:  # killed after its last checkpoint: nothing left to train
        return _finish(spec, settings, directory, state)
    _write_conf(spec, settings, directory)
    before = set((directory / "zoo").glob("*/*"))
    attempt: dict[str, Any] = {"start_step": start_step, "started": time.time(), "resumed": checkpoint is not None}
    state.update(status="running", host=os.uname().nodename)
    state["attempts"].append(attempt)
    _write_json(directory / "run.json", state)
    log_path = directory / f"attempt{len(state['attempts'])}.log"
    with open(log_path, "w") as log:
        command = _command(spec, settings, directory, settings.steps - start_step, checkpoint)
        environment = {**os.environ, CONTINUE_ALL_ENV: "1"}  # -i continues every algorithm's counters
        code = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=environment, check=False).returncode
    zoo_dir = _newest_zoo_dir(directory, before)
    attempt.update(finished=time.time(), returncode=code, zoo_dir=str(zoo_dir) if zoo_dir else "", log=str(log_path))
    if code != 0:
        state.update(status="failed", error=log_path.read_text()[-3000:])
        _write_json(directory / "run.json", state)
        return RunResult(spec, "failed", f"exit code {code}, see {log_path}")
    return _finish(spec, settings, directory, state)


def _finish(spec: RunSpec, settings: Settings, directory: pathlib.Path, state: dict[str, Any]) -> RunResult:
    state["status"] = "done"
    _write_json(directory / "run.json", state)
    frames, returns = evaluation_curve(spec, directory)
    wall = sum(a.get("finished", a["started"]) - a["started"] for a in state["attempts"])
    result = {**spec._asdict(), "env_id": env_id(spec), "frames_budget": settings.frames, "eval_frames": frames,
              "eval_returns": returns, "wall_s": round(wall, 1), "attempts": len(state["attempts"])}  # fmt: skip
    _write_json(directory / "result.json", result)
    return RunResult(spec, "done")


# ------------------------------------------------------------------ the matrix


def run_matrix(
    specs: Iterable[RunSpec],
    settings: Settings,
    out: str | pathlib.Path,
    parallel: int = 1,
    ray_address: str | None = None,
    gpus_per_run: float = 0.0,
    report: Callable[[RunResult], None] = lambda result: None,
) -> list[RunResult]:
    """Run every spec: ``parallel`` processes at a time on this machine, or as Ray tasks (``ray_address``:
    ``auto`` joins a running cluster, ``local`` starts one here), each asking for ``settings.threads`` CPUs and
    ``gpus_per_run`` GPUs. Results land in ``out`` (on a cluster it must be a shared filesystem). ``report`` is
    called as each run ends.

    Ray runs its workers at nice 15, so on a node with other work they get what is left of the CPU: start the
    cluster with ``RAY_worker_niceness=0 ray start ...`` (done for ``local``).
    """
    out = pathlib.Path(out).resolve()
    _write_json_settings(out, settings)
    specs = list(specs)
    if ray_address is None:
        with ThreadPoolExecutor(max_workers=parallel) as pool:
            results = []
            for future in as_completed([pool.submit(run_one, spec, settings, out) for spec in specs]):
                report(future.result())
                results.append(future.result())
            return results
    import ray

    if ray_address == "local":  # Ray starts workers at nice 15; here the runs are the node's main work
        os.environ.setdefault("RAY_worker_niceness", "0")
    ray.init(address=ray_address, ignore_reinit_error=True)
    task = ray.remote(num_cpus=settings.threads, num_gpus=gpus_per_run)(run_one)
    pending = {task.remote(spec, settings, str(out)): spec for spec in specs}
    results = []
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        result = ray.get(done[0])
        del pending[done[0]]
        report(result)
        results.append(result)
    return results


def _write_json_settings(out: pathlib.Path, settings: Settings) -> None:
    out.mkdir(parents=True, exist_ok=True)
    _write_json(out / "settings.json", settings._asdict())


class Progress(NamedTuple):
    """Where a matrix stands."""

    done: list[str]
    running: list[str]
    failed: list[str]
    pending: list[str]
    frames_done: int
    frames_total: int
    eta_s: float | None


def progress(specs: Iterable[RunSpec], settings: Settings, out: str | pathlib.Path, stale_s: float = 600.0) -> Progress:
    """Which runs are done, running (a heartbeat in the last ``stale_s`` seconds), failed or pending, and an ETA
    from the frames per second the runs have reached so far.
    """
    out = pathlib.Path(out)
    groups: dict[str, list[str]] = {"done": [], "running": [], "failed": [], "pending": []}
    frames_done, seconds = 0, 0.0
    for spec in specs:
        directory = run_dir(out, spec)
        state = _read_json(directory / "run.json") or {}
        heartbeat = _read_json(directory / "heartbeat.json")
        if (directory / "result.json").is_file():
            group, frames = "done", settings.frames
        elif state.get("status") == "failed":
            group, frames = "failed", 0
        elif heartbeat and time.time() - heartbeat["time"] < stale_s:
            group, frames = "running", heartbeat["num_timesteps"] * FRAMES_PER_STEP
        else:
            group, frames = "pending", 0
        groups[group].append(spec.name)
        frames_done += frames
        seconds += sum(a.get("finished", time.time()) - a["started"] for a in state.get("attempts", []) if group != "pending")
    total = settings.frames * sum(len(g) for g in groups.values())
    left = total - frames_done - settings.frames * len(groups["failed"])
    rate = frames_done / seconds if frames_done and seconds else None  # frames/s of one run
    eta = left / (rate * max(len(groups["running"]), 1)) if rate else None
    return Progress(groups["done"], groups["running"], groups["failed"], groups["pending"], frames_done, total, eta)
