"""experiments/cosmos/optuna_trials: trials listed in start order with their own lr and loss, and the checks
against the grid, from fake run folders."""
import json

from experiments.cosmos.optuna_trials import main


def fake_run(folder, name, lr, seed, loss, started, extra=None):
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(f"name: {name}\nseed: {seed}\nmethod:\n  lr: {lr}\n"
                                        + "".join(f"{k}: {v}\n" for k, v in (extra or {}).items()))
    (folder / "results.json").write_text(json.dumps({"table/best_val_loss": loss}))
    (folder / "run.json").write_text(json.dumps({
        "status": "complete", "name": name, "seed": seed, "key": folder.name,
        "choices": {"method": name.rsplit("_", 1)[-1], "data": "markov_v32"},
        "history": [{"time": started, "action": "start"}]}))


def test_trials_in_start_order_and_checks(tmp_path):
    runs = tmp_path / "logs"
    # the folder that sorts first by name started second
    fake_run(runs / "cosmos_optuna_cosmos" / "method.lr=0.002", "cosmos_optuna_cosmos", 0.002, 0, 1.75,
             "2026-12-03T08:00:05+0000")
    fake_run(runs / "cosmos_optuna_cosmos" / "method.lr=0.03", "cosmos_optuna_cosmos", 0.03, 0, 1.62,
             "2026-12-03T08:00:01+0000")
    fake_run(runs / "check_optuna_cosmos" / "method.lr=0.03,seed=1", "check_optuna_cosmos", 0.03, 1, 1.70,
             "2026-12-03T09:00:00+0000")
    fake_run(runs / "cosmos_tiny_cosmos" / "lr_level=hi,seed=0", "cosmos_tiny_cosmos", 0.016, 0, 1.65,
             "2026-12-03T09:01:00+0000", {"lr_level": "hi"})
    grid = tmp_path / "tiny_loss.csv"
    grid.write_text("table,row,column,metric,higher_is_better,mean,std,n,setting,paper\n"
                    "tiny_loss,COSMOS,Markov best loss,table/best_val_loss,False,1.6379,0.0092,2,"
                    '"data=markov_v32,lr_level=hi",\n')
    main(["--runs", str(runs), "--out", str(tmp_path), "--grid", str(grid)])
    text = (tmp_path / "tiny_optuna_trials.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| 1 |") or line.startswith("| 2 |")]
    assert len(rows) == 2
    assert "3.000e-02" in rows[0] and "**1.6200**" in rows[0] and "method.lr=0.03`" in rows[0]
    assert "2.000e-03" in rows[1] and "1.7500" in rows[1] and "**" not in rows[1]
    assert "| COSMOS, grid (hi) | 0.016 | 1.6500 | | 1.6379 ± 0.0092 (unknown) |" in text
    assert "| COSMOS, Optuna | 0.03 | 1.6200 | 1.7000 | 1.6600 ± 0.0566 |" in text
    assert "AdamW" not in text  # an optimizer without trials gets no section
