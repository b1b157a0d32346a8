"""Benchmark: thousands of waiting `GenMediaTaskTrigger`s in one event loop, next to a floor and a dbt-style poller.

Run: ``.venv/bin/python tests/benchmarks/bench_triggers.py [--sizes 100,2000,5000] [--jimeng-sizes 2000]``
(not collected by pytest; about 6 minutes with the defaults).

A vendor stand-in runs in its own process over HTTPS on loopback (a throwaway CA from trustme). Every task ends
5-20 s after the batch starts (seeded); Novita bodies carry ``eta`` and ``progress_percent`` as the vendor's
task-result does, Jimeng bodies carry neither. Each variant runs in a fresh process that holds all the waits
in one event loop, as one triggerer does:

- ``genmedia``: this project's `GenMediaTaskTrigger.run()`, connection from ``AIRFLOW_CONN_*``, adaptive schedule;
- ``floor``: one aiohttp session shared by every wait, a raw GET and ``json.loads``, fixed 1 s interval;
- ``dbt-style``: a new aiohttp session for every poll (as the dbt Cloud provider's async hook does), fixed 5 s.

Printed per run: CPU ms per poll (the client process's user+system time over the polls the stand-in answered),
RSS KiB per wait (peak resident growth over the process's baseline, divided by the waits), polls per task,
detection lag p50/p99 (event time minus the task's end), event-loop lag p99 (a 100 ms sleep's overshoot), and
how many waits ended with their event.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

MIN_SECONDS, MAX_SECONDS = 5.0, 20.0
FLOOR_INTERVAL = 1.0
DBT_INTERVAL = 5.0
MONITOR_TICK = 0.1
PAGE = os.sysconf("SC_PAGE_SIZE")
API_KEY = "bench-key"


# -- the vendor stand-in (its own process) ---------------------------------------------------------------------


def serve(port: int, cert_file: str, key_file: str) -> None:
    """Answer Novita and Jimeng task-result polls from the state encoded in each task id."""
    import ssl

    from aiohttp import web

    polls = 0

    def times(task_id: str) -> tuple[float, float]:
        start_ms, end_ms, _ = task_id.split("-")
        return int(start_ms) / 1000, int(end_ms) / 1000

    def novita(task_id: str) -> dict[str, Any]:
        start, end = times(task_id)
        now = time.time()
        done = now >= end
        progress = 100 if done else int((now - start) / (end - start) * 100)
        return {
            "extra": {"seed": "158881667", "enable_nsfw_detection": False},
            "task": {
                "task_id": task_id,
                "status": "TASK_STATUS_SUCCEED" if done else "TASK_STATUS_PROCESSING",
                "reason": "",
                "task_type": "IMG_TO_IMG",
                "eta": 0 if done else math.ceil(end - now),
                "progress_percent": progress,
            },
            "images": [
                {
                    "image_url": f"https://faas-output-image.s3.ap-southeast-1.amazonaws.com/prod/{task_id}.png",
                    "image_url_ttl": 3600,
                    "image_type": "png",
                    "nsfw_detection_result": {},
                }
            ]
            if done
            else [],
            "videos": [],
            "audios": [],
        }

    def jimeng(task_id: str) -> dict[str, Any]:
        _, end = times(task_id)
        done = time.time() >= end
        data = {"status": "done" if done else "generating", "video_url": f"https://v.example/{task_id}.mp4" * done}
        return {"code": 10000, "message": "Success", "data": data}

    async def novita_result(request: web.Request) -> web.Response:
        nonlocal polls
        polls += 1
        return web.json_response(novita(request.query["task_id"]))

    async def jimeng_result(request: web.Request) -> web.Response:
        nonlocal polls
        polls += 1
        return web.json_response(jimeng(request.match_info["task_id"]))

    async def count(request: web.Request) -> web.Response:
        nonlocal polls
        answer = {"polls": polls}
        if request.query.get("reset"):
            polls = 0
        return web.json_response(answer)

    app = web.Application()
    app.router.add_get("/v3/async/task-result", novita_result)
    app.router.add_get("/task/{task_id}", jimeng_result)
    app.router.add_get("/_polls", count)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    web.run_app(app, host="127.0.0.1", port=port, ssl_context=context, print=None, access_log=None, backlog=4096)


# -- the waiting side (one process per run) ----------------------------------------------------------------------


def rss() -> int:
    """This process's resident memory now, in bytes."""
    return int(Path("/proc/self/statm").read_text().split()[1]) * PAGE


def task_ids(count: int, seed: int) -> list[str]:
    """Ids of tasks that start now and end 5-20 s from now, the end encoded for the stand-in and the lag."""
    rng = random.Random(seed)
    now = time.time()
    return [
        f"{int(now * 1000)}-{int((now + rng.uniform(MIN_SECONDS, MAX_SECONDS)) * 1000)}-{index}"
        for index in range(count)
    ]


def end_of(task_id: str) -> float:
    """The epoch at which the stand-in finishes ``task_id``."""
    return int(task_id.split("-")[1]) / 1000


def is_done(api: str, body: dict[str, Any]) -> bool:
    """The floor's and dbt-style's whole parser: a terminal status or not."""
    if api == "novita":
        return body["task"]["status"] in ("TASK_STATUS_SUCCEED", "TASK_STATUS_FAILED")
    return body["data"]["status"] == "done"


def poll_url(base_url: str, api: str, task_id: str) -> str:
    """The task-result URL of ``task_id``."""
    return f"{base_url}/v3/async/task-result?task_id={task_id}" if api == "novita" else f"{base_url}/task/{task_id}"


async def run_client(variant: str, count: int, api: str, base_url: str, seed: int) -> dict[str, Any]:
    """Wait for ``count`` tasks with ``variant`` in this event loop; return the figures."""
    import aiohttp

    from airflow_provider_genmedia.triggers.task import GenMediaTaskTrigger

    headers = {"Authorization": f"Bearer {API_KEY}"}
    ended: dict[str, float] = {}

    async def genmedia(task_id: str) -> None:
        trigger = GenMediaTaskTrigger(api=api, genmedia_task_id=task_id, conn_id=None)
        async for event in trigger.run():
            if event.payload["status"] == "succeeded":
                ended[task_id] = time.time()

    shared: list[aiohttp.ClientSession] = []

    async def floor(task_id: str) -> None:
        url = poll_url(base_url, api, task_id)
        while True:
            await asyncio.sleep(FLOOR_INTERVAL)
            try:
                async with shared[0].get(url, headers=headers) as response:
                    body = json.loads(await response.read())
            except (aiohttp.ClientError, TimeoutError):
                continue
            if is_done(api, body):
                ended[task_id] = time.time()
                return

    async def dbt_style(task_id: str) -> None:
        url = poll_url(base_url, api, task_id)
        while True:
            await asyncio.sleep(DBT_INTERVAL)
            try:
                async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as response:
                    body = await response.json()
            except (aiohttp.ClientError, TimeoutError):
                continue
            if is_done(api, body):
                ended[task_id] = time.time()
                return

    waits: dict[str, Callable[[str], Awaitable[None]]] = {"genmedia": genmedia, "floor": floor, "dbt-style": dbt_style}
    wait = waits[variant]

    # Warm up the imports, configuration and TLS of this process before the baseline: a triggerer pays them once
    # in its life, not per wait or per poll. The project's warm-up is one wait for a task that has already ended.
    if variant == "genmedia":
        now = int(time.time() * 1000)
        warm_up = GenMediaTaskTrigger(api=api, genmedia_task_id=f"{now - 2000}-{now - 1000}-0", conn_id=None)
        warm_up.poll_interval = 0.01
        await anext(warm_up.run())
    async with aiohttp.ClientSession() as session, session.get(f"{base_url}/_polls?reset=1") as response:
        await response.read()
    baseline = rss()
    peak = baseline
    lags: list[float] = []
    cpu_before = os.times()
    if variant == "floor":
        shared.append(aiohttp.ClientSession())
    ids = task_ids(count, seed)
    started = time.time()
    running = asyncio.gather(*(wait(task_id) for task_id in ids), return_exceptions=True)
    loop = asyncio.get_running_loop()
    while not running.done():
        before = loop.time()
        await asyncio.sleep(MONITOR_TICK)
        lags.append(loop.time() - before - MONITOR_TICK)
        peak = max(peak, rss())
    failures = [outcome for outcome in running.result() if isinstance(outcome, BaseException)]
    cpu_after = os.times()
    wall = time.time() - started
    for session in shared:
        await session.close()
    async with aiohttp.ClientSession() as session, session.get(f"{base_url}/_polls") as response:
        polls = (await response.json())["polls"]
    detection = sorted(ended[task_id] - end_of(task_id) for task_id in ended)
    cpu = (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system)
    return {
        "variant": variant,
        "api": api,
        "waits": count,
        "events": len(ended),
        "failures": [repr(failure) for failure in failures[:3]],
        "polls": polls,
        "cpu_ms_per_poll": 1000 * cpu / max(polls, 1),
        "rss_kib_per_wait": (peak - baseline) / 1024 / count,
        "rss_growth_mb": (peak - baseline) / 1e6,
        "polls_per_task": polls / count,
        "lag_p50": statistics.median(detection) if detection else math.nan,
        "lag_p99": detection[int(0.99 * (len(detection) - 1))] if detection else math.nan,
        "loop_lag_p99": sorted(lags)[int(0.99 * (len(lags) - 1))] if lags else math.nan,
        "wall_seconds": wall,
    }


# -- the parent: start the stand-in, run each variant in a fresh process, print the table --------------------------


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def client_env(ca_file: str, base_url: str, home: str) -> dict[str, str]:
    """The waiting process's environment: the CA trusted, both connections at the stand-in, no settle delay."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("AIRFLOW")}
    connection = {"conn_type": "novita", "host": base_url, "password": API_KEY}
    env.update(
        SSL_CERT_FILE=ca_file,
        AIRFLOW_HOME=home,
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__UNIT_TEST_MODE="True",
        # The settle delay guards Airflow's defer race, not detection: it is left out of the lag measured here.
        AIRFLOW__GENMEDIA__DEFER_SETTLE="0",
        AIRFLOW_CONN_NOVITA_DEFAULT=json.dumps(connection),
        AIRFLOW_CONN_GPTGE_DEFAULT=json.dumps({**connection, "conn_type": "gptge"}),
    )
    return env


def run_variant(variant: str, count: int, api: str, base_url: str, env: dict[str, str]) -> dict[str, Any]:
    """One variant in a fresh process; its figures."""
    command = [sys.executable, __file__, "client", variant, str(count), api, base_url]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{variant} at {count} failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def print_table(rows: list[dict[str, Any]]) -> None:
    """The figures side by side, as a Markdown table."""
    print(
        "| api | waits | variant | CPU ms/poll | RSS KiB/wait | RSS growth MB | polls/task "
        "| detection lag p50 / p99 s | loop lag p99 s | events |"
    )
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print(
            f"| {row['api']} | {row['waits']} | {row['variant']} | {row['cpu_ms_per_poll']:.2f} "
            f"| {row['rss_kib_per_wait']:.1f} | {row['rss_growth_mb']:.0f} | {row['polls_per_task']:.1f} "
            f"| {row['lag_p50']:.2f} / {row['lag_p99']:.2f} | {row['loop_lag_p99']:.2f} "
            f"| {row['events']}/{row['waits']} |"
        )
        if row["failures"]:
            print(f"<!-- {row['variant']} failures: {row['failures']} -->")


def main() -> None:
    """Parse the command line: the parent by default, ``serve`` and ``client`` for the child processes."""
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        serve(int(sys.argv[2]), sys.argv[3], sys.argv[4])
        return
    if len(sys.argv) > 1 and sys.argv[1] == "client":
        variant, count, api, base_url = sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
        figures = asyncio.run(run_client(variant, count, api, base_url, seed=count))
        print(json.dumps(figures))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100,2000,5000", help="waits per run with Novita bodies")
    parser.add_argument("--jimeng-sizes", default="2000", help="waits per run with Jimeng bodies (no eta)")
    parser.add_argument("--variants", default="floor,dbt-style,genmedia")
    args = parser.parse_args()

    import trustme

    with tempfile.TemporaryDirectory(prefix="bench-triggers-") as folder:
        authority = trustme.CA()
        certificate = authority.issue_cert("127.0.0.1", "localhost")
        ca_file, cert_file, key_file = (str(Path(folder, name)) for name in ("ca.pem", "cert.pem", "key.pem"))
        authority.cert_pem.write_to_path(ca_file)
        certificate.cert_chain_pems[0].write_to_path(cert_file)
        certificate.private_key_pem.write_to_path(key_file)
        port = free_port()
        base_url = f"https://127.0.0.1:{port}"
        server = subprocess.Popen([sys.executable, __file__, "serve", str(port), cert_file, key_file])
        try:
            time.sleep(2)
            env = client_env(ca_file, base_url, folder)
            plan = [("novita", int(size)) for size in args.sizes.split(",") if size]
            plan += [("jimeng", int(size)) for size in args.jimeng_sizes.split(",") if size]
            rows = []
            for api, count in plan:
                for variant in args.variants.split(","):
                    rows.append(run_variant(variant, count, api, base_url, env))
                    print(f"done: {api} {count} {variant}", file=sys.stderr)
            print_table(rows)
        finally:
            server.terminate()
            server.wait(10)


if __name__ == "__main__":
    main()
