"""Benchmark: what the daily budget costs a submit, on local disk and on S3, beside a submit without a budget.

Run: ``.venv/bin/python tests/benchmarks/bench_budget.py [--submits 200]`` (not collected by pytest; about a minute).
Each variant sends ``--submits`` img2img-sized submits to the emulator (its own process, on loopback) through
`NovitaHook.submit`, on a connection with no budget, then with ``max_jobs_per_day`` and ``max_outputs_per_day`` counted
in a ledger on local disk, then in a ledger on S3 (moto's server on loopback). It prints the wall time per submit
(median and p95), what the budget adds to it, and the storage calls per submit (counted on the ledger's file system).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

AIRFLOW_HOME = tempfile.mkdtemp(prefix="genmedia-bench-budget-")
os.environ["AIRFLOW_HOME"] = AIRFLOW_HOME
os.environ["AIRFLOW__CORE__EXECUTOR"] = "LocalExecutor"

import boto3  # noqa: E402
from airflow.sdk import ObjectStoragePath  # noqa: E402
from moto.server import ThreadedMotoServer  # noqa: E402

from airflow_provider_genmedia.apis import get_api  # noqa: E402
from airflow_provider_genmedia.budgets import SpendLedger  # noqa: E402
from airflow_provider_genmedia.hooks.genmedia import NovitaHook  # noqa: E402
from genmedia_stack import (  # noqa: E402
    S3_ACCESS_KEY,
    S3_CONN_ID,
    S3_REGION,
    S3_SECRET_KEY,
    EmulatorProcess,
    s3_connection,
)

BUCKET = "genmedia-ledger"
PATH = "/v3/async/txt2img"
#: Ledger storage calls counted per submit: listing a folder, creating a unit, deleting one.
COUNTED = ("ls", "pipe_file", "rm_file")


def body(index: int) -> dict[str, Any]:
    """A txt2img request asking for 2 images (so the output budget takes 2 units)."""
    request = {
        "model_name": "sd_xl_base_1.0.safetensors",
        "prompt": f"a brass desk lamp, take {index}",
        "width": 512,
        "height": 512,
        "image_num": 2,
        "steps": 20,
        "guidance_scale": 7.5,
        "sampler_name": "Euler a",
    }
    return {"request": request}


def use_connection(emulator: EmulatorProcess, **extras: Any) -> None:
    """Point ``novita_default`` at the emulator, with ``extras``."""
    conn = {"conn_type": "novita", "host": emulator.url, "password": emulator.api_key, "extra": extras}
    os.environ["AIRFLOW_CONN_NOVITA_DEFAULT"] = json.dumps(conn)


@contextmanager
def counted_storage_calls(ledger_uri: str, conn_id: str | None) -> Iterator[Counter[str]]:
    """Count the ledger file system's calls (by method name) while the block runs."""
    fs = ObjectStoragePath(ledger_uri, conn_id=conn_id).fs
    counts: Counter[str] = Counter()
    originals = {name: getattr(fs, name) for name in COUNTED}

    def counting(name: str, call: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            counts[name] += 1
            return call(*args, **kwargs)

        return wrapper

    for name, call in originals.items():
        setattr(fs, name, counting(name, call))
    try:
        yield counts
    finally:
        for name, call in originals.items():
            setattr(fs, name, call)


def run_submits(submits: int, offset: int) -> list[float]:
    """Send ``submits`` submits one after the other; the seconds each took."""
    api = get_api("novita")
    took = []
    for index in range(submits):
        submission = api.prepare(body(offset + index), PATH)
        started = time.perf_counter()
        NovitaHook().submit(submission)
        took.append(time.perf_counter() - started)
    return took


def local_calls(ledger: Path, submits: int) -> dict[str, float]:
    """Local-disk calls per submit, counted from what the ledger holds (os calls are not fsspec's)."""
    units = sum(1 for path in ledger.rglob("*.json"))
    return {"listdir": 2.0, "O_EXCL create": units / submits}


def row(name: str, took: list[float], baseline: float | None, calls: str) -> str:
    median = statistics.median(took) * 1000
    p95 = statistics.quantiles(took, n=20)[-1] * 1000
    added = "-" if baseline is None else f"{median - baseline:+.2f}"
    return f"| {name} | {median:.2f} | {p95:.2f} | {added} | {calls} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--submits", type=int, default=200)
    args = parser.parse_args()
    submits = args.submits
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's server logs every request
    logging.getLogger("airflow_provider_genmedia").setLevel(logging.WARNING)
    budget = {"max_jobs_per_day": 100_000, "max_outputs_per_day": 100_000}
    with tempfile.TemporaryDirectory() as logs:
        emulator = EmulatorProcess(log=Path(logs) / "emulator.log").start()
        moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        moto.start()
        try:
            host, port = moto.get_host_and_port()
            endpoint = f"http://{host}:{port}"
            boto3.client(
                "s3",
                endpoint_url=endpoint,
                aws_access_key_id=S3_ACCESS_KEY,
                aws_secret_access_key=S3_SECRET_KEY,
                region_name=S3_REGION,
            ).create_bucket(Bucket=BUCKET)
            os.environ[f"AIRFLOW_CONN_{S3_CONN_ID.upper()}"] = json.dumps(s3_connection(endpoint))

            use_connection(emulator, max_retries=0)
            run_submits(20, 0)  # warm-up: imports, the emulator's first answers
            plain = run_submits(submits, 1000)
            baseline = statistics.median(plain) * 1000

            local_root = Path(AIRFLOW_HOME) / "ledger"
            os.environ["AIRFLOW__GENMEDIA__SPEND_LEDGER_PATH"] = f"file://{local_root}"
            use_connection(emulator, max_retries=0, **budget)
            on_disk = run_submits(submits, 2000)
            disk_calls = local_calls(local_root, submits)

            s3_uri = f"s3://{BUCKET}/spend-ledger"
            os.environ["AIRFLOW__GENMEDIA__SPEND_LEDGER_PATH"] = s3_uri
            os.environ["AIRFLOW__GENMEDIA__SPEND_LEDGER_CONN_ID"] = S3_CONN_ID
            with counted_storage_calls(s3_uri, S3_CONN_ID) as counts:
                on_s3 = run_submits(submits, 3000)
            used = SpendLedger.configured().used("novita_default", "jobs", time.strftime("%Y-%m-%d", time.gmtime()))
        finally:
            moto.stop()
            emulator.stop()

    s3_calls = ", ".join(f"{name} {counts[name] / submits:.1f}" for name in COUNTED)
    disk = ", ".join(f"{name} {count:.1f}" for name, count in disk_calls.items())
    print(f"{submits} submits per variant, one after the other; ms per submit through NovitaHook.submit")
    print("| variant | median ms | p95 ms | budget adds (median) | storage calls per submit |")
    print("|---|---:|---:|---:|---|")
    print(row("no budget", plain, None, "-"))
    print(row("budget, ledger on local disk", on_disk, baseline, disk))
    print(row("budget, ledger on S3 (moto on loopback)", on_s3, baseline, s3_calls))
    print(f"S3 ledger holds {used} job units for {submits} submits")


if __name__ == "__main__":
    main()
