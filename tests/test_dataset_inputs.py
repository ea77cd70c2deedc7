"""Dataset inputs logged by runs at once: every fold's run logs the same test split, so trials
running side by side create the same MLflow dataset together (a real sqlite store, threads)."""

from __future__ import annotations

import threading

from pipeline import tracking
from support import sqlite_store


def test_runs_logging_the_same_split_at_once_all_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", sqlite_store(tmp_path / "mlflow.db"))
    n, errors, ids = 6, [], []
    start = threading.Barrier(n)

    def trial(i: int) -> None:
        try:
            with tracking.run("kdsweep-race", f"fold-{i}", {"stage": "student"}) as log:
                ids.append(log.run_id)
                start.wait()
                log.datasets("synthetic-brats", "data/synthetic-brats", {"test": "d1g35t"}, {"test": 16})
        except Exception as e:  # noqa: BLE001  (reported below, whatever it is)
            errors.append(e)

    threads = [threading.Thread(target=trial, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for run_id in ids:
        run = tracking.get_run(run_id)
        assert run.info.status == "FINISHED"
        assert [d.dataset.digest for d in run.inputs.dataset_inputs] == ["d1g35t"]
        assert run.data.tags["data.digest.test"] == "d1g35t"
