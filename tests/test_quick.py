from tests.conftest import TINY


def test_quickstart_tiny(run_job):
    results, job = run_job(TINY)
    assert (job.output_dir / "results.json").exists()
    assert results["train/steps"] == 4
