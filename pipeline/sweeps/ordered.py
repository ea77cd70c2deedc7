"""Teachers and their students in one Ray Tune run: a searcher that hands out every teacher's
trial first, and a student's trial once the teacher it distils from has its run.

Why one run: each Tune run starts trial actors of its own, and a new actor imports the training
stack (torch, timm, transformers, scikit-learn, MLflow: about 10 s of CPU) before it trains
anything. With the teachers in a run of their own, every batch paid that twice and its students
started only once the teachers' run had ended; in one run Tune hands the actor that trained a
teacher its students next (`reuse_actors`), with the stack and the data already loaded. Fed
(`add`, while `fed`), the same searcher serves every batch of a phased study in one run
(pipeline.sweeps.session).

A student whose teacher was FINISHED before the batch does not wait. One that reads no teacher
(`none`) waits for its configuration's teacher all the same, to name its run as today (tag
`teacher_run_id`), and runs whatever the teacher's fate. The students that distil from a
teacher whose trial ended without a run (its own error, or its worker died and the retries ran
out) are never handed out (`dropped`); the batch reports them FAILED with the teacher's reason
(pipeline.sweeps.batch). Ray Tune's own searcher interface, nothing more:
Tune still schedules, limits concurrency (its ConcurrencyLimiter wraps this) and retries.
"""

from __future__ import annotations

import pickle
import threading
from collections.abc import Sequence

from ray.tune.search import Searcher

AFTER = "after_teacher_hash"  # a student config's teacher in this run (absent: it waits for none)
NEEDS = "reads_teacher"  # true: the student distils from it (dropped when the teacher fails)


class Ordered(Searcher):
    def __init__(self) -> None:
        super().__init__()
        self.teachers: list[dict] = []  # not yet handed out: `stage: teacher`, its "teacher_hash"
        self.students: list[dict] = []
        self.pending: set[str] = set()  # teachers handed out or not, no run yet
        self.handed: dict[str, dict] = {}  # trial id -> its suggestion, teacher or student
        self.dropped: list[dict] = []  # students never handed out: their teacher has no run
        self.fed = True  # more may come (`add`) until `close`: nothing left is not yet the end
        self._lock = threading.Lock()  # `add` comes from the driver's thread, the rest from Tune's

    def add(self, teachers: Sequence[dict], students: Sequence[dict]) -> None:
        with self._lock:
            self.teachers += list(teachers)
            self.students += list(students)
            self.pending |= {t["teacher_hash"] for t in teachers}

    def close(self) -> None:
        """Nothing more will be added: the run ends once what is left has run."""
        with self._lock:
            self.fed = False

    def suggest(self, trial_id: str) -> dict | str | None:
        with self._lock:
            if self.teachers:
                conf = self.teachers.pop(0)
            else:
                conf = next((s for s in self.students if s.get(AFTER) not in self.pending), None)
                if conf is not None:
                    self.students.remove(conf)
            if conf is not None:
                self.handed[trial_id] = {"trial": conf}
                return {"trial": conf}
            # nothing ready: wait for a teacher or for more (None), or the run is over
            return None if self.students or self.fed else Searcher.FINISHED

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        with self._lock:
            conf = self.handed.get(trial_id, {}).get("trial", {})
            if conf.get("stage") != "teacher":
                return
            digest = conf["teacher_hash"]
            self.pending.discard(digest)
            if error or not result or result.get("error") or not result.get("run_id"):
                drop = [s for s in self.students if s.get(AFTER) == digest and s.get(NEEDS)]
                self.students = [s for s in self.students if not any(s is d for d in drop)]
                self.dropped += drop

    # Tune pickles its searcher with the Tuner and checkpoints its state (a kdsweep resume reads
    # MLflow instead, but Tune asks); the lock stays out of both
    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "_lock"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def save(self, checkpoint_path: str) -> None:
        with self._lock, open(checkpoint_path, "wb") as f:
            pickle.dump(self.__getstate__(), f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            self.__setstate__(pickle.load(f))
