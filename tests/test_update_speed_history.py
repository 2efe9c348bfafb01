"""benchmarks/update_speed_history.py reads the fp32 ``atari`` runs that timed sheeprl beside ours, in order."""

import json

from benchmarks.update_speed_history import read_runs, write_csv


def _result(preset="atari", mixed_precision="no", ratio=0.5, ours=2.0, compile_model=True):
    result = dict(preset=preset, mixed_precision=mixed_precision, compile_model=compile_model, seconds_per_update=ours)
    if ratio is not None:
        result.update({"ours_over_sheeprl": ratio, "sheeprl_0.8.4_seconds_per_update": ours / ratio})
    return result


def test_reads_each_sessions_fp32_atari_runs_in_order(tmp_path):
    files = {
        "update_speed_atari_compiled_session12_rounds_run2.json": [_result(ratio=0.52)],
        "update_speed_atari_compiled_session12_rounds_run1.json": [_result(ratio=0.51), _result(preset="classic")],
        "update_speed_session3.json": [_result(ratio=0.7, compile_model=False), _result(mixed_precision="bf16")],
        "update_speed_atari_compiled_session12_rounds_other.json": [_result(ratio=0.53)],
        "update_speed_session4.json": [_result(ratio=None)],  # no sheeprl beside it
        "update_speed.json": [_result(ratio=0.9)],  # names no session
    }
    for name, results in files.items():
        (tmp_path / name).write_text(json.dumps({"cpu": "AMD EPYC", "matmul_gflops_fp32": 200.0, "results": results}))
    runs = read_runs(tmp_path)
    assert [(run.session, run.ratio, run.compile_model) for run in runs] == [
        (3, 0.7, False),
        (12, 0.51, True),
        (12, 0.52, True),
        (12, 0.53, True),
    ]
    assert runs[1].sheeprl_s == 2.0 / 0.51 and runs[1].cpu == "AMD EPYC" and runs[1].ratio_keep_memory is None
    write_csv(runs, tmp_path / "history.csv")
    lines = (tmp_path / "history.csv").read_text().splitlines()
    assert lines[0].startswith("session,file,compile_model") and len(lines) == 5
