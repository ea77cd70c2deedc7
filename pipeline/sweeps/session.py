"""Every batch of a plain-grid study in ONE Ray Tune run, from its first phase to its last.

Why: a Tune run starts trial actors of its own, and a new actor imports the training stack
(about 10 s of CPU) before it trains anything. A phased study (X-Lite: six phases, BraTS:
four) paid that in every phase, and Tune's own set-up and tear-down of a run besides. In one
run the actors stay (`reuse_actors`) from the first phase to the last.

How: Tune's `fit` runs in a thread of the driver on a fed searcher (pipeline.sweeps.ordered,
teachers first); the study's phase loop stays in the driver's main thread, hands each batch to
`Session.run` and waits for the outcome of its trials, which a Tune callback collects. A batch
still waits for the batch before it: the phases choose on the results of earlier ones.
ASHA and Optuna rank every trial of their run, so a study with either keeps one run per batch
(tune_runner.run_trials). Ctrl-C or SIGTERM in the main thread: `close` stops the trials
(a Tune stopper) and waits for the run to end, as a run of its own would have.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Mapping, Sequence

from ray import tune

from pipeline.sweeps import tune_runner
from pipeline.sweeps.ordered import Ordered

BATCH = "batch"  # the key of a trial config that names the `Session.run` it came from


class _Abort(tune.Stopper):
    """Stops every trial once the driver gives up (an interrupt while a batch ran)."""

    def __init__(self) -> None:
        self.set = False

    def __call__(self, trial_id: str, result: dict) -> bool:
        return False

    def stop_all(self) -> bool:
        return self.set


class _Collect(tune.Callback):
    """Each finished trial's row (tune_runner.row), handed to the session."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def __getstate__(self) -> dict:  # Tune pickles its callbacks with the Tuner: not the session
        return {}

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self.session._done(tune_runner.row(trial.config, trial.last_result, None))

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        died = trial.get_pickled_error() or trial.get_error() or "unknown cause"
        self.session._done(tune_runner.row(trial.config, trial.last_result, died))


class Session:
    """One Tune run fed batch by batch (`run`); `close` (or the `with` block's end) ends it."""

    def __init__(
        self,
        *,
        cpu: float,
        gpu: float,
        max_concurrent: int,
        retries: int,
        name: str,
        experiment: str,
        tags: Mapping[str, str],
    ) -> None:
        self.searcher = Ordered()
        self.abort = _Abort()
        self.resources = {"cpu": cpu, "gpu": gpu}
        self.options = {"max_concurrent": max_concurrent, "retries": retries, "name": name}
        self.callbacks = [tune_runner.Progress(experiment, tags), _Collect(self)]
        self.rows: dict[int, list[dict]] = {}
        self.batches = itertools.count()
        self.changed = threading.Condition()
        self.thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def run(self, students: Sequence[dict], teachers: Sequence[dict] = ()) -> list[dict]:
        """One row per trial of this batch (tune_runner.row), from this session's run: the
        teachers' (`stage: teacher`) included; students dropped with their teacher have none."""
        n = next(self.batches)
        teachers = [{**t, BATCH: n} for t in teachers]
        students = [{**s, BATCH: n} for s in students]
        with self.changed:
            self.rows[n] = []
        self.searcher.add(teachers, students)
        if self.thread is None:
            self._start()
        wanted = len(teachers) + len(students)
        with self.changed:
            while len(self.rows[n]) + self._dropped(n) < wanted:
                if self.error is not None or not self.thread.is_alive():
                    raise RuntimeError(f"Ray Tune's run ended before batch {n} did: {self.error}")
                self.changed.wait(timeout=1.0)  # also sees students dropped by the searcher
            return self.rows.pop(n)

    def close(self, abort: bool = False, wait: bool = True) -> None:
        """Nothing more to run (`abort`: stop what runs); `wait` for Tune's run to end. Without
        waiting, Tune winds down (its actors, its experiment state: ~2 s) while the caller goes
        on; a later `close()` waits for it."""
        self.searcher.close()
        self.abort.set = self.abort.set or abort
        if self.thread is not None and wait:
            self.thread.join()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, kind, value, tb) -> None:
        """On an error or interrupt, stop the trials and wait; otherwise let Tune wind down in
        the background (the sweep then `close`s before it shuts Ray down or returns)."""
        self.close(abort=kind is not None, wait=kind is not None)

    def _dropped(self, n: int) -> int:
        return sum(s.get(BATCH) == n for s in self.searcher.dropped)

    def _done(self, row: dict) -> None:
        with self.changed:
            self.rows.setdefault(row["config"].get(BATCH, -1), []).append(row)
            self.changed.notify_all()

    def _start(self) -> None:
        tune_runner.start()
        tuner = tune_runner.make_tuner(
            tune.with_resources(tune_runner.any_trial, self.resources),
            {"cpu": self.resources["cpu"]},
            self.searcher,
            -1,  # as many trials as the searcher hands out, until it says FINISHED
            columns=None,
            callbacks=self.callbacks,
            stop=self.abort,
            **self.options,
        )

        def fit() -> None:
            try:
                tuner.fit()
            except BaseException as e:  # handed to the driver's thread (`run`)
                self.error = e
            finally:
                with self.changed:
                    self.changed.notify_all()

        self.thread = threading.Thread(target=fit, name="kdsweep-tune", daemon=True)
        self.thread.start()
