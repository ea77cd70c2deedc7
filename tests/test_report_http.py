"""Issue 30 (item 4): the report's reads of a tracking server through its REST API, without MLflow
(pipeline.tracking.rest), and the local snapshot of ended runs (pipeline.tracking.snapshot,
.served). One real `mlflow server` for the module, MLflow's basic-auth app on (as on a shared
server): runs are written by its admin through MLflow's client and read as a user of its own.

The REST reader must give the client reader's records (params, tags, metrics with NaN, times,
statuses) and histories (order included); a second read must come from the snapshot (the
requests are counted where requests sends them); a deleted run or experiment must drop out; a
run read while RUNNING must be read again once it has ended; the login goes in a header and no
secret reaches a message or the snapshot."""

from __future__ import annotations

import json
import math
import secrets
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from core.errors import TrackingError
from support import add_user, mlflow_server

ADMIN = secrets.token_urlsafe(12)
USER = {"MLFLOW_TRACKING_USERNAME": "kd-reader", "MLFLOW_TRACKING_PASSWORD": secrets.token_urlsafe(12)}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """(URI, MLflow client as the admin): the module's server, one user added."""
    from mlflow.tracking import MlflowClient

    folder = tmp_path_factory.mktemp("http-server")
    with mlflow_server(folder / "server", admin_password=ADMIN) as uri, pytest.MonkeyPatch.context() as mp:
        add_user(uri, ADMIN, USER["MLFLOW_TRACKING_USERNAME"], USER["MLFLOW_TRACKING_PASSWORD"])
        mp.setenv("MLFLOW_TRACKING_USERNAME", "admin")
        mp.setenv("MLFLOW_TRACKING_PASSWORD", ADMIN)
        yield uri, MlflowClient(uri)


def _admin(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", ADMIN)


def _reader(monkeypatch, uri: str) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    for k, v in USER.items():
        monkeypatch.setenv(k, v)


def _runs(client, experiment: str, statuses: list[str], tag: str) -> list[str]:
    """One run per status in `experiment` (made if missing), each with params, tags, NaN and
    per-epoch metrics (two values at one step), a text artifact; RUNNING runs are left open."""
    from mlflow.entities import Metric, Param, RunTag

    exp = client.get_experiment_by_name(experiment)
    exp_id = exp.experiment_id if exp else client.create_experiment(experiment)
    ids, now = [], int(time.time() * 1000)
    for i, status in enumerate(statuses):
        run = client.create_run(exp_id, tags={"stage": "student", "group": tag}, run_name=f"{tag}-{i}")
        rid = run.info.run_id
        metrics = [Metric("dev/avg_f1", 0.1 * s, now + s, s) for s in (1, 2, 3)]
        metrics += [Metric("dev/avg_f1", 0.9, now + 9, 2), Metric("train/loss", float("nan"), now, 1)]
        metrics += [Metric("test/avg_f1", float("nan"), now, 0), Metric("latency_ms", 0.0, now, 0)]
        params = [Param("loss.name", ["none", "vanilla"][i % 2]), Param("empty", ""), Param("seed", str(i))]
        client.log_batch(rid, metrics=metrics, params=params, tags=[RunTag("note", f"run {i}: it's")])
        client.log_text(rid, f'{{"run": {i}}}', "trials.json")
        if status != "RUNNING":
            client.set_terminated(rid, status)
        ids.append(rid)
    return ids


def _same(a, b) -> bool:
    """Equal, NaN equal to NaN (json writes both as NaN)."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def test_the_rest_reader_reads_what_the_client_reads_without_importing_mlflow(server, monkeypatch):
    import subprocess
    import sys

    from pipeline import tracking

    uri, admin = server
    ids = _runs(admin, "kd-equal", ["FINISHED", "FAILED", "KILLED", "RUNNING"], "equal")
    _reader(monkeypatch, uri)
    rest, client = tracking.Reader("rest"), tracking.Reader("mlflow")
    asked = [
        {"ids": ids + ["0" * 32]},
        {"tags": {"group": "equal"}, "status": "FINISHED"},
        {"not_status": "FINISHED"},
        {"tags": {"group": "equal", "stage": "student"}},
    ]
    for args in asked:
        got = sorted(rest.runs(**args), key=lambda r: r["run_id"])
        want = sorted(client.runs(**args), key=lambda r: r["run_id"])
        assert got and _same(got, want), args
    finished = next(r for r in rest.runs(ids) if r["status"] == "FINISHED")
    assert math.isnan(finished["metrics"]["test/avg_f1"]) and finished["params"]["empty"] == ""
    keys = ["dev/avg_f1", "train/loss", "not/logged"]
    hist = rest.histories(ids, keys)
    assert _same(sorted(hist.items()), sorted(client.histories(ids, keys).items()))
    assert [v for _, _, v in hist[ids[0], "dev/avg_f1"]] == [0.1, 0.2, 0.30000000000000004, 0.9]
    rest.close()
    # an answer cut at its limit: per run instead, in pages (of 3 points here)
    from pipeline.tracking import rest as api

    monkeypatch.setattr(api, "BULK_POINTS", 3)
    assert _same(sorted(tracking.Reader("rest").histories(ids, keys).items()), sorted(hist.items()))
    monkeypatch.undo()
    _reader(monkeypatch, uri)
    art = finished["artifact_uri"]
    assert art.startswith("mlflow-artifacts:")
    assert tracking.artifact_text(finished["run_id"], art, "trials.json") == tracking.read_text(
        finished["run_id"], "trials.json"
    )
    assert tracking.artifact_text(finished["run_id"], art, "missing.json") is None
    # in a process of its own: the REST reader and its snapshot import no MLflow
    code = (
        "import sys; from pipeline import tracking; r = tracking.Reader(); "
        f"assert tracking.reader() == 'rest' and len(r.runs({ids!r})) == 4; "
        f"r.histories({ids!r}, ['dev/avg_f1']); r.close(); assert 'mlflow' not in sys.modules"
    )
    repo = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def _count(monkeypatch) -> Counter:
    """Requests sent (counted in requests.Session itself), by path and run view."""
    sent: Counter = Counter()
    real = requests.Session.request

    def request(self, method, url, **kw):
        view = (kw.get("json") or {}).get("run_view_type", "")
        sent[urlsplit(url).path.rsplit("/", 2)[-2] + "/" + urlsplit(url).path.rsplit("/", 1)[-1] + view] += 1
        return real(self, method, url, **kw)

    monkeypatch.setattr(requests.Session, "request", request)
    return sent


def test_a_second_read_comes_from_the_snapshot_and_ends_deletions_and_running_runs(server, monkeypatch):
    from pipeline import tracking
    from pipeline.tracking.snapshot import path_for

    uri, admin = server
    ids = _runs(admin, "kd-snapshot", ["FINISHED", "FINISHED", "FINISHED", "RUNNING"], "snap")
    other = _runs(admin, "kd-doomed", ["FINISHED"], "doomed")
    done, running = ids[:3], ids[3]
    keys = ["dev/avg_f1", "train/loss"]
    _reader(monkeypatch, uri)
    sent = _count(monkeypatch)

    first = tracking.Reader("rest")
    records, hist = first.runs(ids + other), first.histories(ids + other, keys)
    first.close()
    assert sent["runs/searchACTIVE_ONLY"] >= 1 and sent["metrics/get-history-bulk"] == 2, sent
    assert sent["metrics/get-history"] == 0, sent  # in bulk, also behind the basic-auth app
    snap = path_for(uri).read_bytes()
    assert USER["MLFLOW_TRACKING_PASSWORD"].encode() not in snap and b"kd-reader" not in snap
    assert "kd-reader" not in str(path_for(uri))

    sent.clear()
    second = tracking.Reader("rest")
    again, hist2 = second.runs(ids + other), second.histories(ids + other, keys)
    # the RUNNING run read again (its record, its histories); the ended ones only checked
    assert sent["runs/searchACTIVE_ONLY"] == 1 and sent["runs/searchDELETED_ONLY"] == 1, sent
    assert sent["metrics/get-history-bulk"] == 2 and second._served.kept == {"runs": 4, "histories": 8}
    assert _same(sorted(again, key=lambda r: r["run_id"]), sorted(records, key=lambda r: r["run_id"]))
    assert _same(sorted(hist2.items()), sorted(hist.items()))
    second.close()

    _admin(monkeypatch)
    admin.log_metric(running, "dev/avg_f1", 0.77, step=4)
    admin.set_terminated(running, "FINISHED")
    admin.delete_run(done[0])
    admin.delete_experiment(admin.get_experiment_by_name("kd-doomed").experiment_id)
    _reader(monkeypatch, uri)
    third = tracking.Reader("rest")
    got = {r["run_id"]: r for r in third.runs(ids + other)}
    assert sorted(got) == sorted(done[1:] + [running])  # the deleted run and experiment: gone
    assert got[running]["status"] == "FINISHED" and got[running]["metrics"]["dev/avg_f1"] == 0.77
    assert third.histories([running], ["dev/avg_f1"])[running, "dev/avg_f1"][-1][2] == 0.77
    third.close()
    assert done[0] not in json.loads(path_for(uri).read_text())["runs"]


def test_a_corrupt_snapshot_is_ignored_with_one_line_and_rewritten(server, monkeypatch, capsys):
    from pipeline import tracking
    from pipeline.tracking.snapshot import path_for

    uri, admin = server
    ids = _runs(admin, "kd-corrupt", ["FINISHED"], "corrupt")
    _reader(monkeypatch, uri)
    path = path_for(uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('{"version": 1, "uri": "' + uri + '", "runs": {"x": ')  # cut short
    reader = tracking.Reader("rest")
    assert [r["run_id"] for r in reader.runs(ids)] == ids
    reader.close()
    lines = [line for line in capsys.readouterr().err.splitlines() if "snapshot" in line]
    assert len(lines) == 1 and "ignoring the unreadable snapshot" in lines[0], lines
    assert list(json.loads(path.read_text())["runs"]) == ids


def test_the_login_goes_in_a_header_and_failures_are_one_line_without_secrets(server, monkeypatch):
    from pipeline import tracking
    from pipeline.tracking import rest

    uri, _ = server
    _reader(monkeypatch, uri)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "wrong-" + USER["MLFLOW_TRACKING_PASSWORD"])
    port = urlsplit(uri).port
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://someone:url-secret@127.0.0.1:{port}/?token=q-secret")
    with pytest.raises(TrackingError) as e:
        tracking.Reader("rest").runs(tags={"stage": "student"})
    text = str(e.value)
    assert f"at http://127.0.0.1:{port} failed" in text and "HTTP 401" in text and "\n" not in text
    assert not any(s in text for s in ("url-secret", "q-secret", USER["MLFLOW_TRACKING_PASSWORD"]))
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME")
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD")
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "t0ken")
    monkeypatch.setenv("MLFLOW_TRACKING_INSECURE_TLS", "true")
    monkeypatch.setenv("MLFLOW_TRACKING_CLIENT_CERT_PATH", "/etc/client.pem")
    s = rest.server(uri)
    assert s.session.headers["Authorization"] == "Bearer t0ken" and s.session.verify is False
    assert s.session.cert == "/etc/client.pem"
    monkeypatch.setenv("MLFLOW_TRACKING_SERVER_CERT_PATH", "/etc/ca.pem")
    assert rest.server(uri).session.verify == "/etc/ca.pem"
    with pytest.raises(
        TrackingError, match=r"failed: Could not find the TLS certificate file.*/etc/client.pem"
    ):
        tracking.Reader("rest").runs()
    monkeypatch.delenv("MLFLOW_TRACKING_CLIENT_CERT_PATH")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")  # nothing listens on port 9
    with pytest.raises(
        TrackingError, match=r"at http://127.0.0.1:9 failed: (connection refused|cannot connect)$"
    ):
        tracking.Reader("rest").runs()
    monkeypatch.setenv("MLFLOW_TRACKING_AUTH", "some_plugin")  # MLflow's to do: the client reads
    assert tracking.reader() == "mlflow"
