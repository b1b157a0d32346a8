"""What a real deployment tells about the pipeline: OpenLineage events in the provider's file transport, and the
``genmedia.*`` metrics that Airflow's StatsD client sends to a UDP listener of this module, from the workers and from
the triggerer. Neither carries the API key nor a signed link's query string.

The img2img pipeline (a local input image, Novita, the NSFW filter, publishing to ``file://``) and the avatar video
(input links given with a signature in their query string) run on a deployment of this module's own.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_genmedia.lineage import dataset_name
from genmedia_stack import Deployment, EmulatorProcess, wait_until
from tests.deployment.airflow_version import AIRFLOW_VERSION
from tests.deployment.conftest import dag_sources, destination_roots, record_scenario

pytestmark = pytest.mark.compat
PIPELINE = "genmedia_img2img_pipeline"
VIDEO = "genmedia_avatar"
#: A DAG of tests/deployment/dags whose one img2img task the emulator fails (resumed on a worker, failed there).
FAILURE = "deploy_vendor_failure"
#: A signature in the input links' query strings: it must reach no event and no metric.
#: The sender of a packet whose process had ended (or closed its socket) before the packet was read.
EXITED = "exited"
SIGNATURE = "X-Amz-Signature=obs0signature0never0shown"
#: The connections' prices (extra ``prices``), so that each job's estimated cost reaches its facets and metrics.
PRICES = {
    "novita_default": {"currency": "USD", "novita": {"per_output": 0.0015}},
    "gptge_default": {"currency": "USD", "avatar": {"per_job": 0.2}},
}


@dataclass
class Packet:
    """One StatsD line and the Airflow component whose process sent it (``worker`` for a task's own process)."""

    line: str
    sender: str

    @property
    def name(self) -> str:
        """The metric's name without Airflow's ``statsd_prefix``."""
        return self.line.split(":", 1)[0].split(",", 1)[0].removeprefix("airflow.")

    @property
    def tags(self) -> dict[str, str]:
        """The InfluxDB-style tags (``name,api=novita,outcome=created:1|c``)."""
        head = self.line.split(":", 1)[0].split(",")[1:]
        return dict(tag.split("=", 1) for tag in head if "=" in tag)


@dataclass
class StatsdListener:
    """A UDP server on loopback that keeps every StatsD line and which component's process sent it.

    The sender of a ``genmedia.`` packet is found by its source port: the socket's inode in ``/proc/net/udp``, then the
    process of the deployment that holds it, named by the component it descends from (a descendant of the scheduler
    is a LocalExecutor worker or its task). Only the deployment's processes are searched, so that a packet is read at
    once and none is dropped. A task's process may be gone by the time its packet is read: its sender is then
    `EXITED` (never the triggerer, whose process lives on)."""

    sock: socket.socket = field(default_factory=lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    packets: list[Packet] = field(default_factory=list)
    raw: list[bytes] = field(default_factory=list)
    #: The deployment's component processes, by name (set once it started).
    components: dict[str, int] = field(default_factory=dict)
    _senders: dict[int, str] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> StatsdListener:
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * 1024 * 1024)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        threading.Thread(target=self._serve, daemon=True).start()
        return self

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def stop(self) -> None:
        self._stop.set()
        self.sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, (_, port) = self.sock.recvfrom(65535)
            except (TimeoutError, OSError):
                continue
            self.raw.append(data)
            try:
                sender = self._sender(port) if b"genmedia." in data else "airflow"
            except Exception as error:  # never lose a packet over who sent it
                sender = f"unknown ({error})"
            self.packets.extend(Packet(line, sender) for line in data.decode(errors="replace").splitlines() if line)

    def _sender(self, port: int) -> str:
        if port not in self._senders:
            self._senders[port] = self._owner(port)
        return self._senders[port]

    def _owner(self, port: int) -> str:
        """The component whose process holds the UDP socket bound to ``port``."""
        inode = next(
            (
                fields[9]
                for fields in (line.split() for line in Path("/proc/net/udp").read_text().splitlines()[1:])
                if int(fields[1].rsplit(":", 1)[1], 16) == port
            ),
            None,
        )
        if inode is None:
            return EXITED
        target = f"socket:[{inode}]"
        parents = _parents()
        roots = {pid: name for name, pid in self.components.items()}
        holders: set[str] = set()
        for pid in parents:
            name, ancestor = None, pid
            while ancestor > 1 and name is None:
                name = roots.get(ancestor)
                ancestor = parents.get(ancestor, 0)
            try:
                if name is None or target not in {
                    os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")
                }:
                    continue
            except OSError:
                continue
            holders.add("worker" if name == "scheduler" and pid != self.components[name] else name)
        # A forked process shares its parent's socket (Airflow 3.0's workers share the scheduler's): the scheduler
        # itself runs no task, so a socket its workers hold too is theirs.
        if "worker" in holders:
            holders.discard("scheduler")
        return ",".join(sorted(holders)) or EXITED

    def genmedia(self) -> list[Packet]:
        return [packet for packet in self.packets if packet.name.startswith("genmedia.")]


def _parents() -> dict[int, int]:
    """The parent of every process on the machine, from ``/proc/<pid>/stat``."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents[int(entry)] = int(stat.rpartition(")")[2].split()[1])
    return parents


@dataclass(frozen=True)
class Observed:
    """The runs, the OpenLineage events and the metrics this module's deployment wrote."""

    run_ids: dict[str, str]
    events: list[dict[str, Any]]
    event_text: str
    metrics: list[Packet]
    metric_text: str
    published: Path
    api_key: str


@pytest.fixture(scope="module")
def statsd() -> Iterator[StatsdListener]:
    listener = StatsdListener().start()
    yield listener
    listener.stop()


@pytest.fixture(scope="module")
def lineage_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("openlineage") / "events.jsonl"


@pytest.fixture(scope="module")
def deployment(
    tmp_path_factory: pytest.TempPathFactory,
    emulator_process: EmulatorProcess,
    statsd: StatsdListener,
    lineage_file: Path,
) -> Iterator[Deployment]:
    """This module's own deployment: OpenLineage's file transport, StatsD (tags InfluxDB-style) to `statsd`, and
    vendor connections with `PRICES`."""
    connections = {
        f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(
            {"conn_type": conn_type, "host": emulator_process.url, "password": emulator_process.api_key}
            | {"extra": {"prices": json.dumps(PRICES[conn_id])}}
        )
        for conn_id, conn_type in (("novita_default", "novita"), ("gptge_default", "gptge"))
    }
    stack = Deployment(
        root=tmp_path_factory.mktemp("deployment"),
        dag_sources=dag_sources(),
        emulator=emulator_process,
        extra_env={
            "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
                {"type": "file", "log_file_path": str(lineage_file), "append": True}
            ),
            "AIRFLOW__OPENLINEAGE__NAMESPACE": "genmedia-deployment-test",
            "AIRFLOW__METRICS__STATSD_ON": "True",
            "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
            "AIRFLOW__METRICS__STATSD_PORT": str(statsd.port),
            "AIRFLOW__METRICS__STATSD_INFLUXDB_ENABLED": "True",
            # The run's conf holds signed links, which the OpenLineage provider copies into its own ``airflow`` facets:
            # named sensitive, they are masked there (docs/observability.md).
            "AIRFLOW__CORE__SENSITIVE_VAR_CONN_NAMES": "avatar_url,audio_url",
            **connections,
            **destination_roots(tmp_path_factory),
        },
    )
    try:
        stack.start()
        statsd.components = {name: process.pid for name, process in stack.processes.items()}
        yield stack
    finally:
        stack.stop()


def read_events(path: Path) -> list[dict[str, Any]]:
    """Every OpenLineage event the file transport appended (one JSON document per line)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def task_events(observed: Observed, dag_id: str, task_id: str, event_type: str) -> list[dict[str, Any]]:
    """The events of one task of one DAG run, of one type (START, COMPLETE, FAIL)."""
    run_id = observed.run_ids[dag_id]
    return [
        event
        for event in observed.events
        if event["eventType"] == event_type
        and event["job"]["name"] == f"{dag_id}.{task_id}"
        and run_id in json.dumps(event["run"]["facets"].get("airflow", {}))
    ]


@pytest.fixture(scope="module")
def observed(
    deployment: Deployment, statsd: StatsdListener, lineage_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> Observed:
    """Run the img2img pipeline and the avatar video to their ends; gather the events and the metrics."""
    deployment.wait_for_dags(PIPELINE, VIDEO)
    published = tmp_path_factory.mktemp("published")
    destination = published.as_uri()
    deployment.unpause(PIPELINE, VIDEO)
    run_ids = {
        PIPELINE: deployment.trigger(PIPELINE, {"destination": destination}),
        VIDEO: deployment.trigger(
            VIDEO,
            {
                "destination": destination,
                "avatar_url": f"https://example.com/presenter/portrait.png?{SIGNATURE}",
                "audio_url": f"https://example.com/presenter/welcome.mp3?{SIGNATURE}&X-Amz-Expires=600",
            },
        ),
    }
    for dag_id, run_id in run_ids.items():
        state = deployment.wait_for_run(dag_id, run_id, timeout=180)
        assert state == "success", deployment.failure_report(dag_id, run_id)

    def publishes_told() -> list[dict[str, Any]] | None:
        events = read_events(lineage_file)
        done = [e for e in events if e["eventType"] == "COMPLETE" and e["job"]["name"].endswith(".publish")]
        return events if len(done) >= len(run_ids) else None

    wait_until(publishes_told, 60, "the OpenLineage events of both publish tasks")

    def metrics_told() -> bool:
        """The last metrics of the ended tasks have come: every trigger metric, and the bytes of every file the
        manifests name (UDP packets can trail the events)."""
        metrics = statsd.genmedia()
        if not set(IN_TRIGGER) <= {packet.name for packet in metrics}:
            return False
        sent = sum(int(p.line.split(":", 1)[1].split("|")[0]) for p in metrics if p.name == "genmedia.published_bytes")
        written = [json.loads(path.read_text()) for path in published.glob("*.manifest.json")]
        return len(written) >= len(run_ids) and sent == sum(f["bytes"] for m in written for f in m["files"])

    wait_until(metrics_told, 30, "the last metrics of the ended tasks", interval=0.2)
    events = read_events(lineage_file)
    return Observed(
        run_ids=run_ids,
        events=events,
        event_text=lineage_file.read_text(),
        metrics=statsd.genmedia(),
        metric_text=b"\n".join(statsd.raw).decode(errors="replace"),
        published=published,
        api_key=deployment.emulator.api_key,
    )


#: The metrics that only the triggerer sends.
IN_TRIGGER = ("genmedia.polls", "genmedia.task_duration", "genmedia.detection_lag")


def manifests(observed: Observed) -> dict[str, tuple[Path, dict[str, Any]]]:
    """Each published manifest, by the vendor task id it names."""
    found = {}
    for path in observed.published.glob("*.manifest.json"):
        manifest = json.loads(path.read_text())
        found[manifest["task_id"]] = (path, manifest)
    return found


def test_the_publish_event_names_the_published_files_the_manifest_and_the_vendor_task(observed: Observed) -> None:
    published = manifests(observed)
    for dag_id, kind in ((PIPELINE, "image"), (VIDEO, "video")):
        (event,) = task_events(observed, dag_id, "publish", "COMPLETE")
        facets = event["run"]["facets"]
        genmedia = facets["genmedia"]
        assert facets["externalQuery"]["externalQueryId"] == genmedia["vendorTaskId"]
        assert facets["externalQuery"]["source"] == genmedia["api"]
        assert genmedia["_schemaURL"].endswith("GenMediaRunFacet.json")
        manifest_path, manifest = published[genmedia["vendorTaskId"]]
        files = manifest["files"]
        assert files and {file["kind"] for file in files} == {kind}
        outputs = {(output["namespace"], output["name"]): output for output in event["outputs"]}
        expected = [Path(file["uri"].removeprefix("file://")) for file in files]
        assert set(outputs) == {("file", str(path)) for path in [*expected, manifest_path]}
        for path, file in zip(expected, files, strict=True):
            statistics = outputs[("file", str(path))]["facets"]["outputStatistics"]
            assert (statistics["size"], statistics["fileCount"]) == (path.stat().st_size, 1) == (file["bytes"], 1)
        assert (genmedia["publishedFiles"], genmedia["api"]) == (len(files), manifest["api"])
        assert (genmedia["estimatedCost"], genmedia["currency"]) == ({"image": 0.006, "video": 0.2}[kind], "USD")
        # The inputs are the vendor's links, named without their signatures.
        assert {(item["namespace"], item["name"]) for item in event["inputs"]} == {
            dataset_name(file["source_url"]) for file in files
        }
    record_scenario("lineage and metrics", 2, 2, 2, f"{len(observed.events)} events, {len(observed.metrics)} metrics")


def test_the_submit_tasks_tell_their_inputs_and_the_filter_its_verdicts(observed: Observed) -> None:
    (start,) = task_events(observed, PIPELINE, "restyle", "START")
    assert [(item["namespace"], Path(item["name"]).name) for item in start["inputs"]] == [("file", "product.png")]
    (start,) = task_events(observed, VIDEO, "talking_avatar", "START")
    assert {(item["namespace"], item["name"]) for item in start["inputs"]} == {
        ("https://example.com", "/presenter/portrait.png"),
        ("https://example.com", "/presenter/welcome.mp3"),
    }
    for dag_id in (PIPELINE, VIDEO):
        (event,) = task_events(observed, dag_id, "nsfw_filter", "COMPLETE")
        genmedia = event["run"]["facets"]["genmedia"]
        assert genmedia["kept"] and "rejected" in genmedia
        assert event["run"]["facets"]["externalQuery"]["externalQueryId"] == genmedia["vendorTaskId"]


def names_by_sender(observed: Observed) -> dict[str, set[str]]:
    senders: dict[str, set[str]] = {}
    for packet in observed.metrics:
        senders.setdefault(packet.sender, set()).add(packet.name)
    return senders


def test_the_metrics_arrive_with_their_tags_from_workers_and_the_triggerer(observed: Observed) -> None:
    senders = names_by_sender(observed)
    print(f"\ngenmedia metrics on Airflow {AIRFLOW_VERSION}, by sender:")
    for sender, names in sorted(senders.items()):
        print(f"  {sender}: {', '.join(sorted(names))}")
    for line in sorted({f"  {p.sender}: {p.line}" for p in observed.metrics}):
        print(line)
    in_trigger = IN_TRIGGER
    on_workers = ("genmedia.submits", "genmedia.nsfw.vendor", "genmedia.nsfw.local", "genmedia.published_files")
    for name in in_trigger:
        assert {packet.sender for packet in observed.metrics if packet.name == name} == {"triggerer"}, name
    for name in on_workers:
        assert {packet.sender for packet in observed.metrics if packet.name == name} <= {"worker", EXITED}, name
    assert set(on_workers) & senders["worker"], "no worker process was seen sending"
    for packet in observed.metrics:
        assert set(packet.tags) == {"api", "outcome"}, packet.line
    submits = {(p.tags["api"], p.tags["outcome"]) for p in observed.metrics if p.name == "genmedia.submits"}
    assert submits == {("novita", "created"), ("avatar", "created")}
    # Each job's estimated cost, in millionths of a dollar: 4 images at 0.0015 and one avatar video at 0.2.
    costs = {p.tags["api"]: p for p in observed.metrics if p.name == "genmedia.estimated_cost.usd"}
    assert {api: int(p.line.split(":", 1)[1].split("|")[0]) for api, p in costs.items()} == {
        "novita": 6000,
        "avatar": 200000,
    }
    sent = [p for p in observed.metrics if p.name == "genmedia.published_bytes"]
    written = sum(file["bytes"] for _, manifest in manifests(observed).values() for file in manifest["files"])
    assert sum(int(p.line.split(":", 1)[1].split("|")[0]) for p in sent) == written


def strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every string in a JSON document, with its dotted path."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from strings(item, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from strings(item, f"{path}.{index}")
    elif isinstance(value, str):
        yield path, value


def test_no_event_nor_metric_carries_the_key_or_a_signature(observed: Observed) -> None:
    assert observed.api_key not in observed.event_text
    assert observed.api_key not in observed.metric_text
    assert SIGNATURE.split("=")[1] not in observed.metric_text and "Signature" not in observed.metric_text
    # The emulator signs its output links (``?Expires=..&Signature=..``): only this provider reads them.
    assert "&Signature=" not in observed.event_text and "?Expires=" not in observed.event_text
    leaks = {
        path
        for event in observed.events
        for path, text in strings(event)
        if "Signature" in text or "X-Amz" in text or observed.api_key in text
    }
    # The one place left is Airflow's own: the OpenLineage provider copies the run's conf, where this test passed
    # signed links, into the ``airflow`` facet of each task event; ``[core] sensitive_var_conn_names`` masks it in the
    # DAG run's events but not there (docs/observability.md). Nothing of the provider's facets nor any dataset.
    assert leaks <= {"run.facets.airflow.dagRun.conf.avatar_url", "run.facets.airflow.dagRun.conf.audio_url"}
    for event in observed.events:
        ours = [
            event.get("inputs"),
            event.get("outputs"),
            *(event["run"]["facets"].get(k) for k in ("genmedia", "externalQuery")),
        ]
        assert "?" not in json.dumps(ours), event["job"]["name"]


def test_a_failed_vendor_task_tells_its_reason(deployment: Deployment, observed: Observed, lineage_file: Path) -> None:
    """The vendor fails the job: the FAIL event of the submit task names the vendor task and the vendor's reason."""
    deployment.emulator.reset()
    deployment.emulator.configure(task_failure={"next": 1})
    deployment.wait_for_dags(FAILURE)
    deployment.unpause(FAILURE)
    run_id = deployment.trigger(FAILURE)
    assert deployment.wait_for_run(FAILURE, run_id, timeout=120) == "failed"
    (vendor_id,) = deployment.emulator.stats()["tasks"]

    def failure_told() -> dict[str, Any] | None:
        return next(
            (
                event
                for event in read_events(lineage_file)
                if event["eventType"] == "FAIL" and event["job"]["name"] == f"{FAILURE}.restyle"
            ),
            None,
        )

    event = wait_until(failure_told, 60, "the FAIL event of the submit task")
    facets = event["run"]["facets"]
    assert facets["externalQuery"] == {**facets["externalQuery"], "externalQueryId": vendor_id, "source": "novita"}
    genmedia = facets["genmedia"]
    assert (genmedia["vendorTaskId"], genmedia["status"]) == (vendor_id, "failed")
    assert genmedia["reason"]
    print(f"\nFAIL event of {FAILURE}.restyle, genmedia facet: {json.dumps(genmedia)}")
    assert deployment.emulator.api_key not in json.dumps(event)
