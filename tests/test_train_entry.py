"""The main job (``python -m sb3_dreamer.train``) and the command-line tools' ``--help`` on the base install."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sb3_dreamer.train import TUNED, main

TOOLS = ["sb3_dreamer.train", "sb3_dreamer.dream", "sb3_dreamer.hub", "sb3_dreamer.zoo", "sb3_dreamer.atari_benchmark"]
# What the base install (pip install -e ., no extras) lacks and the tools may import.
OPTIONAL = ["yaml", "rl_zoo3", "huggingface_sb3", "huggingface_hub", "imageio", "moviepy", "ale_py", "cv2", "ray"]


def test_main_job_writes_model_logs_and_plot(tmp_path, capsys):
    run_dir = main(["--preset", "debug", "--steps", "300", "--eval-freq", "150", "--out", str(tmp_path), "--threads", "1"])
    assert (run_dir / "final_model.zip").exists()
    assert (run_dir / "best_model.zip").exists()
    assert (run_dir / "learning_curve.png").stat().st_size > 0
    assert (run_dir / "evaluations.npz").exists()
    assert list((run_dir / "checkpoints").glob("dreamer_*_steps.zip"))
    assert list((tmp_path / "tb").rglob("events.out.tfevents.*"))
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["solved_at"] == 475.0 and summary["solved"] is False and not summary["stopped_when_solved"]
    assert summary["best"]["path"] == str(run_dir / "best_model.zip")
    assert summary["use"] in (summary["final"]["path"], summary["best"]["path"])
    out = capsys.readouterr().out
    assert "final model" in out and "best model" in out and f"Use {summary['use']}" in out


def test_main_job_without_evaluation_ends_cleanly(tmp_path, capsys):
    """--eval-freq above --steps: no evaluations.npz, no best model; the job still evaluates and plots the final one."""
    run_dir = main(["--preset", "debug", "--steps", "100", "--eval-freq", "5000", "--out", str(tmp_path)])
    assert not (run_dir / "evaluations.npz").exists()
    assert (run_dir / "learning_curve.png").stat().st_size > 0
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["best"] is None and summary["use"] == str(run_dir / "final_model.zip")
    assert "no periodic evaluation" in capsys.readouterr().out


def test_main_job_stops_when_solved(tmp_path):
    """A threshold any policy reaches stops training at the first evaluation."""
    run_dir = main(["--preset", "debug", "--steps", "1000", "--eval-freq", "100", "--solved-at", "1", "--out", str(tmp_path)])
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["stopped_when_solved"] and summary["steps"] < 1000 and summary["solved"]


def test_tuned_settings_are_the_yml_ones():
    yaml = pytest.importorskip("yaml")
    root = Path(__file__).resolve().parents[1]
    for path in (root / "sb3_dreamer" / "hyperparams" / "dreamerv2.yml", root / "hyperparams" / "dreamerv2.yml"):
        if not path.exists():
            continue
        entries = yaml.safe_load(path.read_text())
        for env_id, settings in TUNED.items():
            expected = {k: v for k, v in entries[env_id].items() if k not in ("n_timesteps", "policy")}
            assert settings == expected, (path, env_id)


_HELP_SCRIPT = """
import contextlib, io, json, runpy, sys
for name in {optional!r}:
    sys.modules[name] = None  # as if not installed: `import name` raises ModuleNotFoundError
results = []
for tool, argv in {cases!r}:
    sys.argv = [tool, *argv]
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            runpy.run_module(tool, run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as error:
        code = error.code
    except BaseException as error:
        code = f"{{type(error).__name__}}: {{error}}"
    results.append([tool, argv, code, out.getvalue()])
print(json.dumps(results))
"""


def _run_blocked(cases: list[tuple[str, list[str]]], cwd: Path) -> list[list]:
    script = textwrap.dedent(_HELP_SCRIPT.format(optional=OPTIONAL, cases=cases))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=cwd, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_every_tool_helps_in_plain_text_without_the_extras(tmp_path):
    subcommands = [("sb3_dreamer.atari_benchmark", [c, "--help"]) for c in ("run", "status", "report")]
    results = _run_blocked([*((tool, ["--help"]) for tool in TOOLS), *subcommands], tmp_path)
    for tool, argv, code, text in results:
        assert code in (0, None), (tool, argv, code)
        assert f"python -m {tool}" in text, (tool, argv, text[:300])
        for markup in ("``", ":mod:", ":func:", ":data:", ":class:"):
            assert markup not in text, (tool, argv, markup)
        # zoo passes its arguments on to rl-zoo3; the benchmark's options are its commands' (their --help)
        if tool != "sb3_dreamer.zoo" and (tool, argv) != ("sb3_dreamer.atari_benchmark", ["--help"]):
            options = [line for line in text.splitlines() if line.lstrip().startswith("--") and "--help" not in line]
            assert options, (tool, argv)
            assert "(default:" in text, (tool, argv)


def test_python_dash_m_help():
    done = subprocess.run([sys.executable, "-m", "sb3_dreamer.train", "--help"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "usage: python -m sb3_dreamer.train" in done.stdout
    assert "(default: 1)" in done.stdout  # --threads


def test_missing_extra_is_one_line(tmp_path):
    cases = [
        ("sb3_dreamer.atari_benchmark", ["run", "--frames", "400", "--games", "pong", "--out", str(tmp_path / "bench")]),
        ("sb3_dreamer.hub", ["install", "--env", "CartPole-v1", "--repo-dir", str(tmp_path)]),
        ("sb3_dreamer.zoo", ["train", "--algo", "dreamerv2", "--env", "CartPole-v1"]),
        ("sb3_dreamer.dream", ["--model", str(tmp_path / "none.zip"), "--env", "CartPole-v1"]),
    ]
    expected = {
        "sb3_dreamer.atari_benchmark": 'sb3_dreamer.atari_benchmark needs pyyaml: pip install "sb3_dreamer[zoo]"',
        "sb3_dreamer.hub": 'sb3_dreamer.hub needs huggingface-sb3: pip install "sb3_dreamer[zoo]"',
        "sb3_dreamer.zoo": 'sb3_dreamer.zoo needs rl_zoo3: pip install "sb3_dreamer[zoo]"',
        "sb3_dreamer.dream": 'sb3_dreamer.dream needs imageio: pip install "sb3_dreamer[zoo]"',
    }
    for tool, _, code, _ in _run_blocked(cases, tmp_path):
        assert code == expected[tool]
