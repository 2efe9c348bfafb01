"""Seconds per gradient update (world model + imagination + actor + critic) at the presets' sizes, with the
FLOPs of one update and the fraction of this machine's measured fp32 matmul rate (the faster of MKL's and
oneDNN's) it reaches. On a CPU, one profiled update also says how much of it the matmuls and convolutions
take, and at what rate they run: the update's time if everything else cost nothing.

    python benchmarks/update_speed.py                        # atari, dmc_vision, classic; 2 threads
    python benchmarks/update_speed.py --presets classic --threads 1
    python benchmarks/update_speed.py --presets atari classic --peer-python /work/sheeprl_venv/bin/python
    python benchmarks/update_speed.py --presets atari --updates 5 --compile-model --rounds 3 --peer-python ...
    python benchmarks/update_speed.py --presets classic --threads 2 --override '{"actor_grad": "dynamics"}' \
        --learn-steps 6000 --learn-algos dreamerv2     # a CartPole learn with the classic benchmark's dreamerv2
    python benchmarks/update_speed.py --presets classic --threads 1 \
        --override '{"actor_grad": "dynamics", "imagination_starts": 8, "imagination_horizon": 45}' \
        --learn-steps 6000 --learn-algos dreamerv2_fast --learn-jobs 2   # also two side by side, as it runs them
    python benchmarks/update_speed.py --plot   # atari_vs_sheeprl.png from results/update_speed/atari_compiled_run*.json

With ``--peer-python`` (a Python with ``torch==2.13.0 sheeprl==0.8.4``, see ``peers/sheeprl_dreamer_v2.py``) the
same invocation also times sheeprl's DreamerV2 at the same architecture and batch, right after ours, with the
same number of threads, and reports our time as a fraction of theirs: once as
sheeprl ships, once with glibc's malloc set as our ``keep_host_memory`` (default) sets it, through its environment.
``--rounds N`` alternates the three N times (ours, sheeprl, sheeprl with our setting, ours, ...) and reports each
one's median, with every round listed: the machine drifts by 5-10 % over an invocation, and a ratio near 0.5
should not depend on which side the drift fell.

Writes ``benchmarks/results/update_speed/update_speed.json`` (``--out``). Data are random (the cost of an update
does not depend on them); the spaces are those of the preset's domain (Atari: 64x64x1, 18 actions; DMC: 64x64x3, 1-D Box).
"""

import argparse
import json
import multiprocessing
import os
import platform
import statistics
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch as th
from gymnasium import spaces
from torch.utils.flop_counter import FlopCounterMode

from sb3_dreamer import DreamerV2

RESULTS = Path(__file__).parent / "results" / "update_speed"

DOMAINS = {
    "atari": ("CnnPolicy", spaces.Box(0, 255, (64, 64, 1), np.uint8), spaces.Discrete(18)),
    "dmc_vision": ("CnnPolicy", spaces.Box(0, 255, (64, 64, 3), np.uint8), spaces.Box(-1, 1, (1,), np.float32)),
    "classic": ("MlpPolicy", spaces.Box(-5, 5, (4,), np.float32), spaces.Discrete(2)),
}


class SpacesEnv(gym.Env):
    """An env that only carries spaces; the benchmark never steps it."""

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space):
        self.observation_space, self.action_space = observation_space, action_space

    def reset(self, seed=None, options=None):  # noqa: ANN001, ANN201
        return self.observation_space.sample(), {}

    def step(self, action):  # noqa: ANN001, ANN201
        return self.observation_space.sample(), 0.0, False, False, {}


def fill(model: DreamerV2, steps: int) -> None:
    """Write ``steps`` random transitions into the replay buffer."""
    obs_space = model.observation_space
    rng = np.random.default_rng(0)
    for t in range(steps):
        obs = np.stack([obs_space.sample()])
        action = np.array([model.action_space.sample()])
        buffer_action = action if isinstance(model.action_space, spaces.Discrete) else action.astype(np.float32)
        done = np.array([t % 200 == 199])
        infos = [{"terminal_observation": obs[0]}] if done[0] else [{}]
        model.replay_buffer.add(obs, obs, buffer_action, rng.normal(size=1).astype(np.float32), done, infos)


def matmul_gflops(n: int = 2048, seconds: float = 3.0, onednn: bool = False) -> float:
    """fp32 matmul rate, the best of 1 s-long rounds over ``seconds`` (short bursts overstate it): MKL's
    (``a @ b``, what PyTorch calls), or with ``onednn`` oneDNN's (what the compiled update calls on a CPU)."""
    a, b = th.randn(n, n), th.randn(n, n)

    def product() -> th.Tensor:
        return th.ops.mkldnn._linear_pointwise(a, b, None, "none", [], "") if onednn else a @ b

    product()
    best, deadline = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < 1.0:
            product()
            count += 1
        best = max(best, 2 * n**3 * count / (time.perf_counter() - start) / 1e9)
    return best


def cpu_model() -> str:
    """The CPU's model name (Linux), else the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def predict_latency_ms(model: DreamerV2, n_envs: int, calls: int = 50) -> float:
    """Mean wall time of ``predict`` (latent carried, deterministic) for ``n_envs`` observations at once."""
    obs = np.stack([model.observation_space.sample() for _ in range(n_envs)])
    state, starts = None, np.ones(n_envs, dtype=bool)
    _, state = model.predict(obs, state=state, episode_start=starts, deterministic=True)
    starts[:] = False
    start = time.perf_counter()
    for _ in range(calls):
        _, state = model.predict(obs, state=state, episode_start=starts, deterministic=True)
    return (time.perf_counter() - start) / calls * 1e3


def time_updates(model: DreamerV2, device: str, warmup: int, updates: int) -> float:
    """Seconds per update on random replay data, after ``warmup`` updates (compilation included there)."""
    fill(model, model.config.sequence_length * 4)
    batches = [model.replay_buffer.sample(model.batch_size, model.config.sequence_length) for _ in range(warmup + updates)]
    for batch in batches[:warmup]:
        model.train_step(batch)
    if device == "cuda":
        th.cuda.synchronize()
    start = time.perf_counter()
    for batch in batches[warmup:]:
        metrics = model.train_step(batch)
    float(metrics["model_loss"])  # waits for the device
    return (time.perf_counter() - start) / updates


def update_flops(model: DreamerV2) -> int:
    """FLOPs of one update (``FlopCounterMode``), on a batch from the model's (filled) replay."""
    batch = model.replay_buffer.sample(model.batch_size, model.config.sequence_length)
    with FlopCounterMode(display=False) as counter:
        model.train_step(batch)
    return counter.get_total_flops()


# The ops whose own time is matmul or convolution arithmetic on a CPU (the transposed convolutions' forward
# runs inside ``aten::_convolution`` itself; the custom phase op's matmul shows as ``aten::mm``, the compiled
# update's oneDNN products as ``mkldnn::_linear_pointwise``).
KERNEL_OPS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::_convolution", "aten::mkldnn_convolution",
              "aten::convolution_backward", "mkldnn::_linear_pointwise")  # fmt: skip


def kernel_share(model: DreamerV2) -> dict:
    """Where one profiled update's CPU time goes: the matmuls and convolutions against everything else (the
    elementwise ops, the optimiser steps, Python and autograd). The profiler slows the update by ~5-10 %."""
    batch = model.replay_buffer.sample(model.batch_size, model.config.sequence_length)
    with th.profiler.profile(activities=[th.profiler.ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        model.train_step(batch)
        seconds = time.perf_counter() - start
    kernels = sum(e.self_cpu_time_total for e in prof.key_averages() if e.key in KERNEL_OPS) / 1e6
    return {"profiled_update_s": round(seconds, 3), "matmul_and_conv_s": round(kernels, 3),
            "matmul_and_conv_fraction": round(kernels / seconds, 3)}  # fmt: skip


def build(preset: str, device: str, mixed_precision: str = "no", compile_model: bool = False,
          keep_host_memory: bool = True, override: dict | None = None) -> DreamerV2:  # fmt: skip
    """Our model at the preset's size, on an env with the preset's spaces; ``override``: constructor arguments
    over the preset's."""
    policy, obs_space, act_space = DOMAINS[preset]
    env = SpacesEnv(obs_space, act_space)
    settings = {"device": device, "mixed_precision": mixed_precision, "compile_model": compile_model,
                "keep_host_memory": keep_host_memory, **(override or {})}  # fmt: skip
    return DreamerV2.from_preset(preset, policy, env, seed=0, **settings)


def describe(model: DreamerV2, preset: str, seconds: float, warmup_s: float) -> dict:
    """The row of a timed model: its FLOPs per update and rate, where one profiled update's time goes,
    ``predict``'s latency. Run after all timing: with ``compile_model``, updates after ``FlopCounterMode`` and the
    profiler ran ~10 % slower (2.49 -> 2.72-2.82 s at the ``atari`` size)."""
    flops = update_flops(model)
    params = sum(p.numel() for p in model.policy.world_model.parameters())
    share = kernel_share(model) if model.device.type == "cpu" else {}
    if share:  # the kernels' own rate: how far the matmuls and convolutions are from the machine's
        share["matmul_and_conv_gflops"] = round(flops / 1e9 / share["matmul_and_conv_s"], 1)
    return {
        "preset": preset,
        "mixed_precision": model.config.mixed_precision,
        "compile_model": model.config.compile_model,
        "keep_host_memory": model.config.keep_host_memory,
        "warmup_s": round(warmup_s, 1),
        "predict_ms_1_env": round(predict_latency_ms(model, 1), 2),
        "predict_ms_16_envs": round(predict_latency_ms(model, 16), 2),
        "batch": f"{model.batch_size}x{model.config.sequence_length}",
        "world_model_params": params,
        "seconds_per_update": round(seconds, 4),
        "gflop_per_update": round(flops / 1e9, 1),
        "achieved_gflops": round(flops / 1e9 / seconds, 1),
        **share,
    }


# sheeprl overrides that give the shape of our presets (``peers/sheeprl_dreamer_v2.py`` sets the rest).
PEER_SIZES = {
    "atari": ["--size", "atari"],
    "classic": ["--size", "classic", "algo.world_model.recurrent_model.recurrent_state_size=128",
                "algo.world_model.transition_model.hidden_size=128", "algo.world_model.representation_model.hidden_size=128",
                "algo.dense_units=128", "algo.per_rank_sequence_length=32"],
}  # fmt: skip


# What ``keep_host_memory`` asks of glibc's malloc, through its environment variables (for the peer's process).
KEEP_MEMORY_ENV = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(1 << 40)}


def measure_peer(python: str, preset: str, threads: int, updates: int, mixed_precision: str, keep_memory: bool) -> dict:
    """sheeprl 0.8.4's DreamerV2 at the preset's architecture and our precision, in its own virtual environment;
    with ``keep_memory``, with glibc's malloc set as our ``keep_host_memory`` sets it (a like-for-like check)."""
    script = Path(__file__).parent / "peers" / "sheeprl_dreamer_v2.py"
    precision = ["fabric.precision=bf16-mixed"] if mixed_precision == "bf16" else []
    command = [python, str(script), "--threads", str(threads), "--warmup", "1", "--updates", str(updates),
               *PEER_SIZES[preset], *precision]  # fmt: skip
    env = {**os.environ, **KEEP_MEMORY_ENV} if keep_memory else None
    out = subprocess.run(command, capture_output=True, text=True, check=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def side_by_side(model: DreamerV2, first: float, preset: str, updates: int, args: argparse.Namespace) -> dict:
    """Ours and sheeprl in alternating rounds (the first of ours already timed): the machine's drift over an
    invocation (5-10 % here) reaches both. Each figure is the median over the rounds; every round is listed.

    :param first: our seconds per update in the first round.
    """
    ours, peers = [first], {False: [], True: []}
    for round_ in range(args.rounds):
        if round_ > 0:
            ours.append(time_updates(model, args.device, warmup=0, updates=updates))
        for keep_memory in peers:
            peer_updates = max(5, updates // 3)  # 3 gave sheeprl +-8 % between invocations at atari size
            peer = measure_peer(args.peer_python, preset, args.threads, peer_updates, args.mixed_precision, keep_memory)
            peers[keep_memory].append(peer["seconds_per_update"])
    row = {"seconds_per_update": round(statistics.median(ours), 4), "rounds_seconds_per_update": [round(x, 4) for x in ours]}
    for keep_memory, suffix in ((False, ""), (True, "_keep_memory")):
        seconds = statistics.median(peers[keep_memory])
        row[f"sheeprl_0.8.4{suffix}_seconds_per_update"] = round(seconds, 4)
        row[f"rounds_sheeprl_0.8.4{suffix}_seconds_per_update"] = [round(x, 4) for x in peers[keep_memory]]
        row[f"ours_over_sheeprl{suffix}"] = round(row["seconds_per_update"] / seconds, 3)
    row["sheeprl_world_model_params"] = peer["world_model_params"]
    return row


def learn_speed(steps: int, compile_model: bool = False, algo: str = "dreamerv2", seed: int = 0,
                task: str = "CartPole-v1") -> dict:  # fmt: skip
    """Env steps/s of a whole ``learn`` on ``task`` with the classic benchmark's settings for ``algo`` (a
    DreamerV2 entry of ``classic_control.DREAMER``, e.g. CartPole's ``train_freq`` 10, ``actor_grad="dynamics"``)."""
    sys.path.insert(0, str(Path(__file__).parents[1]))  # run as a script: make `benchmarks` importable
    from benchmarks.classic_control import DREAMER

    model = DreamerV2("MlpPolicy", task, seed=seed, compile_model=compile_model, **DREAMER[(algo, task)])
    start = time.perf_counter()
    model.learn(steps)
    seconds = time.perf_counter() - start
    return {"task": task, "algo": algo, "compile_model": compile_model, "steps": steps, "updates": model._n_updates,
            "seconds": round(seconds, 1), "env_steps_per_s": round(steps / seconds, 1)}  # fmt: skip


def _learn_speed_in_process(threads: int, *args: Any) -> dict:
    th.set_num_threads(threads)
    return learn_speed(*args)


def learn_speed_side_by_side(jobs: int, threads: int, steps: int, compile_model: bool, algo: str, task: str) -> dict:
    """``learn_speed`` of ``jobs`` learns at once (seeds 0, 1, ...), each in its own process with ``threads``
    torch threads, as the classic benchmark's ``--jobs`` runs them.

    :return: each learn's figures (``runs``) and their summed env steps/s: the rate at which the benchmark gets
        through its runs on this machine.
    """
    context = multiprocessing.get_context("spawn")  # no forked torch or OpenMP state in the workers
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
        futures = [
            pool.submit(_learn_speed_in_process, threads, steps, compile_model, algo, seed, task) for seed in range(jobs)
        ]
        runs = [future.result() for future in futures]
    total = round(sum(run["env_steps_per_s"] for run in runs), 1)
    return {"task": task, "algo": algo, "jobs": jobs, "threads_each": threads, "steps": steps, "runs": runs,
            "env_steps_per_s": total}  # fmt: skip


def plot_runs(folder: Path = RESULTS) -> Path:
    """Bars of every fp32 ``atari`` run with sheeprl beside it (``atari_compiled_run*.json`` in ``folder``): our
    seconds per update against sheeprl's, as shipped and with our malloc setting, and the ratio per run.

    :return: the figure's path, ``folder / "atari_vs_sheeprl.png"``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = []
    for path in sorted(folder.glob("atari_compiled_run*.json")):
        row = next(r for r in json.loads(path.read_text())["results"] if r["preset"] == "atari")
        runs.append((path.stem.removeprefix("atari_compiled_"), row))
    fig, ax = plt.subplots(figsize=(8, 4.5))
    xs = np.arange(len(runs))
    series = [("ours", "seconds_per_update", "tab:purple"),
              ("sheeprl 0.8.4", "sheeprl_0.8.4_seconds_per_update", "tab:gray"),
              ("sheeprl 0.8.4, our malloc setting", "sheeprl_0.8.4_keep_memory_seconds_per_update", "silver")]  # fmt: skip
    for offset, (label, key, color) in zip((-0.27, 0.0, 0.27), series):
        ax.bar(xs + offset, [row[key] for _, row in runs], width=0.27, label=label, color=color)
    for x, (_, row) in zip(xs, runs):
        ax.annotate(f"{row['ours_over_sheeprl']:.2f}x", (x - 0.27, row["seconds_per_update"]), ha="center",
                    va="bottom", fontsize=8)  # fmt: skip
    ax.set_xticks(xs, [name for name, _ in runs])
    ax.set(ylabel="seconds per update", title="atari preset, fp32, compile_model, 2 CPU threads: ours / sheeprl")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out = folder / "atari_vs_sheeprl.png"
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["atari", "dmc_vision", "classic"], choices=sorted(DOMAINS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--updates", type=int, default=3, help="timed updates per preset (more for small presets)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=RESULTS / "update_speed.json")
    parser.add_argument("--mixed-precision", default="no", choices=["no", "bf16"], help="autocast of our update")
    parser.add_argument("--compile-model", action="store_true", help="our update with compile_model=True")
    no_keep = "ours with keep_host_memory=False (glibc's malloc left as it is; the whole process)"
    parser.add_argument("--no-keep-host-memory", action="store_true", help=no_keep)
    parser.add_argument("--learn-steps", type=int, default=0, help="also time a whole learn of this many steps")
    parser.add_argument("--learn-task", default="CartPole-v1", choices=["CartPole-v1", "Pendulum-v1"], help="of --learn-steps")
    learn_algos = "the classic benchmark's DreamerV2 settings to time --learn-steps with (classic_control.DREAMER)"
    parser.add_argument("--learn-algos", nargs="+", default=["dreamerv2"], help=learn_algos)
    learn_jobs = "also time each --learn-algos learn with this many side by side (--threads each), as the classic "
    learn_jobs += "benchmark's --jobs runs them: the rate the benchmark gets through its runs"
    parser.add_argument("--learn-jobs", type=int, default=1, help=learn_jobs)
    parser.add_argument("--peer-python", help="a Python with sheeprl 0.8.4: time it too, same sizes and threads")
    rounds = "with --peer-python: rounds of (ours, sheeprl, sheeprl with our malloc setting), medians reported"
    parser.add_argument("--rounds", type=int, default=1, help=rounds)
    override = "JSON of constructor arguments over the presets' (ours only, so not with --peer-python), e.g. the "
    override += """classic benchmark's '{"actor_grad": "dynamics"}'"""
    parser.add_argument("--override", type=json.loads, default={}, help=override)
    parser.add_argument("--plot", action="store_true", help="only plot the committed atari runs against sheeprl")
    args = parser.parse_args()
    if args.plot:
        print(plot_runs())
        return
    if args.override and args.peer_python:
        parser.error("--override changes only our side: time the peer without it")
    th.set_num_threads(args.threads)
    rates = {"mkl": matmul_gflops()}
    if args.device == "cpu" and th.backends.mkldnn.is_available():
        rates["onednn"] = matmul_gflops(onednn=True)
    peak = max(rates.values())  # the machine's rate: the faster library's
    rows = []
    for preset in args.presets:
        updates = args.updates if preset in ("atari", "crafter") else args.updates * 10
        keep = not args.no_keep_host_memory
        model = build(preset, args.device, args.mixed_precision, args.compile_model, keep, args.override)
        start = time.perf_counter()
        seconds = time_updates(model, args.device, warmup=2, updates=updates)
        warmup_s = time.perf_counter() - start - seconds * updates  # the compilation, with compile_model
        peer = side_by_side(model, seconds, preset, updates, args) if args.peer_python and preset in PEER_SIZES else {}
        row = {**describe(model, preset, peer.get("seconds_per_update", seconds), warmup_s), **peer}
        if args.override:
            row["override"] = args.override
        row["fraction_of_matmul_peak"] = round(row["achieved_gflops"] / peak, 3)
        if "matmul_and_conv_gflops" in row:
            row["kernels_fraction_of_matmul_peak"] = round(row["matmul_and_conv_gflops"] / peak, 3)
        rows.append(row)
        print(json.dumps(row), flush=True)
    report = {
        "machine": f"{platform.machine()}, {th.get_num_threads()} torch threads, torch {th.__version__}",
        "cpu": cpu_model(),
        "device": args.device,
        "matmul_gflops_fp32": round(peak, 1),
        "matmul_gflops_fp32_by_library": {name: round(rate, 1) for name, rate in rates.items()},
        "results": rows,
    }
    if args.learn_steps:
        report["learn"] = []
        learn = (args.learn_steps, args.compile_model)
        for algo in args.learn_algos:
            report["learn"].append(learn_speed(*learn, algo, task=args.learn_task))
            print(json.dumps(report["learn"][-1]), flush=True)
            if args.learn_jobs > 1:
                side = learn_speed_side_by_side(args.learn_jobs, args.threads, *learn, algo, args.learn_task)
                report["learn"].append(side)
                print(json.dumps(side), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
