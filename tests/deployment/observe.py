"""What a deployment's components wrote about a run: worker runs per task instance, read from the scheduler's log."""

from __future__ import annotations

import re
from collections import Counter

from genmedia_stack import Deployment

#: The scheduler logs one such line each time an executor reports a worker run of a task instance as ended.
FINISHED = re.compile(r"TaskInstance Finished: dag_id=(\S+), task_id=(\S+), run_id=(\S+), map_index=(-?\d+),")


def worker_runs(deployment: Deployment, dag_id: str, run_id: str) -> Counter[tuple[str, int]]:
    """How many times a worker ran each task instance of a run, by ``(task_id, map_index)``."""
    runs: Counter[tuple[str, int]] = Counter()
    for path in deployment.logs.glob("scheduler*.log"):
        for match in FINISHED.finditer(path.read_text(errors="replace")):
            if (match[1], match[3]) == (dag_id, run_id):
                runs[(match[2], int(match[4]))] += 1
    return runs
