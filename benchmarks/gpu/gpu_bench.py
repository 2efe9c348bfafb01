"""The GPU figures (updates/s, ``predict`` latency, end-to-end frames/s) in one run of at most ~8 minutes,
written to ``--out`` as they come.

    python benchmarks/gpu/gpu_bench.py --out $OUT            # on the lent GPU (see benchmarks/gpu/README.md)
    python benchmarks/gpu/gpu_bench.py --quick --device cpu  # a smoke run of every part on a CPU

Parts, each with its own time budget, each writing into ``gpu_bench.json`` when it ends (a part that fails
records its error and the run goes on):

1. ``updates``: updates/s at the ``atari`` preset (batch 16 x 50, 20M-parameter world model), eager in
   fp32 / bf16 / fp16 autocast, and replayed from a CUDA graph (``cuda_graph=True``) in fp32 / bf16; FLOPs of
   one update and the TFLOP/s reached. The learn parts use the fastest of these.
2. ``predict``: latency of ``predict`` for 1 observation and for a batch of 16, on the GPU and on the CPU.
3. ``atari_learn``: end-to-end ``learn`` on ``sb3_dreamer/Pong-v0`` with the paper's settings (one env,
   ``train_freq`` 16), frames/s of the random prefill and of the training phase.
4. ``dmc_learn``: DMC ``cartpole-balance`` from 64x64 pixels with the ``dmc_vision`` preset, several envs
   rendering in parallel, training returns against frames over the published DreamerV2 curve
   (``dmc_cartpole_balance.png``), as far as the remaining time goes (the paper's curve reaches ~800 at 90k frames).
5. ``compiled``: updates/s with ``compile_model=True`` (eager, no graph) in the fastest precision, last, in the ~120 s left
   for it (how long compiling takes is unknown; what the earlier parts measured is written before it starts).
"""

import argparse
import json
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch as th

sys.path.insert(0, str(Path(__file__).parents[2]))

from benchmarks.update_speed import DOMAINS, SpacesEnv, time_updates, update_flops  # noqa: E402
from sb3_dreamer import DreamerV2  # noqa: E402


def atari_model(device: str, **kwargs: Any) -> DreamerV2:
    policy, obs_space, act_space = DOMAINS["atari"]
    return DreamerV2.from_preset("atari", policy, SpacesEnv(obs_space, act_space), seed=0, device=device, **kwargs)


def part_updates(device: str, quick: bool, precisions: list[str]) -> dict[str, Any]:
    """Eager, and on CUDA replayed from a CUDA graph (after 4 eager updates and the capture, untimed)."""
    warmup, updates = (1, 2) if quick else (3, 20)
    precisions = [p for p in precisions if p != "fp16" or device == "cuda"]
    modes = [False, True] if device == "cuda" else [False]
    rows, flops = [], None
    for precision in precisions:
        for graph in modes:
            if graph and precision == "fp16":
                continue  # the fp16 loss scaler asks the host: no graph
            model = atari_model(device, mixed_precision=precision, cuda_graph=graph)
            seconds = time_updates(model, device, warmup + 4 * graph, updates)
            if flops is None:
                flops = update_flops(model)
            rows.append({"precision": precision, "compiled": False, "cuda_graph": graph, "seconds_per_update": seconds,
                         "updates_per_s": 1 / seconds})  # fmt: skip
            print(rows[-1], flush=True)
    for row in rows:
        row["tflops"] = flops / row["seconds_per_update"] / 1e12
    return {"gflop_per_update": flops / 1e9, "batch": "16x50", "rows": rows}


def part_compiled(device: str, quick: bool, precision: str, gflop: float | None) -> dict[str, Any]:
    """``compile_model=True`` (no graph) in the fastest precision; last, since compiling takes an unknown while."""
    warmup, updates = (1, 2) if quick else (3, 20)
    start = time.perf_counter()
    model = atari_model(device, mixed_precision=precision, compile_model=True)
    seconds = time_updates(model, device, warmup, updates)
    out = {"precision": precision, "compiled": True, "seconds_per_update": seconds, "updates_per_s": 1 / seconds,
           "compile_and_warmup_s": time.perf_counter() - start - seconds * updates}  # fmt: skip
    if gflop is not None:
        out["tflops"] = gflop / 1e3 / seconds
    print(out, flush=True)
    return out


def part_predict(device: str, quick: bool) -> dict[str, Any]:
    calls = 20 if quick else 200
    out = {}
    for where in dict.fromkeys([device, "cpu"]):
        model = atari_model(where)
        for n in (1, 16):
            obs = np.random.randint(0, 255, (n, 1, 64, 64), dtype=np.uint8)
            state, starts = None, np.ones(n, dtype=bool)
            for _ in range(3):
                _, state = model.predict(obs, state=state, episode_start=starts, deterministic=True)
            start = time.perf_counter()
            for _ in range(calls):
                _, state = model.predict(obs, state=state, episode_start=np.zeros(n, dtype=bool), deterministic=True)
            out[f"{where}_batch{n}_ms"] = (time.perf_counter() - start) / calls * 1e3
    print(out, flush=True)
    return out


class Clock:
    """Callback state: wall time at the end of the prefill and at the end, and training-episode returns."""

    def __init__(self, prefill: int, deadline: float):
        self.prefill, self.deadline = prefill, deadline
        self.t_start = self.t_prefill = self.t_end = time.perf_counter()
        self.steps_at_end = 0


def learn_until(model: DreamerV2, steps: int, clock: Clock) -> None:
    from stable_baselines3.common.callbacks import BaseCallback

    class Stop(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps <= clock.prefill:
                clock.t_prefill = time.perf_counter()
            clock.t_end, clock.steps_at_end = time.perf_counter(), self.num_timesteps
            return time.perf_counter() < clock.deadline

    clock.t_start = time.perf_counter()
    model.learn(steps, callback=Stop())


def part_atari_learn(device: str, quick: bool, budget: float, precision: str, graph: bool) -> dict[str, Any]:
    prefill = 500 if quick else 5_000
    model = DreamerV2("CnnPolicy", "sb3_dreamer/Pong-v0", learning_starts=prefill, device=device, seed=0,
                      mixed_precision=precision, pretrain_steps=1, cuda_graph=graph)  # fmt: skip
    clock = Clock(prefill, time.perf_counter() + budget)
    learn_until(model, 10_000_000, clock)
    train_steps = clock.steps_at_end - prefill
    train_s = clock.t_end - clock.t_prefill
    out = {
        "env": "sb3_dreamer/Pong-v0 (paper protocol)",
        "precision": precision,
        "cuda_graph": graph,
        "prefill_frames_per_s": 4 * prefill / (clock.t_prefill - clock.t_start),
        "train_agent_steps": train_steps,
        "train_updates": model._n_updates,
        "train_frames_per_s": 4 * train_steps / train_s if train_s > 0 else None,
    }
    print(out, flush=True)
    return out


def part_dmc_learn(device: str, quick: bool, budget: float, precision: str, graph: bool, out_dir: Path) -> dict[str, Any]:
    """``dmc_learn.py``'s agent on ``cartpole-balance``, its training episodes over the published curve."""
    from benchmarks.gpu.dmc_learn import dmc_model, plot

    n_envs = 2 if quick else 8
    model = dmc_model("cartpole-balance", n_envs, device, precision, graph, seed=0, quick=quick)
    clock = Clock(model.learning_starts, time.perf_counter() + budget)
    learn_until(model, 45_000, clock)  # 90k frames at action repeat 2
    # The envs run in lockstep with fixed 500-step episodes: the i-th episode to end (Monitor's order) ended
    # after 500 * (i // n_envs + 1) steps of every env, i.e. n_envs times that many agent steps.
    ends = [n_envs * 500 * (i // n_envs + 1) for i in range(len(model.ep_info_buffer))]
    episodes = [{"frames": 2 * n, "return": float(info["r"])} for n, info in zip(ends, model.ep_info_buffer)]
    out = {"n_envs": n_envs, "cuda_graph": graph, "agent_steps": clock.steps_at_end, "frames": 2 * clock.steps_at_end,
           "updates": model._n_updates, "wall_s": clock.t_end - clock.t_start, "episodes": episodes}  # fmt: skip
    rows = [{"task": "cartpole-balance", "kind": "train", "frames": e["frames"], "return_mean": e["return"]} for e in episodes]
    plot(rows, 90_000, out_dir / "dmc_cartpole_balance.png", str(device))
    print({k: v for k, v in out.items() if k != "episodes"}, flush=True)
    return out


def run_part(report: dict[str, Any], out: Path, name: str, fn: Callable[[], dict[str, Any]]) -> None:
    start = time.perf_counter()
    try:
        report[name] = fn()
    except Exception as error:  # a failed part is recorded, the others still run
        report[name] = {"error": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc()[-2000:]}
        print(report[name]["traceback"], flush=True)
    report[name]["part_wall_s"] = time.perf_counter() - start
    (out / "gpu_bench.json").write_text(json.dumps(report, indent=2, default=float))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "benchmarks/results/gpu")))
    parser.add_argument("--device", default="cuda" if th.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true", help="tiny budgets: check that every part runs")
    parser.add_argument("--total-s", type=float, default=450.0, help="wall-clock budget of the whole run")
    parser.add_argument("--precisions", nargs="+", default=["no", "bf16", "fp16"], help="of the updates part")
    parser.add_argument("--parts", nargs="+", default=["updates", "predict", "atari_learn", "dmc_learn", "compiled"])
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    report: dict[str, Any] = {
        "device": th.cuda.get_device_name() if args.device == "cuda" else platform.processor() or platform.machine(),
        "torch": th.__version__,
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d"),
        "quick": args.quick,
    }
    if args.device == "cuda":
        th.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32; bf16/fp16 are measured separately
    if "updates" in args.parts:
        run_part(report, args.out, "updates", lambda: part_updates(args.device, args.quick, args.precisions))
    rows = report.get("updates", {}).get("rows", [])
    best = min(rows, key=lambda row: row["seconds_per_update"]) if rows else {}
    precision, graph = best.get("precision", "no"), best.get("cuda_graph", False)  # the fastest, for the learn parts
    if "predict" in args.parts:
        run_part(report, args.out, "predict", lambda: part_predict(args.device, args.quick))
    left = args.total_s - (time.perf_counter() - t0)
    if "atari_learn" in args.parts:
        budget = 20.0 if args.quick else min(60.0, max(30.0, 0.2 * left))
        run_part(report, args.out, "atari_learn", lambda: part_atari_learn(args.device, args.quick, budget, precision, graph))
    left = args.total_s - (time.perf_counter() - t0)
    if "dmc_learn" in args.parts:
        reserve = 120.0 if "compiled" in args.parts else 20.0  # the compiled part runs last, in what remains
        budget = 30.0 if args.quick else max(30.0, left - reserve)
        dmc = lambda: part_dmc_learn(args.device, args.quick, budget, precision, graph, args.out)  # noqa: E731
        run_part(report, args.out, "dmc_learn", dmc)
    if "compiled" in args.parts:
        gflop = report.get("updates", {}).get("gflop_per_update")
        run_part(report, args.out, "compiled", lambda: part_compiled(args.device, args.quick, precision, gflop))
    report["total_wall_s"] = time.perf_counter() - t0
    (args.out / "gpu_bench.json").write_text(json.dumps(report, indent=2, default=float))
    print(json.dumps({k: v for k, v in report.items() if k != "dmc_learn"}, indent=1, default=float)[:6000])


if __name__ == "__main__":
    main()
