"""Teachers and their students in one Ray Tune run: a searcher that hands out every teacher's
trial first, and a student's trial once the teacher it distils from has its run.

Why one run: each Tune run starts trial actors of its own, and a new actor imports the training
stack (torch, timm, transformers, scikit-learn, MLflow: about 10 s of CPU) before it trains
anything. With the teachers in a run of their own, every batch paid that twice and its students
started only once the teachers' run had ended; in one run Tune hands the actor that trained a
teacher its students next (`reuse_actors`), with the stack and the data already loaded.

A student whose teacher was FINISHED before the batch does not wait. One that reads no teacher
(`none`) waits for its configuration's teacher all the same, to name its run as today (tag
`teacher_run_id`), and runs whatever the teacher's fate. The students that distil from a
teacher whose trial ended without a run (its own error, or its worker died and the retries ran
out) are never handed out; the batch reports them FAILED with the teacher's reason
(pipeline.sweeps.batch). Ray Tune's own searcher interface, nothing more:
Tune still schedules, limits concurrency (its ConcurrencyLimiter wraps this) and retries.
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence

from ray.tune.search import Searcher

AFTER = "after_teacher_hash"  # a student config's teacher in this run (absent: it waits for none)
NEEDS = "reads_teacher"  # true: the student distils from it (dropped when the teacher fails)


class Ordered(Searcher):
    def __init__(self, teachers: Sequence[dict], students: Sequence[dict]) -> None:
        super().__init__()
        self.teachers = list(teachers)  # not yet handed out: `stage: teacher`, its "teacher_hash"
        self.students = list(students)
        self.pending = {t["teacher_hash"] for t in teachers}  # handed out or not, no run yet
        self.handed: dict[str, dict] = {}  # trial id -> its suggestion, teacher or student

    def suggest(self, trial_id: str) -> dict | str | None:
        if self.teachers:
            conf = self.teachers.pop(0)
        else:
            conf = next((s for s in self.students if s.get(AFTER) not in self.pending), None)
            if conf is not None:
                self.students.remove(conf)
        if conf is not None:
            self.handed[trial_id] = {"trial": conf}
            return {"trial": conf}
        # nothing ready: wait for a teacher (None), or there is nothing left to hand out
        return None if self.students else Searcher.FINISHED

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        conf = self.handed.get(trial_id, {}).get("trial", {})
        if conf.get("stage") != "teacher":
            return
        digest = conf["teacher_hash"]
        self.pending.discard(digest)
        if error or not result or result.get("error") or not result.get("run_id"):
            self.students = [s for s in self.students if not (s.get(AFTER) == digest and s.get(NEEDS))]

    # Tune checkpoints its experiment state, the searcher's included (a kdsweep resume reads
    # MLflow instead, but Tune asks)
    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            pickle.dump(self.__dict__, f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            self.__dict__.update(pickle.load(f))
