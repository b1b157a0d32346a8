"""Run an example DAG end to end on the local emulator: ``make demo`` (or ``make demo DAG=<dag_id>``).

Starts ``genmedia-emulator`` on a free loopback port and runs the DAG with ``airflow dags test`` (deferral included)
in a throwaway AIRFLOW_HOME (SQLite) whose ``novita_default`` and ``gptge_default`` connections aim at the emulator:
both from the local stack harness, ``genmedia_stack``, with no Airflow component started. Then runs the DAGs
scheduled on what it published, prints where the outputs are, and stops the emulator. Exits non-zero if anything
failed.

Both connections carry illustrative ``prices`` and a ``min_balance``, and the emulator charges each job at the same
prices, so the summary shows each job's usage and estimated cost (from the manifests) beside the balance the
emulated vendors report.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from airflow_provider_genmedia.pricing import usage_summary
from airflow_provider_genmedia.results import Usage
from genmedia_stack import Deployment, EmulatorProcess

REPO = Path(__file__).resolve().parents[1]
#: DAGs that run after the one asked for, because they are scheduled on the Asset it updates.
DOWNSTREAM = {"genmedia_img2img_pipeline": ["genmedia_contact_sheet"]}
#: The metadata database, and the pool the video DAGs run in.
SETUP = (["db", "migrate"], ["pools", "set", "genmedia_video", "2", "gpt.ge video jobs", "--include-deferred"])
#: Seconds one ``airflow dags test`` may take (an example DAG takes well under a minute on the emulator).
DAG_TEST_TIMEOUT = 900
#: Two warnings of Airflow's own dependencies that the demo's ``airflow`` commands log and nobody here can fix, as
#: ``-W`` filters (action, start of the message, category, module): Starlette deprecates the httpx its test client
#: uses, which FastAPI's test client imports when ``airflow dags test`` starts its in-process Execution API; the
#: ``airflow dags`` commands say that the graphviz package, only for drawing DAGs, is missing. Exactly these two: any
#: other warning, ours included, still shows.
THIRD_PARTY_WARNINGS = (
    "ignore:Using `httpx` with `starlette.testclient` is deprecated::fastapi.testclient",
    "ignore:Could not import graphviz:UserWarning:airflow.cli.commands.dag_command",
)


#: Illustrative prices (not the vendors' price lists), as each connection's extra ``prices`` gives them.
PRICES = {
    "novita": {"currency": "USD", "novita": {"per_output": 0.002, "/v3/async/img2img": {"per_output": 0.0015}}},
    "gptge": {
        "currency": "USD",
        "jimeng": {"per_job": 0.3},
        "bailian": {"per_video_second": 0.1},
        "avatar": {"per_job": 0.5},
    },
}
#: What the emulator charges per job of each API for the demo's requests (img2img per image; a Bailian job is 5 s).
EMULATOR_PRICES = {
    "novita": {"per_output": 0.0015},
    "jimeng": {"per_job": 0.3},
    "bailian": {"per_job": 0.5},
    "avatar": {"per_job": 0.5},
}
#: The emulated vendors' balances at the start (USD), and the connections' min_balance below which nothing is sent.
BALANCE = {"novita": 10.0, "gptge": 10.0}
MIN_BALANCE = 1.0


def connections(emulator: EmulatorProcess) -> dict[str, str]:
    """The default vendor connections, aimed at the emulator, with their prices and min_balance (as environment
    variables)."""
    return {
        f"AIRFLOW_CONN_{conn_type.upper()}_DEFAULT": json.dumps(
            {
                "conn_type": conn_type,
                "host": emulator.url,
                "password": emulator.api_key,
                "extra": {"prices": json.dumps(PRICES[conn_type]), "min_balance": MIN_BALANCE},
            }
        )
        for conn_type in ("novita", "gptge")
    }


def spend_summary(output: Path, stats: dict[str, Any]) -> list[str]:
    """Each job's usage and estimated cost, from the manifests, their total by currency, and the emulated vendors'
    balances."""
    lines: list[str] = []
    totals: dict[str, float] = {}
    for path in sorted(output.rglob("*.manifest.json")):
        manifest = json.loads(path.read_text())
        usage = Usage.model_validate(manifest["usage"]) if manifest.get("usage") else None
        lines.append(f"  {manifest['api']} task {manifest['task_id']}: {usage_summary(usage)}")
        if usage is not None and usage.estimated_cost is not None and usage.currency:
            totals[usage.currency] = totals.get(usage.currency, 0.0) + usage.estimated_cost
    if totals:
        lines.append("  total estimated: " + ", ".join(f"{cost:g} {currency}" for currency, cost in totals.items()))
    balances = ", ".join(
        f"{host} {stats['balance'][host]:g} USD (spent {stats['spent'][host]:g})" for host in stats["balance"]
    )
    lines.append(f"  vendor balances now: {balances}")
    return lines


def airflow(stack: Deployment, args: list[str], log: Path, timeout: float = DAG_TEST_TIMEOUT) -> int:
    """Run one ``airflow`` command in the demo's AIRFLOW_HOME, its output appended to ``log``; return its exit code."""
    done = stack.airflow(*args, timeout=timeout)
    with log.open("a") as out:
        out.write(f"\n$ airflow {' '.join(args)}\n{done.stdout}")
    return done.returncode


def _verdict(nsfw: dict[str, Any] | None) -> str:
    """An NSFW verdict in a few words: its score, who gave it, and for a video its frames."""
    if not nsfw or nsfw.get("confidence") is None:
        return "not checked"
    words = f"NSFW {nsfw['confidence']:.2f} by {nsfw.get('source', 'vendor')} {nsfw.get('model') or ''}".rstrip()
    if nsfw.get("frames_checked"):
        words += f" ({nsfw['frames_checked']} frames, worst at {nsfw['worst_frame_seconds']:.1f} s)"
    return words


def nsfw_summary(output: Path) -> list[str]:
    """What the NSFW filter decided, from the manifests: each published output with its verdict, each one set aside
    (sent to review where the DAG has one) with its reason."""
    lines = []
    for path in sorted(output.rglob("*.manifest.json")):
        manifest = json.loads(path.read_text())
        lines += [f"  kept       {file['name']}: {_verdict(file.get('nsfw'))}" for file in manifest["files"]]
        lines += [
            f"  set aside  {manifest['api']} task {manifest['task_id']} output {item['index']}: {item['reason']}"
            for item in manifest.get("rejected", [])
        ]
    return lines


def main() -> int:
    """Run the demo; the exit code says whether every DAG run succeeded."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dag", default="genmedia_img2img_pipeline")
    parser.add_argument("--output", default=str(REPO / "demo-output"), help="where published files go")
    parser.add_argument(
        "--database-template",
        type=Path,
        help="a metadata database (SQLite file) migrated by this Airflow, copied instead of running db migrate; "
        "the tests migrate one per session for all their demos",
    )
    options = parser.parse_args()

    output = Path(options.output).resolve()
    shutil.rmtree(output, ignore_errors=True)
    output.mkdir(parents=True)
    log = output / "demo.log"
    root = Path(tempfile.mkdtemp(prefix="genmedia-demo-"))
    emulator = EmulatorProcess(log=output / "emulator.log")
    # Only its AIRFLOW_HOME and environment serve here (`airflow dags test`, one process: SQLite is enough); the
    # example DAGs are read in place.
    stack = Deployment(
        root=root,
        dag_sources=[],
        emulator=emulator,
        postgres=False,
        extra_env={
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "example_dags"),
            # The demo publishes into --output, given to each run as params.destination (templated): that folder is
            # the one destination root (docs/security.md).
            "AIRFLOW__GENMEDIA__DESTINATION_ROOTS": output.as_uri(),
            # After the caller's own filters: the last one that matches wins, so these two stay silent whatever
            # those say.
            "PYTHONWARNINGS": ",".join(filter(None, [os.environ.get("PYTHONWARNINGS"), *THIRD_PARTY_WARNINGS])),
            **connections(emulator),
        },
    )

    print(f"Emulator of all four vendor APIs: {emulator.url}")
    failed: list[str] = []
    try:
        with emulator:
            emulator.configure(balance=BALANCE, prices=EMULATOR_PRICES)
            print(f"Throwaway AIRFLOW_HOME: {stack.home}")
            setup = SETUP
            if options.database_template:
                shutil.copyfile(options.database_template, stack.home / "airflow.db")
                setup = tuple(command for command in SETUP if command != ["db", "migrate"])
            failed += [" ".join(command) for command in setup if airflow(stack, command, log) != 0]
            conf = json.dumps({"destination": output.as_uri()})
            for dag_id in [options.dag, *DOWNSTREAM.get(options.dag, [])] if not failed else []:
                started = time.monotonic()
                print(f"airflow dags test {dag_id} ...", end=" ", flush=True)
                code = airflow(stack, ["dags", "test", dag_id, "-c", conf], log)
                print(f"{'ok' if code == 0 else 'FAILED'} ({time.monotonic() - started:.0f} s)")
                if code != 0:
                    failed.append(dag_id)
                    break
            stats = emulator.stats()
    finally:
        stack.stop()
        shutil.rmtree(root, ignore_errors=True)

    print(f"Vendor jobs submitted (one per task): {json.dumps(stats['submits'])}")
    files = sorted(path for path in output.rglob("*") if path.is_file() and path.suffix != ".log")
    print(f"Published under {output}:")
    for path in files:
        print(f"  {path.relative_to(output)}  ({path.stat().st_size} bytes)")
    if summary := nsfw_summary(output):
        print("NSFW filter:", *summary, sep="\n")
    print("Usage and estimated cost (illustrative prices):", *spend_summary(output, stats), sep="\n")
    print(f"Full log: {log}")
    if failed:
        print(f"FAILED: {', '.join(failed)} (see the log above)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
