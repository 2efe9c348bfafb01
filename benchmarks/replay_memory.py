"""Replay memory: bytes per stored step and the process's resident memory while an Atari-shaped buffer fills.

    python benchmarks/replay_memory.py                 # 300k steps of 64x64x1 uint8 frames, 18 actions
    python benchmarks/replay_memory.py --steps 2000000 # the paper's full 2M-step buffer (~8.2 GB)

Writes ``benchmarks/results/replay_memory.json``: bytes per step, resident memory (RSS) before and after, and
the 2M-step figure extrapolated from the measured growth. Observations are stored once (no next-obs copy),
as uint8, and the arrays are only backed by RAM where written.
"""

import argparse
import json
import resource
import time
from pathlib import Path

import numpy as np
from gymnasium import spaces

from sb3_dreamer.common.buffers import SequenceReplayBuffer

RESULTS = Path(__file__).parent / "results" / "replay_memory.json"


def rss_mib() -> float:
    """Current resident memory of this process (Linux /proc), MiB."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300_000)
    parser.add_argument("--capacity", type=int, default=2_000_000, help="buffer_size, as the atari preset")
    args = parser.parse_args()
    obs_space = spaces.Box(0, 255, (1, 64, 64), np.uint8)
    buffer = SequenceReplayBuffer(args.capacity, obs_space, spaces.Discrete(18), prioritize_ends=True, seed=0)
    frames = np.random.default_rng(0).integers(0, 256, (64, 1, 1, 64, 64), dtype=np.uint8)
    before, start = rss_mib(), time.perf_counter()
    for t in range(args.steps):
        done = np.array([t % 1000 == 999])
        infos = [{"terminal_observation": frames[(t + 1) % 64][0]}] if done[0] else [{}]
        buffer.add(frames[t % 64], frames[(t + 1) % 64], np.array([t % 18]), np.array([0.0], np.float32), done, infos)
    seconds = time.perf_counter() - start
    after = rss_mib()
    growth_per_step = (after - before) * 2**20 / buffer.size()
    report = {
        "steps_added": args.steps,
        "entries_stored": buffer.size(),
        "bytes_per_step": buffer.bytes_per_step(),
        "buffer_nbytes_mib": round(buffer.nbytes() / 2**20, 1),
        "rss_before_mib": round(before, 1),
        "rss_after_mib": round(after, 1),
        "rss_growth_bytes_per_entry": round(growth_per_step, 1),
        "extrapolated_2M_steps_gib": round(growth_per_step * 2_000_000 / 2**30, 2),
        "add_steps_per_s": round(args.steps / seconds),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
