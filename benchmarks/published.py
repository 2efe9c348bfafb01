"""The DreamerV2 authors' published DMC-from-pixels runs (``benchmarks/reference/dmc-vision-dreamerv2.json``,
copied from danijar/dreamerv2's ``scores/``, MIT): one task's seeds as arrays, for plots and comparisons."""

import json
from pathlib import Path
from typing import NamedTuple

import numpy as np

DMC_VISION = Path(__file__).parent / "reference" / "dmc-vision-dreamerv2.json"


class Published(NamedTuple):
    """One task's published runs: environment frames (T,) and episode returns (seeds, T)."""

    frames: np.ndarray
    returns: np.ndarray

    def at(self, frames: float) -> dict[str, float] | None:
        """The mean and median over seeds, linearly interpolated at ``frames``; None before the first point."""
        if frames < self.frames[0]:
            return None
        return {how: round(float(np.interp(frames, self.frames, fn(self.returns, 0))), 1)
                for how, fn in (("mean", np.mean), ("median", np.median))}  # fmt: skip

    def median_logged_by(self, frames: float) -> float:
        """The median over seeds at the last logged point <= ``frames`` (nan before the first point)."""
        index = int(np.searchsorted(self.frames, frames, side="right")) - 1
        return round(float(np.median(self.returns[:, index])), 1) if index >= 0 else float("nan")


def dmc(task: str) -> Published:
    """The published runs of a DMC task as the paper names it (``cartpole-balance``), cut to the shortest run."""
    name = "dmc_" + task.replace("-", "_")
    runs = [run for run in json.loads(DMC_VISION.read_text()) if run["task"] == name]
    if not runs:
        raise ValueError(f"no published runs of {task!r} in {DMC_VISION.name}")
    length = min(len(run["ys"]) for run in runs)
    return Published(np.array(runs[0]["xs"][:length]), np.array([run["ys"][:length] for run in runs]))
