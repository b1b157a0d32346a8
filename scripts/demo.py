"""Run an example DAG end to end on the local emulator: ``make demo`` (or ``make demo DAG=<dag_id>``).

Starts ``genmedia-emulator`` on a free loopback port, prepares a throwaway AIRFLOW_HOME (SQLite), points the
``novita_default`` and ``gptge_default`` connections at the emulator, runs the DAG with ``airflow dags test``
(deferral included), runs the DAGs scheduled on what it published, prints where the outputs are, and stops the
emulator. Exits non-zero if anything failed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
API_KEY = "emulator-key"
#: DAGs that run after the one asked for, because they are scheduled on the Asset it updates.
DOWNSTREAM = {"genmedia_img2img_pipeline": ["genmedia_contact_sheet"]}


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_emulator(port: int, log: Path) -> subprocess.Popen[bytes]:
    """Start the emulator and wait until it answers."""
    command = [str(BIN / "genmedia-emulator"), "--host", "127.0.0.1", "--port", str(port), "--api-key", API_KEY]
    process = subprocess.Popen(command, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the emulator stopped at start-up; see {log}")
        try:
            requests.get(f"http://127.0.0.1:{port}/_emulator/stats", timeout=1).raise_for_status()
            return process
        except requests.RequestException:
            time.sleep(0.2)
    process.terminate()
    raise SystemExit("the emulator did not answer within 30 s")


def airflow(args: list[str], env: dict[str, str], log: Path) -> int:
    """Run one ``airflow`` command, its output appended to ``log``; return its exit code."""
    with log.open("ab") as out:
        out.write(f"\n$ airflow {' '.join(args)}\n".encode())
        out.flush()
        return subprocess.run([str(BIN / "airflow"), *args], env=env, stdout=out, stderr=subprocess.STDOUT).returncode


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
    options = parser.parse_args()

    output = Path(options.output).resolve()
    shutil.rmtree(output, ignore_errors=True)
    output.mkdir(parents=True)
    home = Path(tempfile.mkdtemp(prefix="genmedia-demo-airflow-"))
    log = output / "demo.log"
    port = free_port()
    emulator_url = f"http://127.0.0.1:{port}"
    env = dict(os.environ)
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(REPO / "example_dags"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        # The emulator finishes in seconds: poll it every second, not on the vendors' schedules.
        GENMEDIA_POLL_INTERVAL="1",
    )
    for conn_id, conn_type in (("NOVITA_DEFAULT", "novita"), ("GPTGE_DEFAULT", "gptge")):
        connection = {"conn_type": conn_type, "host": emulator_url, "password": API_KEY}
        env[f"AIRFLOW_CONN_{conn_id}"] = json.dumps(connection)

    print(f"Emulator of all four vendor APIs: {emulator_url}")
    emulator = start_emulator(port, output / "emulator.log")
    failed: list[str] = []
    try:
        print(f"Throwaway AIRFLOW_HOME: {home}")
        setup = (["db", "migrate"], ["pools", "set", "genmedia_video", "2", "gpt.ge video jobs", "--include-deferred"])
        failed += [" ".join(command) for command in setup if airflow(command, env, log) != 0]
        conf = json.dumps({"destination": output.as_uri()})
        for dag_id in [options.dag, *DOWNSTREAM.get(options.dag, [])] if not failed else []:
            started = time.monotonic()
            print(f"airflow dags test {dag_id} ...", end=" ", flush=True)
            code = airflow(["dags", "test", dag_id, "-c", conf], env, log)
            print(f"{'ok' if code == 0 else 'FAILED'} ({time.monotonic() - started:.0f} s)")
            if code != 0:
                failed.append(dag_id)
                break
        stats = requests.get(f"{emulator_url}/_emulator/stats", timeout=5).json()
    finally:
        emulator.terminate()
        emulator.wait(10)
        shutil.rmtree(home, ignore_errors=True)

    print(f"Vendor jobs submitted (one per task): {json.dumps(stats['submits'])}")
    files = sorted(path for path in output.rglob("*") if path.is_file() and path.suffix != ".log")
    print(f"Published under {output}:")
    for path in files:
        print(f"  {path.relative_to(output)}  ({path.stat().st_size} bytes)")
    if summary := nsfw_summary(output):
        print("NSFW filter:", *summary, sep="\n")
    print(f"Full log: {log}")
    if failed:
        print(f"FAILED: {', '.join(failed)} (see the log above)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
