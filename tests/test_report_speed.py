"""Issue 14 (part 3), report speed: the SQL fast path (MLflow's tables read directly) and the
MLflow-client path (what a tracking server offers) build the same documents, byte for byte.

One sqlite store holds every kind of document's runs: the hand-made runs of test_reports (loss,
fusion, KD, backbones, with failed and killed runs), test_mil_report and test_xlite_report (an
older and a newer X-Lite sweep), and a bulk history from bench.report_db (about 100 params a
run, as real runs have). The documents are built through the public CLI with `--read sql`,
`--read mlflow` and over a real `mlflow server` on the same file (the REST reader, a first
report and a second from its snapshot); the runs frames of both readers equal MLflow's own
`search_runs` frames (the path the report took before)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from bench.report_scaling import mlflow_server, same_documents
from support import sqlite_store

REPO = Path(__file__).resolve().parents[1]
DOCS = {
    "index.md",
    "loss_explore.md",
    "toy_fusion_hp_summary.md",
    "kd_sensitivity.md",
    "backbones.md",
    "synthetic-wound_fusion_hp_summary.md",
    "xlite_experiments.md",
    "xlite_results.csv",
    "mil_loss_analysis.md",
    "results.csv",
}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """(folder, URI, the earlier X-Lite sweep's id) of a store with every study kind in it."""
    tmp = tmp_path_factory.mktemp("speed")
    uri = sqlite_store(tmp / "mlflow.db")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        import test_mil_report
        import test_reports
        import test_xlite_report

        from bench.report_db import populate

        test_reports._fill(True)
        test_mil_report.fill()
        older = test_xlite_report.fill()
        populate(None, uri, 130)  # three sweeps of synthetic-wound, written in bulk
        yield tmp, uri, older


def _cli(uri: str, out: Path, *args: str, stats: list[str] | None = None) -> set[str]:
    """`python -m reports --out OUT ARGS` in a fresh process; the top-level modules it imported.
    `stats`: gets the line the REST reader prints of its requests and snapshot."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "OMP_NUM_THREADS": "1", "KDSWEEP_TRACKING_STATS": "1"}
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "reports", "--out", str(out), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    if stats is not None:
        stats += [line for line in done.stderr.splitlines() if line.startswith("tracking: ")]
    lines = [
        line.split("|")[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")
    ]
    return {name.split(".")[0] for name in lines}


@pytest.fixture(scope="module")
def sql_docs(store):
    """The documents through the fast path (the default on a sqlite store), latest and older X-Lite."""
    tmp, uri, older = store
    imported = _cli(uri, tmp / "sql")
    _cli(uri, tmp / "sql-older", "--read", "sql", "--sweep-id", older)
    return tmp / "sql", imported


def test_the_fast_path_reads_every_document_without_mlflow_or_torch(sql_docs):
    docs, imported = sql_docs
    names = {p.name for p in docs.iterdir() if p.is_file()}
    assert DOCS <= names, sorted(DOCS - names)
    assert len(list((docs / "img").glob("*.png"))) >= 10
    assert "sqlite3" in imported and "pandas" in imported and "matplotlib" in imported
    assert not {"mlflow", "torch", "sqlalchemy"} & imported, sorted(
        {"mlflow", "torch", "sqlalchemy"} & imported
    )


def test_the_client_path_writes_the_same_files(store, sql_docs):
    tmp, uri, older = store
    imported = _cli(uri, tmp / "client", "--read", "mlflow")
    assert "mlflow" in imported
    assert same_documents(sql_docs[0], tmp / "client", (b"", b"")) == []
    _cli(uri, tmp / "client-older", "--read", "mlflow", "--sweep-id", older)
    assert same_documents(tmp / "sql-older", tmp / "client-older", (b"", b"")) == []
    assert (tmp / "sql-older" / "xlite_experiments.md").read_bytes() != (
        sql_docs[0] / "xlite_experiments.md"
    ).read_bytes()


def test_runs_and_histories_equal_mlflows_own(store, monkeypatch):
    """Both readers against mlflow.search_runs (tracking.runs_frame) and get_metric_history."""
    from pipeline import tracking
    from reports.query import frame

    tmp, uri, _ = store
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)

    students = sorted(tracking.runs_frame("tags.stage = 'student'")["run_id"])[:100]
    c = tracking.client()
    keys = ["dev/avg_f1", "train/loss", "test/avg_f1", "not/logged"]
    for via in ("sql", "mlflow"):
        read = tracking.Reader(via)
        cases = [
            (
                read.runs(tags={"stage": "sweep"}, status="FINISHED"),
                "tags.stage = 'sweep' and attributes.status = 'FINISHED'",
            ),
            (read.runs(not_status="FINISHED"), "attributes.status != 'FINISHED'"),
            (
                read.runs(students),
                "attributes.run_id IN (" + ", ".join(f"'{i}'" for i in students) + ")",
            ),
        ]
        for records, flt in cases:  # mlflow's columns come in set order, the reader's sorted
            want = tracking.runs_frame(flt).sort_values("run_id", ignore_index=True)
            got = frame(records)
            assert set(got.columns) == set(want.columns) and len(got) == len(want) > 0, (via, flt)
            pd.testing.assert_frame_equal(got, want[list(got.columns)], check_dtype=False)
        hist = read.histories(students, keys)
        for rid in students:
            for key in keys:
                points = [(m.step, m.timestamp, m.value) for m in c.get_metric_history(rid, key)]
                assert hist.get((rid, key), []) == points, (via, rid, key)
        assert len(hist) > 100


def test_over_an_mlflow_server_the_same_files_first_and_from_the_snapshot(store, sql_docs):
    """The REST reader over HTTP, a real `mlflow server` on the same sqlite file (last: the
    server adds its Default experiment to the store): the same files from a first report, with
    an empty snapshot, and from a second, that reads the ended runs from the snapshot; neither
    imports MLflow."""
    tmp, _, _ = store
    shown = f"sqlite:///{tmp / 'mlflow.db'}".encode()
    cold, warm = [], []
    with mlflow_server(tmp / "mlflow.db", workers=1) as uri:
        imported = _cli(uri, tmp / "http", stats=cold)
        _cli(uri, tmp / "http-warm", stats=warm)
    assert "mlflow" not in imported and "requests" in imported
    assert same_documents(sql_docs[0], tmp / "http", (shown, uri.encode())) == []
    assert same_documents(sql_docs[0], tmp / "http-warm", (shown, uri.encode())) == []
    assert "from the snapshot 0 runs" in cold[0], cold  # (histories read twice in one build: once)
    kept = re.search(r"from the snapshot (\d+) runs, (\d+) histories", warm[0])
    assert kept and int(kept[1]) > 100 and int(kept[2]) > 100, warm


def test_a_missing_store_is_not_created_and_an_unreadable_one_is_read_by_mlflow(
    tmp_path, monkeypatch, capsys
):
    from pipeline import tracking
    from reports.__main__ import main

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'none' / 'mlflow.db'}")
    assert main(["--out", str(tmp_path / "docs")]) == 0
    assert "no FINISHED sweep" in capsys.readouterr().out
    assert not (tmp_path / "none").exists()  # reading creates nothing
    (tmp_path / "empty.db").write_bytes(b"")  # a file without MLflow's tables
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'empty.db'}")
    with pytest.raises(tracking.SqlUnreadable):
        tracking.Reader("sql").runs()
    assert main(["--out", str(tmp_path / "docs2")]) == 0
    assert "through the MLflow client" in capsys.readouterr().err
    assert "nothing to report" in (tmp_path / "docs2" / "index.md").read_text()
