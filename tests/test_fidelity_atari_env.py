"""Our Atari env (``sb3_dreamer/Breakout-v0``) against the reference's ``common.Atari`` wrapper (danijar/dreamerv2
2.2.0 with gym 0.21.0's ``AtariPreprocessing``), recorded by ``benchmarks/fidelity/atari_protocol.py`` in
``tests/data/fidelity_atari_protocol.npz``: for the same seed and 300 actions, every 64x64 frame, reward,
termination and no-op start count must be identical, with sticky actions off and on.
"""

import json
import pathlib

import numpy as np
import pytest

pytest.importorskip("ale_py", reason="the Atari protocol check needs ale-py (the atari extra)")

from benchmarks.fidelity import atari_protocol  # noqa: E402

GOLDEN = pathlib.Path(__file__).parent / "data" / "fidelity_atari_protocol.npz"


@pytest.mark.parametrize("case", list(atari_protocol.CASES))
def test_matches_reference_wrapper(case: str) -> None:
    meta = json.loads(GOLDEN.with_suffix(".json").read_text())
    with np.load(GOLDEN) as data:
        actions = data["actions"]
        ref = {k: data[f"{case}/{k}"] for k in ("obs", "reward", "done", "noops")}
    sticky, noops = atari_protocol.CASES[case]
    ours = atari_protocol.as_arrays(atari_protocol.run_ours(meta["game"], sticky, noops, meta["seed"], actions))
    assert ours["obs"].shape == ref["obs"].shape
    np.testing.assert_array_equal(ours["noops"], ref["noops"])
    np.testing.assert_array_equal(ours["done"], ref["done"])
    np.testing.assert_array_equal(ours["reward"], ref["reward"])
    np.testing.assert_array_equal(ours["obs"], ref["obs"])
