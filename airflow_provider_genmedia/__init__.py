"""Apache Airflow provider for paid, asynchronous generative-media APIs."""

from __future__ import annotations

from typing import Any

from airflow_provider_genmedia.apis import GPTGE_BASE_URL, NOVITA_BASE_URL

__version__ = "0.1.0"

_CONNECTION_FIELDS: dict[str, Any] = {
    "timeout": {
        "label": "Request timeout (s)",
        "description": "Timeout of one HTTP request to the vendor, in seconds.",
        "schema": {"type": ["number", "null"], "default": 60, "minimum": 1},
    },
    "max_retries": {
        "label": "Max retries",
        "description": "Retries of a failed request (429, 5xx, timeouts); a submit is only retried when it "
        "surely did not reach the vendor.",
        "schema": {"type": ["integer", "null"], "default": 4, "minimum": 0, "maximum": 20},
    },
    "max_polls_per_second": {
        "label": "Max polls per second",
        "description": "Task-result polls per second that all waits on this connection in one triggerer (or "
        "worker task) share; empty for no limit. A 429 pauses every wait on the connection.",
        "schema": {"type": ["number", "null"], "exclusiveMinimum": 0},
    },
    "max_jobs_per_day": {
        "label": "Max jobs per day",
        "description": "Paid submits this connection may make per UTC day, counted on every worker before the "
        "request is sent ([genmedia] spend_ledger_path); empty for no limit.",
        "schema": {"type": ["integer", "null"], "minimum": 0},
    },
    "max_outputs_per_day": {
        "label": "Max outputs per day",
        "description": "Images or videos the submits of this connection may ask for per UTC day; empty for no limit.",
        "schema": {"type": ["integer", "null"], "minimum": 0},
    },
    "prices": {
        "label": "Prices (JSON)",
        "description": 'What a job costs, for the estimated cost on each result: {"currency": "USD", "<api>": '
        '{"per_job", "per_output", "per_video_second", "/<endpoint route>": {...}}}; empty for no estimate.',
        "schema": {"type": ["string", "null"]},
    },
    "min_balance": {
        "label": "Minimum balance",
        "description": "No job is submitted while the vendor's balance (Novita: USD; gpt.ge: the key's remaining "
        "quota) is below this amount; empty to never check it.",
        "schema": {"type": ["number", "null"], "minimum": 0},
    },
    "max_outage_seconds": {
        "label": "Max outage (s)",
        "description": "How long a wait rides out task-result polls failing in a row (connection errors, 5xx, 429), "
        "polling again with backoff, before it ends in error and Airflow's retries take over.",
        "schema": {"type": ["number", "null"], "default": 600, "minimum": 0},
    },
}


def _connection_type(conn_type: str, hook: str, name: str, base_url: str, serves: str | None = None) -> dict[str, Any]:
    """One connection type; ``serves`` names the APIs it covers in the placeholder of the form's key field (a longer
    label wraps in the UI and pushes its field out of line with the others)."""
    behaviour: dict[str, Any] = {
        "hidden-fields": ["port", "schema", "login"],
        "relabeling": {"password": "API Key", "host": "Base URL"},
        "placeholders": {"host": base_url, "password": "the vendor's API key"},
    }
    if serves:
        behaviour["placeholders"]["password"] = f"your {name} token ({serves})"
    return {
        "connection-type": conn_type,
        "hook-class-name": f"airflow_provider_genmedia.hooks.genmedia.{hook}",
        "hook-name": name,
        "ui-field-behaviour": behaviour,
        "conn-fields": _CONNECTION_FIELDS,
    }


def get_provider_info() -> dict[str, Any]:
    """Provider metadata read by Airflow's providers manager (entry point ``apache_airflow_provider``)."""
    integrations = ["Novita AI", "gpt.ge", "Generative Media"]
    return {
        "package-name": "airflow-provider-genmedia",
        "name": "Generative Media",
        "description": "Submit, await, filter and publish image and video generation jobs "
        "(Novita AI; Jimeng, Ali Bailian and digital-human video through gpt.ge).",
        "versions": [__version__],
        "integrations": [{"integration-name": name, "tags": ["service"]} for name in integrations],
        "hooks": [
            {"integration-name": name, "python-modules": ["airflow_provider_genmedia.hooks.genmedia"]}
            for name in integrations[:2]
        ],
        "operators": [
            {"integration-name": "Novita AI", "python-modules": ["airflow_provider_genmedia.operators.novita"]},
            {"integration-name": "gpt.ge", "python-modules": ["airflow_provider_genmedia.operators.video"]},
            {
                "integration-name": "Generative Media",
                "python-modules": [
                    "airflow_provider_genmedia.operators.nsfw",
                    "airflow_provider_genmedia.operators.publish",
                ],
            },
        ],
        "triggers": [
            {"integration-name": "Generative Media", "python-modules": ["airflow_provider_genmedia.triggers.task"]}
        ],
        "sensors": [
            {"integration-name": "Generative Media", "python-modules": ["airflow_provider_genmedia.sensors.task"]}
        ],
        "config": {
            "genmedia": {
                "description": "Settings of the genmedia provider.",
                "options": {
                    "defer_settle": {
                        "description": "Seconds after it started that a GenMediaTaskTrigger holds an event that "
                        "resumes its task on a worker (a vendor task that failed, a timeout, an error; a success "
                        "ends the task in the triggerer and is never held). Airflow 3.3 fails a resumed task when "
                        "the worker's late report of the deferral reaches the scheduler after the resumed try runs "
                        "(apache/airflow#72716), and a retry would then pay for a new job; that report comes up to "
                        "[workers] min_heartbeat_interval after the deferral. Default: twice that interval.",
                        "version_added": "0.1.0",
                        "type": "float",
                        "example": "10",
                        "default": None,
                    },
                    "submit_record_path": {
                        "description": "Where the pay-once record of each submit is kept on an Airflow without "
                        "task_state_store (before 3.3): a folder URI every worker can read and write, one JSON file "
                        "per task instance under it. Unset: $AIRFLOW_HOME/genmedia/submit-records, which only "
                        "LocalExecutor may use (another executor fails the first submit until this is set).",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "s3://my-bucket/genmedia/submit-records",
                        "default": None,
                    },
                    "spend_ledger_path": {
                        "description": "Where the daily budgets of the connections (extras max_jobs_per_day and "
                        "max_outputs_per_day) are counted: a folder URI every worker can read and write, on storage "
                        "that creates an object only if it is absent (s3://, or file:// on one machine). One object "
                        "per unit, per connection and UTC day. Unset: $AIRFLOW_HOME/genmedia/spend-ledger, which "
                        "only LocalExecutor may use (another executor fails a budgeted submit until this is set).",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "s3://my-bucket/genmedia/spend-ledger",
                        "default": None,
                    },
                    "input_roots": {
                        "description": "Comma-separated local folders and object-storage URI prefixes (file://, "
                        "s3://bucket/prefix, gs://...) that an input image path or URI must fall under when it came "
                        "from a template (params, dag_run.conf, XCom, a mapped task's XCom argument); one written "
                        "literally in the DAG file is the author's and is not checked, nor is an http(s) URL. Paths "
                        "are compared resolved (no escape through .. or symlinks), part by part. Unset: [core] "
                        "dags_folder. Empty: every templated path or URI is refused.",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "/data/genmedia/inputs, s3://my-bucket/genmedia/inputs",
                        "default": None,
                    },
                    "destination_roots": {
                        "description": "Comma-separated object-storage URI prefixes (and local folders) that a "
                        "PublishMediaOperator destination or a MediaReviewOperator preview_destination must fall "
                        "under when it came from a template, as input_roots for inputs. Unset: the genmedia folder "
                        "of the system's temporary folder (file:///tmp/genmedia), the scratch place the example "
                        "DAGs publish into by default, so that they run as shipped while a templated destination "
                        "on real storage (s3://...) is refused until its prefix is listed here. Empty: every "
                        "templated destination is refused.",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "s3://my-bucket/genmedia/published, file:///data/genmedia/published",
                        "default": None,
                    },
                    "allowed_private_origins": {
                        "description": "Origins (scheme://host:port, comma-separated) that the provider may fetch "
                        "links from although they resolve to a loopback, private, link-local or other non-public "
                        "address: inputs given by URL, vendor output links, the NSFW scorer's downloads. The vendor "
                        "connection's own origin (an emulator on 127.0.0.1) is always allowed; every other "
                        "non-public address is refused, each redirect hop checked the same way.",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "http://10.0.0.5:9000,https://minio.internal",
                        "default": "",
                    },
                    "spend_ledger_conn_id": {
                        "description": "The object-storage connection of spend_ledger_path (e.g. an aws connection "
                        "for s3://).",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "aws_default",
                        "default": None,
                    },
                    "nsfw_threads": {
                        "description": "Inference threads of the local NSFW model (NsfwFilterOperator with "
                        "scorer='local', the nsfw extra), loaded once per worker process. Keep it below the cores "
                        "a worker may give one task.",
                        "version_added": "0.1.0",
                        "type": "integer",
                        "example": "2",
                        "default": "1",
                    },
                    "lineage_prompt": {
                        "description": "How the prompt goes into the genmedia run facet of OpenLineage events "
                        "(apache-airflow-providers-openlineage installed and configured): plain (as written), hash "
                        "(its SHA-256, as promptSha256) or omit. Any other value hashes.",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "hash",
                        "default": "plain",
                    },
                    "submit_record_conn_id": {
                        "description": "The object-storage connection of submit_record_path (e.g. an aws "
                        "connection for s3://).",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "aws_default",
                        "default": None,
                    },
                },
            }
        },
        "connection-types": [
            _connection_type("novita", "NovitaHook", "Novita AI", NOVITA_BASE_URL),
            _connection_type(
                "gptge", "GptGeHook", "gpt.ge", GPTGE_BASE_URL, "Jimeng, Ali Bailian (Wan), digital-human avatar"
            ),
        ],
    }


def connection_type_info(conn_type: str) -> dict[str, Any]:
    """The provider info of one connection type (its form's fields and behaviour), by type."""
    return next(info for info in get_provider_info()["connection-types"] if info["connection-type"] == conn_type)
