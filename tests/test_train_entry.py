from sb3_dreamer.train import main


def test_main_job_writes_model_logs_and_plot(tmp_path):
    run_dir = main(["--preset", "debug", "--steps", "300", "--eval-freq", "150", "--out", str(tmp_path), "--threads", "1"])
    assert (run_dir / "final_model.zip").exists()
    assert (run_dir / "learning_curve.png").stat().st_size > 0
    assert (run_dir / "evaluations.npz").exists()
    assert list((run_dir / "checkpoints").glob("dreamer_*_steps.zip"))
    assert list((tmp_path / "tb").rglob("events.out.tfevents.*"))
