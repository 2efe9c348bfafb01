"""Replay memory: bytes per stored step and the process's resident memory while an Atari-shaped buffer fills.

    python benchmarks/replay_memory.py                 # 300k steps of 64x64x1 uint8 frames, 18 actions
    python benchmarks/replay_memory.py --steps 2000000 # the paper's full 2M-step buffer (~8.2 GB)
    python benchmarks/replay_memory.py --replay-dir /tmp/replay   # memory-mapped files (DreamerV2(replay_dir=...))

Writes ``benchmarks/results/replay_memory.json``: bytes per step, resident memory (RSS) before and after, and
the 2M-step figure extrapolated from the measured growth. Observations are stored once (no next-obs copy),
as uint8, and the arrays are only backed by RAM where written. Resident memory is split into anonymous
memory (the process's own, what an in-RAM buffer grows) and file-backed pages (the page cache of memory-mapped
files, which the kernel writes back and evicts under memory pressure); ``--replay-dir`` writes
``replay_memory_disk.json``.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
from gymnasium import spaces

from sb3_dreamer.common.buffers import SequenceReplayBuffer

RESULTS = Path(__file__).parent / "results" / "replay_memory.json"


def rss_mib() -> dict[str, float]:
    """Resident memory of this process (Linux /proc/self/status), MiB: total, anonymous, file-backed."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    kib = {name: int(fields[key].split()[0]) for name, key in (("total", "VmRSS"), ("anon", "RssAnon"), ("file", "RssFile"))}
    return {name: value / 1024 for name, value in kib.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300_000)
    parser.add_argument("--capacity", type=int, default=2_000_000, help="buffer_size, as the atari preset")
    parser.add_argument("--replay-dir", default=None, help="memory-mapped storage in this folder")
    args = parser.parse_args()
    obs_space = spaces.Box(0, 255, (1, 64, 64), np.uint8)
    buffer = SequenceReplayBuffer(
        args.capacity, obs_space, spaces.Discrete(18), prioritize_ends=True, seed=0, storage_dir=args.replay_dir
    )
    frames = np.random.default_rng(0).integers(0, 256, (64, 1, 1, 64, 64), dtype=np.uint8)
    before, start = rss_mib(), time.perf_counter()
    for t in range(args.steps):
        done = np.array([t % 1000 == 999])
        infos = [{"terminal_observation": frames[(t + 1) % 64][0]}] if done[0] else [{}]
        buffer.add(frames[t % 64], frames[(t + 1) % 64], np.array([t % 18]), np.array([0.0], np.float32), done, infos)
    seconds = time.perf_counter() - start
    after = rss_mib()
    growth_per_step = (after["total"] - before["total"]) * 2**20 / buffer.size()
    anon_growth_per_step = (after["anon"] - before["anon"]) * 2**20 / buffer.size()
    report = {
        "storage": "memory-mapped files" if args.replay_dir else "RAM",
        "steps_added": args.steps,
        "entries_stored": buffer.size(),
        "bytes_per_step": buffer.bytes_per_step(),
        "buffer_nbytes_mib": round(buffer.nbytes() / 2**20, 1),
        "rss_before_mib": {k: round(v, 1) for k, v in before.items()},
        "rss_after_mib": {k: round(v, 1) for k, v in after.items()},
        "rss_growth_bytes_per_entry": round(growth_per_step, 1),
        "anon_growth_bytes_per_entry": round(anon_growth_per_step, 1),
        "extrapolated_2M_steps_gib": round(growth_per_step * 2_000_000 / 2**30, 2),
        "extrapolated_2M_steps_anon_gib": round(anon_growth_per_step * 2_000_000 / 2**30, 2),
        "add_steps_per_s": round(args.steps / seconds),
    }
    results = RESULTS.with_name("replay_memory_disk.json") if args.replay_dir else RESULTS
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
