"""Benchmark: waits for paid jobs of every API on a real Airflow deployment, next to Airflow's own sensors and a
minimal job.

Run: ``.venv/bin/python tests/benchmarks/bench_deployment.py [--tasks 300] [--variants ...]`` (not collected by
pytest). The full run (300 tasks, images of 10-40 s, videos of 60-300 s, every variant) takes about an hour on two
cores; the short one, ``GENMEDIA_BENCH_TASKS=20 GENMEDIA_BENCH_VIDEO_SECONDS=60,120``, about 25 minutes.

Each variant runs on a fresh deployment of ``genmedia_stack`` (api-server, scheduler, dag-processor and
triggerer as separate processes, LocalExecutor with parallelism 4, PostgreSQL) with the emulator as the vendor, and one
DAG of ``--tasks`` tasks. Vendor jobs last as real ones do, each drawn from ``--image-seconds`` or ``--video-seconds``
(``LOW,HIGH``) by the emulator's seeded generator; Jimeng, Bailian and the avatar tell no eta, as their vendors:

- ``novita-job``, ``jimeng-job``, ``bailian-job``, ``avatar-job``: each API's operator (``deferrable=True``), one
  job per task;
- ``genmedia-sensor``: `GenMediaTaskSensor(deferrable=True)` (it starts in the triggerer), each on a Novita task
  the benchmark submitted beforehand (as another system would) just before the DAG appears, all ending together
  ``--seconds`` later; ``genmedia-sensor-2t``: the same with two triggerers;
- ``genmedia-sensor-worker``: the sensor with ``start_from_trigger=False`` (one check on a worker, then the wait);
- ``datetime-resumed``: Airflow's ``DateTimeSensorAsync(start_from_trigger=True)``, resumed on a worker;
- ``datetime-ended``: the same with ``end_from_trigger=True``, which the triggerer ends (the sensors' floor);
- ``minimal-job``: an operator that runs once on a worker and waits on ``DateTimeTrigger(end_from_trigger=True)``
  for as long as an image job (drawn from the same range): the jobs' floor.

Printed per variant: makespan (the DAG run's start to its end), whole-deployment CPU per task (user+system time of
every component's process tree, the worker processes and the PostgreSQL server included, over the run) and the
triggerers' share, worker runs per task (the scheduler's "TaskInstance Finished" lines), execution-API calls per task
(the api-server's access log over the run), detection lag p50/p99 (a task's end minus the end of what it waited for:
the vendor task's, or the sensor's target time) and vendor polls per task (the emulator's count).
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import random
import signal
import statistics
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import requests

from genmedia_stack import Deployment, EmulatorProcess

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.deployment.observe import execution_calls, log_size, worker_runs  # noqa: E402

DAG_ID = "bench"
API_KEY = "bench-key"
HEADER = """
from datetime import timedelta

import pendulum
from airflow.sdk import DAG

START = pendulum.datetime(2026, 1, 1, tz="UTC")
"""


@dataclass(frozen=True)
class Shape:
    """What a DAG is made of: the vendor task ids submitted beforehand, the sensors' common end, the task count and
    the minimal job's waits."""

    task_ids: list[str]
    end: float
    tasks: int
    waits: list[float]


@dataclass(frozen=True)
class Variant:
    """One DAG shape (its source, given a `Shape`), whether the benchmark submits vendor tasks first (they then end
    together, ``--seconds`` after), and how many triggerers run."""

    name: str
    source: Callable[[Shape], str]
    submits_first: bool = False
    vendor_lag: bool = False
    triggerers: int = 1


def genmedia_sensor(start_from_trigger: bool) -> Callable[[Shape], str]:
    def source(shape: Shape) -> str:
        return HEADER + textwrap.dedent(f"""
            import inspect

            from airflow_provider_genmedia.sensors.task import GenMediaTaskSensor

            # Earlier checkouts (--provider-src) took no such argument: they always started from the trigger.
            takes_it = "start_from_trigger" in inspect.signature(GenMediaTaskSensor).parameters
            START_ARGS = {{"start_from_trigger": {start_from_trigger!r}}} if takes_it else {{}}

            with DAG("{DAG_ID}", schedule=None, start_date=START, catchup=False):
                for index, vendor_id in enumerate({shape.task_ids!r}):
                    GenMediaTaskSensor(
                        task_id=f"wait_{{index}}", api="novita", genmedia_task_id=vendor_id, deferrable=True,
                        **START_ARGS,
                    )
        """)

    return source


#: Each API's operator and its arguments in the benchmark's DAG (a prompt is added per task where it takes one).
JOBS = {
    "novita": (
        "novita.NovitaImg2ImgOperator",
        {
            "image": str(REPO / "example_dags" / "data" / "product.png"),
            "model_name": "sd_xl_base_1.0.safetensors",
            "image_num": 1,
            "response_image_type": "png",
            "fit_image": True,
        },
    ),
    "jimeng": ("video.JimengVideoOperator", {}),
    "bailian": ("video.BailianVideoOperator", {"model": "wan2.6-t2v", "size": "1280*720", "duration": 5}),
    "avatar": (
        "video.AvatarVideoOperator",
        {"avatar_url": "https://example.com/face.png", "audio_url": "https://example.com/hello.mp3"},
    ),
}


def genmedia_job(api: str) -> Callable[[Shape], str]:
    module, _, name = JOBS[api][0].rpartition(".")
    arguments = JOBS[api][1]
    # The avatar speaks an audio track: it takes no prompt.
    prompt = "" if api == "avatar" else ', prompt=f"a watercolor mug, take {index}"'

    def source(shape: Shape) -> str:
        return HEADER + textwrap.dedent(f"""
            from airflow_provider_genmedia.operators.{module} import {name}

            with DAG("{DAG_ID}", schedule=None, start_date=START, catchup=False):
                for index in range({shape.tasks}):
                    {name}(task_id=f"job_{{index}}", deferrable=True, **{arguments!r}{prompt})
        """)

    return source


def datetime_sensor(end_from_trigger: bool) -> Callable[[Shape], str]:
    def source(shape: Shape) -> str:
        return HEADER + textwrap.dedent(f"""
            from airflow.providers.standard.sensors.date_time import DateTimeSensorAsync

            with DAG("{DAG_ID}", schedule=None, start_date=START, catchup=False):
                for index in range({shape.tasks}):
                    DateTimeSensorAsync(
                        task_id=f"wait_{{index}}", target_time=pendulum.from_timestamp({shape.end!r}),
                        start_from_trigger=True, end_from_trigger={end_from_trigger!r},
                    )
        """)

    return source


def minimal_job(shape: Shape) -> str:
    return HEADER + textwrap.dedent(f"""
        from airflow.providers.standard.triggers.temporal import DateTimeTrigger
        from airflow.sdk import BaseOperator, timezone


        class MinimalJob(BaseOperator):
            def __init__(self, seconds, **kwargs):
                super().__init__(**kwargs)
                self.seconds = seconds

            def execute(self, context):
                moment = timezone.utcnow() + timedelta(seconds=self.seconds)
                self.defer(trigger=DateTimeTrigger(moment=moment, end_from_trigger=True), method_name="done")

            def done(self, context, event=None):
                return None


        with DAG("{DAG_ID}", schedule=None, start_date=START, catchup=False):
            for index, seconds in enumerate({shape.waits!r}):
                MinimalJob(task_id=f"job_{{index}}", seconds=seconds)
    """)


VARIANTS = {
    variant.name: variant
    for variant in (
        *(Variant(f"{api}-job", genmedia_job(api), vendor_lag=True) for api in JOBS),
        Variant("minimal-job", minimal_job),
        Variant("genmedia-sensor", genmedia_sensor(True), submits_first=True, vendor_lag=True),
        Variant("genmedia-sensor-2t", genmedia_sensor(True), submits_first=True, vendor_lag=True, triggerers=2),
        Variant("datetime-ended", datetime_sensor(True)),
        Variant("genmedia-sensor-worker", genmedia_sensor(False), submits_first=True, vendor_lag=True),
        Variant("datetime-resumed", datetime_sensor(False)),
    )
}
#: What the default run measures: every API, the sensor with one and two triggerers, and the floors.
DEFAULT_VARIANTS = (
    "novita-job",
    "jimeng-job",
    "bailian-job",
    "avatar-job",
    "minimal-job",
    "genmedia-sensor",
    "genmedia-sensor-2t",
    "datetime-ended",
)


def tree_cpu(deployment: Deployment) -> dict[str, float]:
    """User+system seconds of every live process of each component (LocalExecutor's workers are the scheduler's)
    and of the PostgreSQL server (its backends are its children), with the reaped children each one counted."""
    leaders = deployment.all_processes()
    seconds = dict.fromkeys(leaders, 0.0)
    for name, leader in leaders.items():
        try:
            processes = [psutil.Process(leader.pid), *psutil.Process(leader.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
        for process in processes:
            try:
                times = process.cpu_times()
            except psutil.NoSuchProcess:
                continue
            seconds[name] += times.user + times.system + times.children_user + times.children_system
    return seconds


def submit_vendor_tasks(emulator: EmulatorProcess, count: int) -> list[str]:
    """Submit ``count`` Novita txt2img tasks straight to the emulator, as another system would."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {API_KEY}"
    body = {
        "request": {
            "model_name": "sd_xl_base_1.0.safetensors",
            "width": 512,
            "height": 512,
            "image_num": 1,
            "steps": 20,
            "guidance_scale": 7.5,
            "sampler_name": "Euler a",
        }
    }
    ids = []
    for index in range(count):
        body["request"]["prompt"] = f"a lighthouse, take {index}"
        answer = session.post(f"{emulator.url}/v3/async/txt2img", json=body, timeout=10)
        answer.raise_for_status()
        ids.append(answer.json()["task_id"])
    return ids


def all_task_instances(deployment: Deployment, run_id: str) -> list[dict[str, Any]]:
    """Every task instance of the run, page by page (the REST API gives at most 100 at a time)."""
    path = f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances"
    instances: list[dict[str, Any]] = []
    while page := deployment.api("GET", path, params={"limit": 100, "offset": len(instances)})["task_instances"]:
        instances += page
    return instances


def epoch(value: str | None) -> float | None:
    return None if value is None else datetime.fromisoformat(value).astimezone(UTC).timestamp()


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(share * len(ordered)), len(ordered) - 1)]


def run_variant(variant: Variant, settings: argparse.Namespace, root: Path) -> dict[str, Any]:
    """One variant on a fresh deployment (its components running the provider from ``--provider-src`` when given);
    its figures."""
    if variant.submits_first:  # tasks that end together
        durations = ["--image-seconds", str(settings.seconds)]
    else:
        (image_low, image_high), (video_low, video_high) = settings.image_seconds, settings.video_seconds
        durations = ["--image-seconds", str(image_low), "--image-seconds-max", str(image_high)]
        durations += ["--video-seconds", str(video_low), "--video-seconds-max", str(video_high)]
    emulator = EmulatorProcess(log=root / "emulator.log", api_key=API_KEY, arguments=[*durations, "--seed", "7"])
    emulator.start()
    provider = settings.provider_src
    deployment = Deployment(
        root=root,
        dag_sources=[],
        emulator=emulator,
        # A DAG file written after the start is found within seconds (the default looks every 5 minutes).
        extra_env={"AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5"}
        | ({"PYTHONPATH": str(provider)} if provider else {}),
        extra_triggerers=variant.triggerers - 1,
    )
    tasks = settings.tasks
    try:
        deployment.start()
        ids = submit_vendor_tasks(emulator, tasks) if variant.submits_first else []
        rng = random.Random(7)
        waits = [rng.uniform(*settings.image_seconds) for _ in range(tasks)]
        end = time.time() + settings.seconds
        (deployment.dags / f"{DAG_ID}.py").write_text(variant.source(Shape(ids, end, tasks, waits)))
        deployment.wait_for_dags(DAG_ID, timeout=180)
        deployment.unpause(DAG_ID)
        cpu_before = tree_cpu(deployment)
        since = log_size(deployment)
        run_id = deployment.trigger(DAG_ID)
        try:
            state = deployment.wait_for_run(DAG_ID, run_id, timeout=settings.cap)
        except AssertionError:
            state = f"unfinished after {settings.cap:.0f} s"
        cpu = {name: spent - cpu_before.get(name, 0.0) for name, spent in tree_cpu(deployment).items()}
        calls = execution_calls(deployment, since)
        run = deployment.api("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}")
        instances = all_task_instances(deployment, run_id)
        stats = emulator.stats()
        lags = task_lags(deployment, run_id, instances, stats) if variant.vendor_lag else []
        if variant.name.startswith("datetime"):
            lags = [ended - end for ended in (epoch(ti["end_date"]) for ti in instances) if ended is not None]
        started, ended = epoch(run["start_date"]), epoch(run["end_date"])
        polls = [task["polls"] for task in stats["tasks"].values()]
        return {
            "variant": variant.name,
            "state": state,
            "succeeded": sum(ti["state"] == "success" for ti in instances),
            "makespan": None if started is None or ended is None else ended - started,
            "cpu_per_task": sum(cpu.values()) / tasks,
            "triggerer_cpu_per_task": sum(spent for name, spent in cpu.items() if name.startswith("triggerer")) / tasks,
            "cpu_per_task_by_component": {name: round(spent / tasks, 3) for name, spent in cpu.items()},
            "worker_runs_per_task": sum(worker_runs(deployment, DAG_ID, run_id).values()) / tasks,
            "execution_calls_per_task": len(calls) / tasks,
            "lag_p50": statistics.median(lags) if lags else None,
            "lag_p99": percentile(lags, 0.99) if lags else None,
            "polls_per_task": statistics.mean(polls) if polls else None,
        }
    finally:
        deployment.stop()
        emulator.stop()


def task_lags(
    deployment: Deployment, run_id: str, instances: list[dict[str, Any]], stats: dict[str, Any]
) -> list[float]:
    """Each finished task's end minus the end of the vendor task it waited for (found by its XCom)."""
    lags = []
    for ti in instances:
        end = epoch(ti["end_date"])
        if ti["state"] != "success" or end is None:
            continue
        path = f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{ti['task_id']}/xcomEntries/return_value"
        value = deployment.api("GET", path)["value"]
        result = json.loads(value) if isinstance(value, str) else value
        lags.append(end - stats["tasks"][result["task_id"]]["finished_at"])
    return lags


def cell(value: float | None, unit: str = "", digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}{unit}"


def seconds_range(text: str) -> tuple[float, float]:
    """``LOW,HIGH`` (or one number) as a range of seconds."""
    low, _, high = text.partition(",")
    return float(low), float(high or low)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    env = os.environ.get
    parser.add_argument("--tasks", type=int, default=int(env("GENMEDIA_BENCH_TASKS", "300")))
    parser.add_argument(
        "--seconds",
        type=float,
        default=float(env("GENMEDIA_BENCH_SECONDS", "60")),
        help="how long the sensors' waits last (they end together)",
    )
    parser.add_argument(
        "--image-seconds", type=seconds_range, default=seconds_range(env("GENMEDIA_BENCH_IMAGE_SECONDS", "10,40"))
    )
    parser.add_argument(
        "--video-seconds", type=seconds_range, default=seconds_range(env("GENMEDIA_BENCH_VIDEO_SECONDS", "60,300"))
    )
    parser.add_argument("--cap", type=float, default=1500.0, help="give a run up this many seconds")
    parser.add_argument(
        "--variants", default=",".join(DEFAULT_VARIANTS), help="comma-separated, from: " + ", ".join(VARIANTS)
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument(
        "--provider-src",
        type=Path,
        help="run the components with the provider of this checkout (a git worktree of an earlier commit), to compare",
    )
    arguments = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the running deployment on the way out
    # pip compiles a wheel's modules when it installs them; a checkout run where PYTHONDONTWRITEBYTECODE is set (as on
    # this machine) would compile the provider again in every worker run and parse, which no deployment pays.
    compileall.compile_dir((arguments.provider_src or REPO) / "airflow_provider_genmedia", quiet=1)
    rows = []
    for name in arguments.variants.split(","):
        with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as folder:
            row = run_variant(VARIANTS[name], arguments, Path(folder))
        rows.append(row)
        print(json.dumps(row), flush=True)
    source = f"the provider from {arguments.provider_src}" if arguments.provider_src else "this checkout's provider"
    print(
        f"\n{arguments.tasks} tasks per variant; images {arguments.image_seconds}, videos {arguments.video_seconds} s; "
        f"sensors end together after {arguments.seconds:.0f} s; fresh deployments, {source}\n"
    )
    floor = next((row["cpu_per_task"] for row in rows if row["variant"] == "minimal-job"), None)
    print(
        "| variant | run | makespan | CPU per task (x minimal) | triggerer CPU per task | worker runs per task "
        "| execution-API calls per task | lag p50 / p99 | polls per task |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        lag = f"{cell(row['lag_p50'], ' s', 1)} / {cell(row['lag_p99'], ' s', 1)}"
        ratio = f" ({row['cpu_per_task'] / floor:.2f}x)" if floor else ""
        print(
            f"| {row['variant']} | {row['state']}, {row['succeeded']} ok | {cell(row['makespan'], ' s', 0)} "
            f"| {cell(row['cpu_per_task'], ' s')}{ratio} | {cell(row['triggerer_cpu_per_task'], ' s', 3)} "
            f"| {cell(row['worker_runs_per_task'])} | {cell(row['execution_calls_per_task'], '', 1)} | {lag} "
            f"| {cell(row['polls_per_task'], '', 1)} |"
        )
    if arguments.json:
        arguments.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
