"""What a deployment's components wrote about a run: worker runs per task instance, read from the scheduler's log,
and the calls to the api-server's execution API, read from its access log."""

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


#: The api-server's access log line of one request: structlog's ``method=POST path=/execution/...`` (Airflow 3.2 on)
#: or uvicorn's ``"POST /execution/... HTTP/1.1"`` (before).
ACCESS = re.compile(r"(?:method=)?\b(GET|POST|PUT|PATCH|DELETE|HEAD)\b\S*\s+(?:path=)?(/execution/[^\s\"?]+)")


def execution_calls(deployment: Deployment, since: int = 0) -> list[tuple[str, str]]:
    """``(method, path)`` of every execution-API request the api-server logged from byte ``since`` of its log on
    (`log_size`): what workers, triggerers and the dag-processor asked of Airflow."""
    with (deployment.logs / "api-server.log").open("rb") as log:
        log.seek(since)
        text = log.read().decode(errors="replace")
    return [(match[1], match[2]) for match in ACCESS.finditer(text)]


def log_size(deployment: Deployment) -> int:
    """Where the api-server's log ends now: `execution_calls` from here counts what comes next."""
    return (deployment.logs / "api-server.log").stat().st_size
