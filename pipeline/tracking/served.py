"""The report's reads of a tracking server (http://, https://): the REST API (pipeline.tracking.rest)
with the local snapshot of ended runs (pipeline.tracking.snapshot). Part of pipeline.tracking;
`Reader("rest")` (pipeline.tracking.read) is what callers use.

Over HTTP the server's time goes to whole runs: a search returns each run with all its params,
tags and metrics (~150 params a kdsweep run), some 17 ms a run on 2 cores. So runs asked for by
id are read once, in a few searches several at once, and an ended run is kept in the snapshot:
the next report asks the server only which of the kept ones were deleted since (one cheap search
that returns just those) and reads what is new or was still running. Searches by tag or status
(the sweeps themselves, the runs that did not finish) are asked afresh each time: they are what
says which runs a report shows. Records come out as the client reader's (runs/search gives the
same fields as MlflowClient.search_runs), metric histories in get_metric_history's order.

What the snapshot cannot see: a tag or metric written to a run after it ended (kdsweep writes
none; an edit by hand in the UI would be one), and a run deleted and then purged (`mlflow gc`)
between two reports, which neither view of the search returns. Deleting the snapshot's folder
(pipeline.tracking.snapshot) makes the next report read everything again.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

from pipeline.tracking.rest import BULK_RUNS, parallel, server, where
from pipeline.tracking.snapshot import Snapshot


class Served:
    """One report build's reads of the server at `uri`: the experiments listed once, each run
    read by id looked up once (`seen`), the snapshot loaded at the start and saved by `close`."""

    def __init__(self, uri: str) -> None:
        self.server = server(uri)
        self.snapshot = Snapshot(uri)
        self.seen: dict[str, dict] = {}  # records of this build, by id: active when read
        self.kept = {"runs": 0, "histories": 0}  # served from the snapshot (the benchmark prints them)
        self._experiments: list[str] | None = None

    def experiments(self) -> list[str]:
        if self._experiments is None:
            self._experiments = self.server.experiments()
        return self._experiments

    def runs(
        self,
        ids: list[str] | None,
        tags: Mapping[str, str],
        status: str | None,
        not_status: str | None,
    ) -> list[dict]:
        """Records of the active runs of active experiments matching every condition (as
        `Reader.runs`). By id alone: this build's, then the snapshot's not deleted since, then
        the server's; with a condition, the server's (ended ones kept for later reads by id)."""
        exps = self.experiments()
        if ids is None or tags or status or not_status:
            records = self.server.search(exps, where(ids, dict(tags), status, not_status))
            self.snapshot.put(records)
            self.seen.update({r["run_id"]: r for r in records})
            return records
        ids = sorted(set(ids))
        todo = [i for i in ids if i not in self.seen]
        if not todo:
            return [self.seen[i] for i in ids]
        kept = [i for i in todo if i in self.snapshot.runs]
        new = [i for i in todo if i not in self.snapshot.runs]
        read, deleted = parallel(
            lambda job: job(),
            [
                lambda: self.server.by_id(exps, new),
                # of the kept runs, those deleted since: usually none, so a cheap answer
                lambda: self.server.by_id(exps, kept, view="DELETED_ONLY", per=500),
            ],
        )
        gone = {r["run_id"] for r in deleted}
        self.snapshot.drop(sorted(gone))
        active = set(exps)
        found = [self.snapshot.runs[i] for i in kept if i not in gone]
        found = [r for r in found if r["experiment_id"] in active]  # a deleted experiment's runs
        self.kept["runs"] += len(found)
        self.snapshot.put(read)
        self.seen.update({r["run_id"]: r for r in [*found, *read]})
        return [self.seen[i] for i in ids if i in self.seen]

    def histories(self, ids: list[str], keys: list[str]) -> dict[tuple[str, str], list[tuple]]:
        """Every (step, timestamp, value) of `keys` per (run, key) that has any: kept ones from
        the snapshot, the rest in bulk requests (a key and up to 100 runs each, several at once)."""
        out: dict[tuple[str, str], list[tuple]] = {}
        jobs: list[tuple[str, list[str]]] = []
        for key in keys:
            missing = []
            for rid in ids:  # kept points only of runs this build found still there
                points = self.snapshot.history(rid, key) if rid in self.seen else None
                if points is None:
                    missing.append(rid)
                elif points:
                    out[rid, key] = points
                    self.kept["histories"] += 1
            step = BULK_RUNS
            jobs += [(key, missing[i : i + step]) for i in range(0, len(missing), step)]
        for (key, chunk), got in zip(
            jobs, parallel(lambda j: self.server.bulk(j[1], j[0]), jobs), strict=True
        ):
            for rid in chunk:
                points = got.get(rid, [])
                self.snapshot.put_history(rid, key, points)  # an ended run's only
                if points:
                    out[rid, key] = points
        return out

    def close(self) -> None:
        """Save the snapshot; with KDSWEEP_TRACKING_STATS set, one line on stderr of what was
        asked of the server and what the snapshot served (the report-scaling benchmark reads it)."""
        self.snapshot.save()
        if os.environ.get("KDSWEEP_TRACKING_STATS"):
            s = self.server
            print(
                f"tracking: {s.requests} requests to {s.shown} ({s.waited:.2f} s, summed over those in flight "
                "at once); "
                f"from the snapshot {self.kept['runs']} runs, {self.kept['histories']} histories",
                file=sys.stderr,
            )
